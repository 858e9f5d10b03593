"""Every route of the plugin, with odd ids and bodies, as every actor: a
clear 4xx, never a 500."""

from __future__ import annotations

import re

import pytest

from courses_test_helpers import published_course

ODD_IDS = ("1", "0", "-1", "abc", str(2**31), str(2**63), "1e3")
ODD_BODIES = (None, {}, {"title": None, "content": 5, "ids": "x", "progress_percent": "NaN", "rating": 2.5},
              [1, 2], "text")


@pytest.fixture
def routes(testapp):
    paths = testapp.get("/api/openapi.json").json["paths"]
    return {path: sorted(m for m in ops if m in {"get", "post", "put", "delete"})
            for path, ops in paths.items() if path.startswith(("/api/v1/courses", "/api/v1/categories",
                                                               "/api/v1/tags", "/api/v1/chapters",
                                                               "/api/v1/lessons", "/api/v1/notes",
                                                               "/api/v1/comments", "/api/v1/users/courses",
                                                               "/api/v1/users/collections",
                                                               "/api/v1/users/learning"))}


def test_no_route_answers_500(testapp, clients, routes):
    published_course(clients["teacher"], clients["admin"])  # id 1-ish rows exist
    assert len(routes) >= 25
    problems, sent = [], 0
    for path, methods in routes.items():
        for odd in ODD_IDS if "{" in path else ("",):
            url = re.sub(r"\{[a-z_]+\}", odd, path)
            for method in methods:
                for actor in ("anonymous", "student", "admin"):
                    for body in ODD_BODIES if method in ("post", "put") else (None,):
                        kwargs = {"headers": clients[actor].headers, "expect_errors": True}
                        if body is not None:
                            response = testapp.request(url, method=method.upper(), json=body, **kwargs)
                        else:
                            response = testapp.request(url, method=method.upper(), **kwargs)
                        sent += 1
                        if response.status_int >= 500:
                            problems.append(f"{method.upper()} {url} as {actor} with {body!r}: "
                                            f"{response.status_int} {response.body[:200]!r}")
    assert not problems, "\n".join(problems[:20])
    assert sent > 1000


def test_odd_query_strings_are_400s_not_500s(clients):
    for params in ({"page": "x"}, {"page_size": "-3"}, {"price_min": "NaN"}, {"price_max": "1e400"},
                   {"tags": "," * 5}, {"search": " "}, {"search": "%_\\"}, {"category_id": str(2**40)},
                   {"sort": ""}, {"page": str(2**40)}):
        r = clients["student"].get("/api/v1/courses", params=params, expect_errors=True)
        assert r.status_int in (200, 400), (params, r.status_int, r.body[:200])
