"""Webhooks: the admin API, the outbox written with the change, signed
delivery to a real HTTP receiver on loopback, retries, the attempt log,
redelivery, the SSRF guard, and purging."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from learnsail import hookimpl
from learnsail.aftercommit import manager_of
from learnsail.db import utcnow
from learnsail.identity.models import AuditEntry
from learnsail.tasks import send_now
from learnsail.testing.authz import ADMIN_ONLY, check_matrix
from learnsail.webhooks import EVENTS_KEY, emit, events_of, sender, services
from learnsail.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

HOOKS = "/api/v1/webhooks"
PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="module")
def learnsail_extra_settings():
    # the receiver listens on loopback, so internal addresses must be allowed here
    # (the guard itself is tested by switching the setting off)
    return {"learnsail.webhooks_allow_private": "true", "learnsail.webhooks_retry_delay": "0",
            "learnsail.webhooks_max_attempts": "3", "learnsail.webhooks_timeout": "2"}


class Receiver:
    """A real HTTP server on loopback that records what it is sent and
    answers with the statuses queued in ``answers`` (200 once empty)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(f"answer {status}".encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/in?source=learnsail"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        self.requests.clear()
        self.answers.clear()
        self.delay = 0.0

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.fixture
def rx(receiver: Receiver) -> Receiver:
    receiver.reset()
    return receiver


def admin(actor_headers):
    return actor_headers["admin"]


def create(testapp, actor_headers, url, events=("user.created",), status=201, **extra):
    return testapp.post_json(HOOKS, {"url": url, "events": list(events), **extra},
                             headers=admin(actor_headers), status=status)


def deliveries(dbsession, endpoint_id=None):
    dbsession.expire_all()
    stmt = sa.select(WebhookDelivery).order_by(WebhookDelivery.id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    return dbsession.scalars(stmt).all()


def dispatch(app):
    """What the periodic sweep does every minute (retries in embedded mode)."""
    send_now(app.registry, "webhooks.dispatch")


def register(testapp, username):
    return testapp.post_json("/api/v1/users/register", {"username": username, "password": PASSWORD,
                                                         "email": f"{username}@example.com"}, status=201)


def emit_in_transaction(dbsession, app, type_name, data, fail=False):
    tm = manager_of(dbsession)
    tm.begin()
    dbsession.info["learnsail.registry"] = app.registry
    count = emit(dbsession, type_name, data)
    dbsession.flush()
    if fail:
        dbsession.rollback()
        tm.abort()
    else:
        dbsession.commit()
        tm.commit()
    return count


# --- who may -------------------------------------------------------------------------------

def test_every_route_is_for_admins_only(testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    dbsession.expire_all()
    delivery_id = testapp.post(f"{HOOKS}/{made['id']}/ping", headers=admin(actor_headers), status=202).json["id"]
    body = {"url": rx.url, "events": ["user.created"]}
    for method, url, json_body in [
        ("GET", HOOKS, None), ("POST", HOOKS, body), ("GET", f"{HOOKS}/events", None),
        ("GET", f"{HOOKS}/{made['id']}", None), ("PUT", f"{HOOKS}/{made['id']}", {"description": "x"}),
        ("POST", f"{HOOKS}/{made['id']}/rotate-secret", None), ("POST", f"{HOOKS}/{made['id']}/ping", None),
        ("GET", f"{HOOKS}/{made['id']}/deliveries", None), ("GET", f"{HOOKS}/deliveries/{delivery_id}", None),
        ("POST", f"{HOOKS}/deliveries/{delivery_id}/redeliver", None),
    ]:
        expected = {**ADMIN_ONLY, "admin": 201 if (method, url) == ("POST", HOOKS) else
                    202 if url.endswith(("/ping", "/redeliver")) else 200}
        check_matrix(testapp, actor_headers, method, url, expected, json=json_body)
    check_matrix(testapp, actor_headers, "DELETE", f"{HOOKS}/{made['id']}", {**ADMIN_ONLY, "admin": 204})


# --- endpoints -----------------------------------------------------------------------------

def test_an_endpoint_is_created_with_a_secret_shown_once(testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url, description="CRM sync").json
    assert made["secret"].startswith("whsec_") and len(made["secret"]) > 40
    assert made["events"] == ["user.created"] and made["is_active"] is True
    assert made["secret_hint"] == made["secret"][:10] + "…"
    shown = testapp.get(f"{HOOKS}/{made['id']}", headers=admin(actor_headers)).json
    assert "secret" not in shown and shown["url"] == rx.url and shown["description"] == "CRM sync"
    listed = testapp.get(HOOKS, headers=admin(actor_headers)).json
    assert listed["count"] == 1 and "secret" not in listed["results"][0]
    entry = dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:webhook:create")).one()
    assert entry.target_id == str(made["id"]) and "secret" not in json.dumps(entry.after)


def test_the_declared_event_types_are_listed(testapp, actor_headers):
    listed = {e["type"]: e["description"]
              for e in testapp.get(f"{HOOKS}/events", headers=admin(actor_headers)).json["results"]}
    assert {"user.created", "user.erased"} <= set(listed)
    assert "webhooks.ping" not in listed


def test_a_plugin_declares_its_event_types_through_the_hook(app, testapp, actor_headers, rx):
    class CoursesEvents:
        @hookimpl
        def learnsail_webhook_events(self):
            return {"coursetest.published": "A course was published."}

    pm = app.registry["learnsail.pm"]
    pm.register(CoursesEvents(), name="coursetest-webhooks")
    app.registry.pop(EVENTS_KEY, None)
    try:
        assert events_of(app.registry)["coursetest.published"] == "A course was published."
        made = create(testapp, actor_headers, rx.url, events=["coursetest.published", "user.created"]).json
        assert made["events"] == ["coursetest.published", "user.created"]
    finally:
        pm.unregister(name="coursetest-webhooks")
        app.registry.pop(EVENTS_KEY, None)
    assert "coursetest.published" not in events_of(app.registry)


@pytest.mark.parametrize("url, reason", [
    ("ftp://files.example.com/in", "only http:// and https://"),
    ("javascript:alert(1)", "only http:// and https://"),
    ("file:///etc/passwd", "only http:// and https://"),
    ("http://user:pw@127.0.0.1/in", "user name or password"),
    ("http:///no-host", "no host"),
    ("http://127.0.0.1:99999/in", "not a valid URL"),
    ("http://does-not-exist.invalid/in", "does not resolve"),
])
def test_a_url_that_cannot_receive_webhooks_is_a_400_and_nothing_is_created(testapp, actor_headers, dbsession,
                                                                              url, reason):
    r = create(testapp, actor_headers, url, status=400)
    assert r.json["error"]["code"] == "VALIDATION_ERROR"
    assert reason.lower() in r.json["error"]["details"]["url"][0].lower()
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


@pytest.mark.parametrize("body, field", [
    ({"url": "http://127.0.0.1/in", "events": ["no.such_event"]}, "events"),
    ({"url": "http://127.0.0.1/in", "events": ["user.created", "user.created"]}, "events"),
    ({"url": "http://127.0.0.1/in", "events": []}, "events"),
    ({"url": "http://127.0.0.1/in"}, "events"),
    ({"events": ["user.created"]}, "url"),
    ({"url": "http://127.0.0.1/in", "events": ["user.created"], "description": "x" * 501}, "description"),
])
def test_bad_endpoint_bodies_are_400s(testapp, actor_headers, dbsession, body, field):
    r = testapp.post_json(HOOKS, body, headers=admin(actor_headers), status=400)
    assert field in r.json["error"]["details"]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


def test_an_endpoint_is_changed_and_a_bad_change_changes_nothing(testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    url = f"{HOOKS}/{made['id']}"
    changed = testapp.put_json(url, {"events": ["user.created", "user.erased"], "is_active": False},
                               headers=admin(actor_headers)).json
    assert changed["events"] == ["user.created", "user.erased"] and changed["is_active"] is False
    testapp.put_json(url, {"url": "gopher://x", "description": "never"}, headers=admin(actor_headers), status=400)
    shown = testapp.get(url, headers=admin(actor_headers)).json
    assert shown["url"] == rx.url and shown["description"] == ""
    testapp.get(f"{HOOKS}/999999", headers=admin(actor_headers), status=404)
    testapp.put_json(f"{HOOKS}/999999", {"description": "x"}, headers=admin(actor_headers), status=404)


def test_the_guard_refuses_internal_addresses_unless_allowed(app, testapp, actor_headers, dbsession):
    for url in ("http://127.0.0.1/in", "http://localhost:8080/in", "http://10.1.2.3/in", "http://192.168.0.10/",
                "http://169.254.169.254/latest/meta-data", "http://[::1]/in", "http://[::ffff:127.0.0.1]/in",
                "http://0.0.0.0/in", "http://100.64.1.1/in"):
        with pytest.raises(sender.Refused, match="internal address"):
            sender.resolve(url, allow_private=False)
        assert sender.resolve(url, allow_private=True)[1]
    settings = app.registry.settings
    settings["learnsail.webhooks_allow_private"] = False
    try:
        r = create(testapp, actor_headers, "http://127.0.0.1:9/in", status=400)
        assert "internal address" in r.json["error"]["message"]
    finally:
        settings["learnsail.webhooks_allow_private"] = True
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


# --- delivery --------------------------------------------------------------------------------

def test_a_new_account_is_delivered_signed_to_the_receiver(testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    user = register(testapp, "hook_lin").json
    assert len(rx.requests) == 1
    request = rx.requests[0]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert request["path"] == "/hooks/in?source=learnsail"
    assert headers["content-type"] == "application/json"
    assert headers["x-learnsail-event"] == "user.created"
    assert sender.verify(made["secret"], headers["x-learnsail-timestamp"], request["body"],
                         headers["x-learnsail-signature"])
    assert not sender.verify(made["secret"] + "x", headers["x-learnsail-timestamp"], request["body"],
                             headers["x-learnsail-signature"])
    assert not sender.verify(made["secret"], str(int(headers["x-learnsail-timestamp"]) - 3600), request["body"],
                             headers["x-learnsail-signature"])
    body = json.loads(request["body"])
    assert body["type"] == "user.created"
    assert body["data"] == {"id": user["id"], "username": "hook_lin", "role": "student",
                            "created_at": body["data"]["created_at"]}
    [delivery] = deliveries(dbsession, made["id"])
    assert headers["x-learnsail-delivery"] == delivery.uid
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    assert delivery.response_time_ms is not None and delivery.delivered_at is not None
    log = testapp.get(f"{HOOKS}/{made['id']}/deliveries", headers=admin(actor_headers)).json
    assert log["count"] == 1
    row = log["results"][0]
    assert (row["status"], row["event_type"], row["event_id"], row["attempts"]) == \
        ("succeeded", "user.created", body["id"], 1)
    detail = testapp.get(f"{HOOKS}/deliveries/{row['id']}", headers=admin(actor_headers)).json
    assert detail["payload"] == body
    assert [(a["number"], a["response_status"], a["error"]) for a in detail["attempt_log"]] == [(1, 200, None)]
    assert detail["attempt_log"][0]["response_body"] == "answer 200"


def test_events_go_only_to_active_subscribed_endpoints(testapp, actor_headers, rx, dbsession):
    create(testapp, actor_headers, rx.url, events=["user.erased"])
    disabled = create(testapp, actor_headers, rx.url, is_active=False).json
    register(testapp, "hook_nobody")
    assert rx.requests == []
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(WebhookEvent)) == 0
    assert deliveries(dbsession, disabled["id"]) == []


def test_an_erased_account_is_an_event(testapp, actor_headers, rx, make_user, auth_headers, dbsession):
    user = make_user(password=PASSWORD)
    create(testapp, actor_headers, rx.url, events=["user.erased"])
    testapp.delete_json("/api/v1/users/me", {"password": PASSWORD}, headers=auth_headers(user), status=204)
    assert [(b["type"], b["data"]) for b in rx.bodies()] == [("user.erased", {"id": user.id})]


def test_a_change_that_rolls_back_sends_nothing(app, testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    assert emit_in_transaction(dbsession, app, "user.created", {"id": 1}, fail=True) == 1
    assert deliveries(dbsession, made["id"]) == [] and rx.requests == []
    assert emit_in_transaction(dbsession, app, "user.created", {"id": 2}) == 1
    assert [b["data"] for b in rx.bodies()] == [{"id": 2}]


def test_emit_checks_the_type_and_the_data(app, dbsession):
    dbsession.info["learnsail.registry"] = app.registry
    with pytest.raises(ValueError, match="not declared"):
        emit(dbsession, "nobody.declared", {})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        emit(dbsession, "user.created", {"when": object()})


def test_failures_are_retried_with_backoff_and_logged_per_attempt(app, testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    rx.answers[:] = [500, 302]
    register(testapp, "hook_retry")
    [delivery] = deliveries(dbsession, made["id"])
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("retrying", 1, 500)
    assert "500" in delivery.last_error and delivery.next_attempt_at is not None
    dispatch(app)  # the sweep sends the due retry: a redirect is not followed, so it fails too
    dispatch(app)
    [delivery] = deliveries(dbsession, made["id"])
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 3, 200)
    assert len(rx.requests) == 3
    assert len({r["headers"]["X-Learnsail-Delivery"] for r in rx.requests}) == 1
    statuses = dbsession.scalars(sa.select(WebhookAttempt.response_status)
                                 .where(WebhookAttempt.delivery_id == delivery.id).order_by(WebhookAttempt.number))
    assert list(statuses) == [500, 302, 200]
    dispatch(app)
    assert len(rx.requests) == 3  # nothing left to send


def test_the_backoff_doubles_up_to_a_cap():
    assert services.retry_delay(1, 0) == 0
    assert 24 <= services.retry_delay(1, 30) <= 36
    assert 96 <= services.retry_delay(3, 30) <= 144
    assert services.retry_delay(30, 30) <= services.MAX_DELAY * 1.2


def test_after_the_last_attempt_it_fails_and_can_be_redelivered(app, testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    rx.answers[:] = [503, 503, 503, 503]
    register(testapp, "hook_fail")
    dispatch(app)
    dispatch(app)
    dispatch(app)
    [delivery] = deliveries(dbsession, made["id"])
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert len(rx.requests) == 3
    failed = testapp.get(f"{HOOKS}/{made['id']}/deliveries?status=failed", headers=admin(actor_headers)).json
    assert [d["id"] for d in failed["results"]] == [delivery.id]
    again = testapp.post(f"{HOOKS}/deliveries/{delivery.id}/redeliver", headers=admin(actor_headers),
                         status=202).json
    assert again["id"] == delivery.id
    assert len(rx.requests) == 4  # one more attempt (503), failed again
    assert deliveries(dbsession, made["id"])[0].status == "failed"
    testapp.post(f"{HOOKS}/deliveries/{delivery.id}/redeliver", headers=admin(actor_headers), status=202)
    [delivery] = deliveries(dbsession, made["id"])
    assert (delivery.status, delivery.attempts, len(rx.requests)) == ("succeeded", 5, 5)
    assert len({json.loads(r["body"])["id"] for r in rx.requests}) == 1  # the same event every time
    testapp.post(f"{HOOKS}/deliveries/999999/redeliver", headers=admin(actor_headers), status=404)


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(app, testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    rx.delay = 2.5
    app.registry.settings["learnsail.webhooks_timeout"] = 1
    try:
        register(testapp, "hook_slow")
    finally:
        app.registry.settings["learnsail.webhooks_timeout"] = 2
    [delivery] = deliveries(dbsession, made["id"])
    assert delivery.status == "retrying" and delivery.response_status is None
    assert "timeout" in delivery.last_error and delivery.response_time_ms >= 1000


def test_the_guard_also_applies_when_sending(app, testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    app.registry.settings["learnsail.webhooks_allow_private"] = False
    try:
        register(testapp, "hook_ssrf")
    finally:
        app.registry.settings["learnsail.webhooks_allow_private"] = True
    [delivery] = deliveries(dbsession, made["id"])
    assert rx.requests == [] and delivery.status == "retrying"
    assert "internal address" in delivery.last_error


def test_a_disabled_endpoints_pending_deliveries_fail(app, testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    rx.answers[:] = [500]
    register(testapp, "hook_disable")
    testapp.put_json(f"{HOOKS}/{made['id']}", {"is_active": False}, headers=admin(actor_headers))
    dispatch(app)
    [delivery] = deliveries(dbsession, made["id"])
    assert delivery.status == "failed" and delivery.last_error == "the endpoint is disabled"
    assert len(rx.requests) == 1


def test_ping_reaches_one_endpoint_and_rotating_the_secret_signs_with_the_new_one(testapp, actor_headers, rx):
    made = create(testapp, actor_headers, rx.url).json
    other = create(testapp, actor_headers, rx.url + "&other=1").json
    rotated = testapp.post(f"{HOOKS}/{made['id']}/rotate-secret", headers=admin(actor_headers)).json
    assert rotated["secret"] != made["secret"]
    ping = testapp.post(f"{HOOKS}/{made['id']}/ping", headers=admin(actor_headers), status=202).json
    assert ping["event_type"] == "webhooks.ping" and ping["endpoint_id"] == made["id"]
    [request] = rx.requests
    headers = request["headers"]
    assert headers["X-Learnsail-Event"] == "webhooks.ping"
    assert sender.verify(rotated["secret"], headers["X-Learnsail-Timestamp"], request["body"],
                         headers["X-Learnsail-Signature"])
    assert not sender.verify(made["secret"], headers["X-Learnsail-Timestamp"], request["body"],
                             headers["X-Learnsail-Signature"])
    assert "other=1" not in request["path"]
    assert testapp.get(f"{HOOKS}/{other['id']}/deliveries", headers=admin(actor_headers)).json["count"] == 0


def test_deleting_an_endpoint_deletes_its_log(testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    register(testapp, "hook_delete")
    assert len(deliveries(dbsession, made["id"])) == 1
    testapp.delete(f"{HOOKS}/{made['id']}", headers=admin(actor_headers), status=204)
    assert deliveries(dbsession, made["id"]) == []
    testapp.get(f"{HOOKS}/{made['id']}", headers=admin(actor_headers), status=404)
    testapp.delete(f"{HOOKS}/{made['id']}", headers=admin(actor_headers), status=404)


def test_purge_deletes_old_finished_events_only(app, testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    register(testapp, "hook_old_done")
    rx.answers[:] = [500]
    register(testapp, "hook_old_open")
    register(testapp, "hook_new_done")
    events = dbsession.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.id)).all()
    old = utcnow() - dt.timedelta(days=40)
    events[0].created_at = events[1].created_at = old
    dbsession.commit()
    send_now(app.registry, "webhooks.purge")
    dbsession.expire_all()
    left = [e.data["username"] for e in dbsession.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.id))]
    assert left == ["hook_old_open", "hook_new_done"]
    assert len(deliveries(dbsession, made["id"])) == 2
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(WebhookAttempt)) == 2


def test_the_delivery_log_filters_and_pages_in_constant_queries(app, testapp, actor_headers, rx, dbsession):
    from learnsail.testing import count_queries

    made = create(testapp, actor_headers, rx.url, events=["user.created", "user.erased"]).json
    for n in range(3):
        register(testapp, f"hook_page{n}")
    url = f"{HOOKS}/{made['id']}/deliveries"
    engine = app.registry["learnsail.db_engine"]
    with count_queries(engine) as few:
        testapp.get(url + "?page_size=1", headers=admin(actor_headers))
    with count_queries(engine) as many:
        page = testapp.get(url + "?page_size=50", headers=admin(actor_headers)).json
    assert len(many) == len(few) and page["count"] == 3
    assert testapp.get(url + "?event=user.erased", headers=admin(actor_headers)).json["count"] == 0
    testapp.get(url + "?status=bogus", headers=admin(actor_headers), status=400)
    testapp.get(f"{HOOKS}/999999/deliveries", headers=admin(actor_headers), status=404)


def test_a_task_for_a_delivery_that_is_not_due_does_nothing(app, testapp, actor_headers, rx, dbsession):
    made = create(testapp, actor_headers, rx.url).json
    register(testapp, "hook_dup")
    [delivery] = deliveries(dbsession, made["id"])
    send_now(app.registry, "webhooks.deliver", delivery.id)  # a duplicate message after success
    assert len(rx.requests) == 1 and deliveries(dbsession, made["id"])[0].attempts == 1
    delivery.status, delivery.next_attempt_at = "retrying", utcnow() + dt.timedelta(hours=1)
    dbsession.commit()
    send_now(app.registry, "webhooks.deliver", delivery.id)  # a retry message that came early
    dispatch(app)
    assert len(rx.requests) == 1 and deliveries(dbsession, made["id"])[0].attempts == 1
