"""learnsail-bookmarks: the HTTP contract, the rules and the hooks."""

from __future__ import annotations

import pytest

from learnsail.testing import count_queries
import sqlalchemy as sa

from learnsail.app import call_in_order
from learnsail.errors import Conflict
from learnsail_bookmarks import services
from learnsail_bookmarks.models import Bookmark

URL = "/api/v1/bookmarks"


@pytest.fixture
def student(make_user):
    return make_user("student")


@pytest.fixture
def headers(student, auth_headers):
    return auth_headers(student)


def create(testapp, headers, n=0, **body):
    body = {"url": f"https://example.edu/page/{n}", "title": f"Page {n}", **body}
    return testapp.post_json(URL, body, headers=headers, status=201).json


def count_rows(dbsession, user_id):
    return dbsession.scalar(sa.select(sa.func.count()).select_from(Bookmark).where(Bookmark.user_id == user_id))


# --- HTTP contract ------------------------------------------------------------

def test_create_answers_201_with_the_bookmark(testapp, headers, student, dbsession):
    r = testapp.post_json(URL, {"url": "https://example.edu/Guide?x=1", "title": "Guide", "note": "read"},
                          headers=headers, status=201)
    assert set(r.json) == {"id", "url", "title", "note", "created_at", "updated_at"}
    assert r.json["url"] == "https://example.edu/Guide?x=1"
    assert r.json["title"] == "Guide" and r.json["note"] == "read"
    assert r.json["created_at"].endswith("Z")
    assert count_rows(dbsession, student.id) == 1
    assert testapp.get(f"{URL}/{r.json['id']}", headers=headers).json == r.json


def test_note_is_optional(testapp, headers):
    assert create(testapp, headers)["note"] is None


def test_list_is_paginated_newest_first(testapp, headers):
    ids = [create(testapp, headers, n)["id"] for n in range(3)]
    first = testapp.get(URL, {"page_size": 2}, headers=headers).json
    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 3
    assert [b["id"] for b in first["results"]] == ids[::-1][:2]
    assert first["previous"] is None and "page=2" in first["next"]
    second = testapp.get(first["next"], headers=headers).json
    assert [b["id"] for b in second["results"]] == [ids[0]]
    assert second["next"] is None and "page=1" in second["previous"]


def test_list_shows_only_the_callers_bookmarks(testapp, headers, make_user, auth_headers):
    create(testapp, headers)
    other = auth_headers(make_user("teacher"))
    assert testapp.get(URL, headers=other).json == {"count": 0, "next": None, "previous": None, "results": []}


def test_invalid_body_names_each_bad_field(testapp, headers):
    r = testapp.post_json(URL, {"url": "ftp://example.edu/x", "title": "", "colour": "red"},
                          headers=headers, status=400)
    error = r.json["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert {"url", "title", "colour"} <= set(error["details"])
    r = testapp.post_json(URL, {"title": "No URL"}, headers=headers, status=400)
    assert list(r.json["error"]["details"]) == ["url"]


def test_invalid_query_and_path_are_validation_errors(testapp, headers):
    r = testapp.get(URL, {"page": "0"}, headers=headers, status=400)
    assert "page" in r.json["error"]["details"]
    r = testapp.get(f"{URL}/abc", headers=headers, status=400)
    assert "id" in r.json["error"]["details"]


def test_anonymous_callers_must_authenticate(testapp):
    for response in (testapp.get(URL, status=401),
                     testapp.post_json(URL, {"url": "https://example.edu", "title": "x"}, status=401),
                     testapp.delete(f"{URL}/1", status=401)):
        assert response.json["error"]["code"] == "AUTH_FAILED"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_someone_elses_bookmark_is_not_found(testapp, headers, student, make_user, auth_headers, dbsession):
    mine = create(testapp, headers)
    intruder = auth_headers(make_user("student"))
    r = testapp.get(f"{URL}/{mine['id']}", headers=intruder, status=404)
    assert r.json["error"]["code"] == "RESOURCE_NOT_FOUND"
    r = testapp.delete(f"{URL}/{mine['id']}", headers=intruder, status=404)
    assert r.json["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert count_rows(dbsession, student.id) == 1
    testapp.get(f"{URL}/999999", headers=headers, status=404)


def test_delete_own_bookmark(testapp, headers, student, dbsession):
    mine = create(testapp, headers)
    r = testapp.delete(f"{URL}/{mine['id']}", headers=headers, status=204)
    assert r.body == b"" and "Content-Type" not in r.headers
    assert count_rows(dbsession, student.id) == 0
    testapp.get(f"{URL}/{mine['id']}", headers=headers, status=404)
    testapp.delete(f"{URL}/{mine['id']}", headers=headers, status=404)


def test_duplicate_url_is_a_conflict(testapp, headers, make_user, auth_headers, student, dbsession):
    create(testapp, headers, 1)
    r = testapp.post_json(URL, {"url": "https://example.edu/page/1", "title": "Again"},
                          headers=headers, status=409)
    assert r.json["error"]["code"] == "CONFLICT"
    assert "url" in r.json["error"]["details"]
    assert count_rows(dbsession, student.id) == 1
    # the same URL with different case is another page; another user may bookmark it too
    create(testapp, headers, url="https://example.edu/PAGE/1")
    create(testapp, auth_headers(make_user("student")), 1)


def test_max_per_user_setting_is_enforced(app, testapp, headers, student, dbsession, monkeypatch):
    assert app.registry.settings[services.MAX_PER_USER_SETTING] == 500  # the declared default
    monkeypatch.setitem(app.registry.settings, services.MAX_PER_USER_SETTING, 2)
    create(testapp, headers, 1)
    create(testapp, headers, 2)
    r = testapp.post_json(URL, {"url": "https://example.edu/3", "title": "Three"}, headers=headers, status=409)
    assert r.json["error"]["code"] == "CONFLICT"
    assert r.json["error"]["details"] == {"max_per_user": 2}
    assert count_rows(dbsession, student.id) == 2


def test_max_per_user_is_read_from_the_environment(bookmarks_installed, learnsail_settings):
    from learnsail.app import load_settings
    from learnsail.settings import SettingError
    from learnsail.testing import isolated_environ

    with bookmarks_installed():
        settings, _ = load_settings(learnsail_settings,
                                    dict(isolated_environ(), LEARNSAIL_BOOKMARKS_MAX_PER_USER="7"))
        assert settings[services.MAX_PER_USER_SETTING] == 7
        with pytest.raises(SettingError, match="LEARNSAIL_BOOKMARKS_MAX_PER_USER"):
            load_settings(learnsail_settings, dict(isolated_environ(), LEARNSAIL_BOOKMARKS_MAX_PER_USER="0"))


def test_openapi_documents_the_endpoints(testapp):
    paths = testapp.get("/api/openapi.json").json["paths"]
    methods = {"get", "post", "put", "patch", "delete"}
    assert set(paths[URL]) & methods == {"get", "post"}
    assert set(paths[URL + "/{id}"]) & methods == {"get", "delete"}
    post = paths[URL]["post"]
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Bookmark"}
    assert {"400", "401", "403", "409"} <= set(post["responses"])
    assert "204" in paths[URL + "/{id}"]["delete"]["responses"]


def test_list_issues_a_constant_number_of_queries(app, testapp, headers, db_connection):
    def queries_for_list() -> list[str]:
        testapp.get(URL, {"page_size": 100}, headers=headers)  # warm the sign-in caches
        with count_queries(db_connection.engine) as statements:
            testapp.get(URL, {"page_size": 100}, headers=headers)
        return statements

    create(testapp, headers, 0)
    one = queries_for_list()
    for n in range(1, 20):
        create(testapp, headers, n)
    twenty = queries_for_list()
    assert testapp.get(URL, {"page_size": 100}, headers=headers).json["count"] == 20
    assert len(one) == len(twenty), twenty


# --- rules without HTTP ---------------------------------------------------------

def test_a_lost_race_on_the_unique_key_is_a_conflict(dbsession, student, monkeypatch):
    services.create_bookmark(dbsession, student.id, url="https://example.edu/a", title="A")
    # make the duplicate pre-check miss, as a concurrent insert would
    monkeypatch.setattr(services, "url_digest", lambda url: "not-the-stored-digest")
    with pytest.raises(Conflict, match="already bookmarked"):
        services.create_bookmark(dbsession, student.id, url="https://example.edu/a", title="A")
    # the savepoint was rolled back: the session goes on
    assert count_rows(dbsession, student.id) == 1


# --- hooks --------------------------------------------------------------------

def test_user_erased_deletes_the_users_bookmarks(app, testapp, headers, student, make_user, auth_headers,
                                                 dbsession):
    other = make_user("teacher")
    create(testapp, headers, 1)
    create(testapp, headers, 2)
    create(testapp, auth_headers(other), 1)
    app.registry["learnsail.pm"].hook.learnsail_user_erased(user_id=student.id, session=dbsession)
    assert count_rows(dbsession, student.id) == 0
    assert count_rows(dbsession, other.id) == 1


def test_user_export_returns_the_users_bookmarks(app, testapp, headers, student, make_user, dbsession):
    create(testapp, headers, 1, note="mine")
    hook = app.registry["learnsail.pm"].hook.learnsail_user_export
    (exported,) = [r for r in hook(user_id=student.id, session=dbsession) if r]
    (row,) = exported["bookmarks"]
    assert row["url"] == "https://example.edu/page/1" and row["title"] == "Page 1" and row["note"] == "mine"
    assert [r for r in hook(user_id=make_user().id, session=dbsession) if r] == []


def test_demo_data_is_idempotent(app, make_user, dbsession):
    registry = app.registry
    plugins = registry["learnsail.plugins"]

    def load():
        return dict(call_in_order(registry["learnsail.pm"], "learnsail_demo_data", plugins.order,
                                  session=dbsession, settings=registry.settings))["bookmarks"]

    assert load() is None  # no administrator yet: nothing to do
    admin = make_user("admin")
    assert load() == f"{len(services.DEMO_BOOKMARKS)} bookmark(s) for the administrator"
    assert load() is None
    assert count_rows(dbsession, admin.id) == len(services.DEMO_BOOKMARKS)
