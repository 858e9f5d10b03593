"""The API conventions every plugin inherits: validation, the error
envelope, transactions, pagination, version negotiation, limits, headers."""

from __future__ import annotations

import json

from learnsail.testing import count_queries


def envelope(response):
    body = response.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def test_create_and_read_back(conventions_app):
    r = conventions_app.post_json("/api/v1/items", {"name": "alpha", "price": "9.50"}, status=201)
    assert r.json["name"] == "alpha" and r.json["price"] == "9.50"
    assert r.json["created_at"].endswith("Z")  # UTC on the wire
    got = conventions_app.get(f"/api/v1/items/{r.json['id']}")
    assert got.json == r.json


def test_validation_names_every_bad_field(conventions_app):
    r = conventions_app.post_json("/api/v1/items", {"price": "-1", "tags": "x", "colour": "red"}, status=400)
    err = envelope(r)
    assert err["code"] == "VALIDATION_ERROR"
    assert set(err["details"]) == {"name", "price", "tags", "colour"}
    assert all(isinstance(reason, str) for reasons in err["details"].values() for reason in reasons)


def test_invalid_json_and_wrong_media_type(conventions_app):
    r = conventions_app.post("/api/v1/items", "{not json", content_type="application/json", status=400)
    assert envelope(r)["code"] == "VALIDATION_ERROR"
    assert "body" in envelope(r)["details"]
    r = conventions_app.post("/api/v1/items", "name=x", content_type="application/x-www-form-urlencoded",
                             status=415)
    assert envelope(r)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    r = conventions_app.post_json("/api/v1/items", [1, 2], status=400)
    assert envelope(r)["details"] == {"body": ["The body must be a JSON object."]}


def test_path_parameter_is_validated(conventions_app):
    r = conventions_app.get("/api/v1/items/abc", status=400)
    assert "id" in envelope(r)["details"]
    r = conventions_app.get("/api/v1/items/999999", status=404)
    assert envelope(r)["code"] == "RESOURCE_NOT_FOUND"


def test_unknown_route_and_method(conventions_app):
    r = conventions_app.get("/api/v1/no-such-thing", status=404)
    assert envelope(r)["code"] == "RESOURCE_NOT_FOUND"
    r = conventions_app.delete("/api/v1/items", status=405)
    assert envelope(r)["code"] == "METHOD_NOT_ALLOWED"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_server_error_leaks_nothing(conventions_app):
    r = conventions_app.get("/api/v1/boom", headers={"X-Request-ID": "req-123"}, status=500)
    err = envelope(r)
    assert err["code"] == "SERVER_ERROR"
    assert "secret internal detail" not in r.text and "Traceback" not in r.text
    assert err["details"]["request_id"] == "req-123"


def test_failed_request_changes_nothing(conventions_app):
    before = conventions_app.get("/api/v1/items", params={"name": "dup"}).json["count"]
    r = conventions_app.post_json("/api/v1/items-conflict", {"name": "dup"}, status=409)
    assert envelope(r) == {"code": "CONFLICT", "message": "That name is taken.",
                           "details": {"name": ["Already used."]}}
    assert conventions_app.get("/api/v1/items", params={"name": "dup"}).json["count"] == before


def test_permission_required(conventions_app):
    r = conventions_app.get("/api/v1/secret", status=401)
    assert envelope(r)["code"] == "AUTH_FAILED"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = conventions_app.get("/api/v1/secret", headers={"Authorization": "Bearer not-a-jwt"}, status=401)
    assert envelope(r)["code"] == "AUTH_FAILED"


def test_pagination_shape_and_cap(conventions_app):
    for i in range(5):
        conventions_app.post_json("/api/v1/items", {"name": f"page{i}"}, status=201)
    total = conventions_app.get("/api/v1/items").json["count"]
    first = conventions_app.get("/api/v1/items", params={"page_size": 2}).json
    assert set(first) == {"count", "next", "previous", "results"}
    assert len(first["results"]) == 2 and first["previous"] is None
    assert "page=2" in first["next"] and "page_size=2" in first["next"]
    second = conventions_app.get(first["next"]).json
    assert second["results"][0]["id"] > first["results"][-1]["id"]
    assert "page=1" in second["previous"]
    capped = conventions_app.get("/api/v1/items", params={"page_size": 1000}).json
    assert len(capped["results"]) == min(total, 100)
    r = conventions_app.get("/api/v1/items", params={"page": "0"}, status=400)
    assert "page" in envelope(r)["details"]
    r = conventions_app.get("/api/v1/items", params={"page_size": "ten"}, status=400)
    assert "page_size" in envelope(r)["details"]
    last_page = conventions_app.get("/api/v1/items", params={"page_size": 100, "page": 99}).json
    assert last_page["results"] == [] and last_page["next"] is None


def test_pagination_takes_a_known_count_and_a_page_fetch(conventions_app):
    for i in range(3):
        conventions_app.post_json("/api/v1/items", {"name": f"counted{i}"}, status=201)
    everything = conventions_app.get("/api/v1/items", params={"page_size": 100}).json["results"]
    engine = conventions_app.app.registry["learnsail.db_engine"]
    with count_queries(engine) as statements:
        page = conventions_app.get("/api/v1/items-counted", params={"page_size": 2, "known_count": 99}).json
    # the count is the one given: no COUNT query, one page query
    assert page["count"] == 99 and page["next"] and page["previous"] is None
    assert not any("count(" in s.lower() for s in statements) and len(statements) == 1
    assert [r["id"] for r in page["results"]] == [r["id"] for r in everything[:2]]
    last = conventions_app.get("/api/v1/items-counted", params={"page_size": 2, "page": 2, "known_count": 4}).json
    assert last["next"] is None and last["previous"]


def test_keyset_pagination_walks_everything_once(conventions_app):
    for i in range(3):
        conventions_app.post_json("/api/v1/items", {"name": f"ks{i}"}, status=201)
    total = conventions_app.get("/api/v1/items").json["count"]
    seen, url = [], "/api/v1/items-keyset?page_size=2"
    while url:
        page = conventions_app.get(url).json
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert len(seen) == total and seen == sorted(seen) and len(set(seen)) == total
    r = conventions_app.get("/api/v1/items-keyset", params={"cursor": "!!garbage"}, status=400)
    assert "cursor" in envelope(r)["details"]


def test_vendor_accept_header(conventions_app):
    r = conventions_app.get("/api/v1/items", headers={"Accept": "application/vnd.learnsail.v1+json"})
    assert "results" in r.json
    r = conventions_app.get("/api/v1/items", headers={"Accept": "application/vnd.learnsail.v9+json"},
                            status=406)
    assert envelope(r)["code"] == "NOT_ACCEPTABLE"


def test_body_limit(conventions_app):
    r = conventions_app.post_json("/api/v1/items", {"name": "x" * 5000}, status=413)
    assert envelope(r)["code"] == "PAYLOAD_TOO_LARGE"
    assert envelope(r)["details"]["max_bytes"] == 2048


def test_request_id_and_security_headers(conventions_app):
    r = conventions_app.get("/api/v1/items", headers={"X-Request-ID": "abc-1"})
    assert r.headers["X-Request-ID"] == "abc-1"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    generated = conventions_app.get("/api/v1/items", headers={"X-Request-ID": "bad id\n"})
    assert generated.headers["X-Request-ID"] != "bad id\n" and len(generated.headers["X-Request-ID"]) == 32


def test_cors_allow_list(conventions_app):
    allowed = "https://app.example.edu"
    r = conventions_app.options("/api/v1/items", headers={
        "Origin": allowed, "Access-Control-Request-Method": "POST"}, status=204)
    assert r.headers["Access-Control-Allow-Origin"] == allowed
    r = conventions_app.get("/api/v1/items", headers={"Origin": allowed})
    assert r.headers["Access-Control-Allow-Origin"] == allowed
    r = conventions_app.get("/api/v1/items", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = conventions_app.options("/api/v1/items", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, status=403)
    assert envelope(r)["code"] == "PERMISSION_DENIED"


def test_chinese_messages(conventions_app):
    r = conventions_app.get("/api/v1/nowhere", headers={"Accept-Language": "zh-CN,zh;q=0.9"}, status=404)
    assert envelope(r)["message"] == "资源不存在。"


def test_openapi_describes_services(conventions_app):
    doc = conventions_app.get("/api/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    post = doc["paths"]["/api/v1/items"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Item"}
    assert set(doc["components"]["schemas"]["Item"]["required"]) == {"name"}
    assert {"201", "400", "413", "415", "500"} <= set(post["responses"])
    assert post["security"] == []
    secret = doc["paths"]["/api/v1/secret"]["get"]
    assert secret["security"] == [{"bearerAuth": []}] and {"401", "403"} <= set(secret["responses"])
    params = doc["paths"]["/api/v1/items/{id}"]["get"]["parameters"]
    assert params[0]["name"] == "id" and params[0]["schema"]["type"] == "integer"
    query = {p["name"] for p in doc["paths"]["/api/v1/items"]["get"]["parameters"]}
    assert {"name", "tags"} <= query
    assert doc["paths"]["/api/v1/items"]["post"]["summary"] == "Create an item."
    assert "bearerAuth" in doc["components"]["securitySchemes"]


def test_docs_page_is_offline(conventions_app):
    page = conventions_app.get("/api/docs")
    assert "swagger-ui-bundle.js" in page.text and "http" not in page.text.split("<body>")[1]
    conventions_app.get("/api/docs/static/swagger-ui-bundle.js")
    init = conventions_app.get("/api/docs/init.js")
    assert json.dumps("/api/openapi.json") in init.text and "persistAuthorization" in init.text


def test_metrics_count_requests(conventions_app):
    conventions_app.get("/api/v1/items")
    text = conventions_app.get("/metrics").text
    assert 'learnsail_http_requests_total{method="GET",route="conventions.items",status="200"}' in text
    assert "learnsail_http_request_duration_seconds_bucket" in text


def test_metrics_only_for_allowed_addresses(conventions_app):
    r = conventions_app.get("/metrics", extra_environ={"REMOTE_ADDR": "203.0.113.9"}, status=403)
    assert envelope(r)["code"] == "PERMISSION_DENIED"


def test_prefix_routing_matches_what_pyramid_matches():
    from pyramid.urldispatch import RoutesMapper
    from webob import Request

    from learnsail.routing import PrefixRoutesMapper

    patterns = ["/api/v1/users/me", "/api/v1/users/{id}", "api/docs/static/*subpath", "/api/v1/users/{id}/roles",
                "/healthz", "/{catchall}", ":old/style"]
    ours, theirs = PrefixRoutesMapper(), RoutesMapper()
    for i, pattern in enumerate(patterns):
        ours.connect(f"r{i}", pattern)
        theirs.connect(f"r{i}", pattern)
    for path in ["/api/v1/users/me", "/api/v1/users/7", "/api/v1/users/7/roles", "/api/docs/static/a.js",
                 "/healthz", "/anything", "/x/style", "/", "/api/v1/nothing/here"]:
        request = Request.blank(path)
        a, b = ours(request), theirs(request)
        assert (a["route"] and a["route"].name, a["match"]) == (b["route"] and b["route"].name, b["match"]), path


def test_openapi_documents_head_and_options_only_when_a_view_declares_them():
    """Cornice adds a HEAD to every GET (left out of the document); a view
    declared for HEAD or OPTIONS (a tus endpoint) is documented."""
    from learnsail.api import PUBLIC, Service
    from learnsail.api.openapi import build

    plain = Service(name="docs.plain", path="/api/v1/plain")
    declared = Service(name="docs.declared", path="/api/v1/declared")

    @plain.get(permission=PUBLIC)
    def read(request):
        """Read."""

    @declared.decorator("HEAD", permission=PUBLIC, responses={200: (None, "Headers only.")})
    def peek(request):
        """Peek at it."""

    @declared.options(permission=PUBLIC, responses={204: None})
    def discover(request):
        """What it speaks."""

    paths = build({"learnsail.services": [plain, declared]})["paths"]
    assert set(paths["/api/v1/plain"]) == {"get"}
    assert set(paths["/api/v1/declared"]) == {"head", "options"}
    assert paths["/api/v1/declared"]["head"]["summary"] == "Peek at it."
