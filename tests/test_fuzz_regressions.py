"""Requests schemathesis found (or that its findings led to) which the API
answered with a 500: each must now get the error envelope (or succeed)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from learnsail.db import make_engine

HUGE = 10**22  # beyond SQLite's 64-bit INTEGER
BIG = 2**31  # beyond MariaDB's INT, the type of every id column


def error_of(response):
    body = response.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


# --- integers beyond what the database stores ------------------------------------

ID_PATHS = [
    ("get", "/api/v1/admin/users/{n}"),
    ("get", "/api/v1/admin/users/{n}/logins"),
    ("post", "/api/v1/admin/users/{n}/disable"),
    ("post", "/api/v1/admin/users/{n}/enable"),
    ("post", "/api/v1/admin/users/{n}/unlock"),
    ("delete", "/api/v1/admin/users/{n}"),
    ("get", "/api/v1/roles/{n}"),
    ("delete", "/api/v1/roles/{n}"),
    ("get", "/api/v1/users/{n}/roles"),
    ("post", "/api/v1/users/{n}/roles/1"),
    ("delete", "/api/v1/users/1/roles/{n}"),
    ("delete", "/api/v1/admin/menus/{n}"),
]


@pytest.mark.parametrize("number", [HUGE, -HUGE, BIG, 0])
@pytest.mark.parametrize("method,path", ID_PATHS)
def test_out_of_range_path_ids_are_a_client_error(clients, method, path, number):
    admin = clients["admin"]
    response = getattr(admin.testapp, method)(path.format(n=number), headers=admin.headers, status="*")
    assert response.status_int in (400, 404), response.text
    error_of(response)


@pytest.mark.parametrize("method,path,body", [
    ("put_json", "/api/v1/roles/{n}", {"description": "x"}),
    ("put_json", "/api/v1/roles/{n}/permissions", {"permissions": []}),
    ("put_json", "/api/v1/users/{n}/role", {"role_id": 1}),
    ("put_json", "/api/v1/admin/menus/{n}", {"name": "x"}),
    ("put_json", "/api/v1/admin/users/{n}", {"is_active": True}),
])
def test_out_of_range_path_ids_with_a_body(clients, method, path, body):
    for number in (HUGE, BIG):
        response = getattr(clients["admin"], method)(path.format(n=number), body, status="*")
        assert response.status_int in (400, 404), response.text
        error_of(response)


@pytest.mark.parametrize("method,path,body,field", [
    ("post_json", "/api/v1/users/register",
     {"username": "fuzzer", "password": "a long enough passphrase", "email": "f@example.com", "role_id": "N"},
     "role_id"),
    ("post_json", "/api/v1/roles", {"name": "fuzzed", "parent_id": "N"}, "parent_id"),
    ("put_json", "/api/v1/users/{student}/role", {"role_id": "N"}, "role_id"),
    ("post_json", "/api/v1/admin/menus", {"name": "fuzzed", "parent_id": "N"}, "parent_id"),
])
@pytest.mark.parametrize("number", [HUGE, -HUGE, BIG])
def test_out_of_range_body_ids_are_rejected(clients, users, method, path, body, field, number):
    body = {key: (number if value == "N" else value) for key, value in body.items()}
    url = path.format(student=users.student.id)
    response = getattr(clients["admin"], method)(url, body, status="*")
    assert response.status_int == 400, response.text
    assert field in error_of(response)["details"]


def test_role_update_parent_out_of_range(clients):
    role = clients["admin"].post_json("/api/v1/roles", {"name": "fuzz-parent"}, status=201).json
    response = clients["admin"].put_json(f"/api/v1/roles/{role['id']}", {"parent_id": HUGE}, status=400)
    assert "parent_id" in error_of(response)["details"]


@pytest.mark.parametrize("url", [
    "/api/v1/admin/audit-log?actor_id={n}",
    "/api/v1/admin/audit-log?page={n}",
    "/api/v1/admin/users?page={n}",
    "/api/v1/admin/users/export.csv?page={n}",
    "/api/v1/roles?page={n}",
    "/api/v1/users/me/logins?page={n}",
])
def test_out_of_range_query_integers_are_rejected(clients, url):
    response = clients["admin"].get(url.format(n=HUGE), status="*")
    assert response.status_int in (200, 400), response.text
    if response.status_int == 400:
        error_of(response)


def test_a_page_far_beyond_the_end_is_still_fine(clients):
    response = clients["admin"].get("/api/v1/admin/users?page=1000000", status=200)
    assert response.json["results"] == []


def test_generic_integer_net_catches_what_a_schema_forgot(app):
    """A plugin's schema without a range: the validator still refuses an
    integer no backend stores."""
    import marshmallow
    from pyramid.testing import DummyRequest

    from learnsail.api.validation import Schema, marshmallow_validator

    class Loose(Schema):
        n = marshmallow.fields.Integer()
        items = marshmallow.fields.List(marshmallow.fields.Integer())

    class Errors(list):
        def add(self, location, name, description):
            self.append((location, name, description))

    request = DummyRequest(body=json.dumps({"n": HUGE, "items": [1, -HUGE]}).encode(),
                           content_type="application/json")
    request.validated, request.errors = {}, Errors()
    marshmallow_validator(request, schema=Loose)
    assert {(loc, name) for loc, name, _ in request.errors} == {("body", "n"), ("body", "items.1")}


# --- dates and instants out of range -------------------------------------------------------

def test_registered_to_the_last_representable_day(clients):
    clients["admin"].get("/api/v1/admin/users?registered_to=9999-12-31", status=200)
    clients["admin"].get("/api/v1/admin/users/export.csv?registered_to=9999-12-31", status=200)


@pytest.mark.parametrize("query", [
    "from=0001-01-01T00:00:00%2B01:00",
    "to=9999-12-31T23:59:59-01:00",
])
def test_audit_instants_outside_the_utc_range(clients, query):
    response = clients["admin"].get(f"/api/v1/admin/audit-log?{query}", status=400)
    assert error_of(response)["code"] == "VALIDATION_ERROR"


def test_audit_instants_at_the_edges_of_the_range(clients):
    clients["admin"].get("/api/v1/admin/audit-log?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
                         status=200)


# --- text the database cannot store ---------------------------------------------------------

def test_lone_surrogates_in_a_json_body(clients):
    raw = b'{"name": "bad \\ud800 name"}'
    response = clients["admin"].testapp.post("/api/v1/admin/menus", raw, status=400,
                                             headers={**clients["admin"].headers,
                                                      "Content-Type": "application/json"})
    assert "name" in error_of(response)["details"]


def test_invalid_utf8_in_the_query_string(clients):
    response = clients["admin"].get("/api/v1/admin/users?search=%ff", status=400)
    error_of(response)


@pytest.mark.parametrize("url", ["/api/v1/roles/%ff", "/api/v1/users/oauth/%C3%28/authorize", "/%ff/nowhere"])
def test_invalid_utf8_in_the_path(clients, url):
    response = clients["admin"].get(url, status=400)
    assert error_of(response)["code"] == "VALIDATION_ERROR"


def test_nul_and_astral_characters_are_stored(clients):
    made = clients["admin"].post_json("/api/v1/admin/menus", {"name": "a\x00b \U0001F600"}, status=201).json
    assert made["name"] == "a\x00b \U0001F600"


# --- uniqueness that ignores case, beyond ASCII -------------------------------------------------

def test_role_names_differing_in_non_ascii_case_conflict(clients):
    clients["admin"].post_json("/api/v1/roles", {"name": "Ån"}, status=201)
    again = clients["admin"].post_json("/api/v1/roles", {"name": "Ån"}, status=409)
    assert error_of(again)["code"] == "CONFLICT"
    clients["admin"].post_json("/api/v1/roles", {"name": "ån"}, status=409)


def test_role_rename_to_a_taken_non_ascii_name_conflicts(clients):
    clients["admin"].post_json("/api/v1/roles", {"name": "Élève"}, status=201)
    other = clients["admin"].post_json("/api/v1/roles", {"name": "other-role"}, status=201).json
    clients["admin"].put_json(f"/api/v1/roles/{other['id']}", {"name": "élève"}, status=409)


def test_role_insert_racing_the_name_check_is_a_conflict(dbsession, app, monkeypatch):
    """Two requests creating one name at once: the loser's flush hits the
    unique index; that is a 409, not a 500."""
    from learnsail.errors import Conflict
    from learnsail.identity import rbac

    rbac.create_role(dbsession, rbac.declared_permissions(app.registry), name="racer")
    monkeypatch.setattr(rbac, "_check_name", lambda session, name, exclude_id=None: name)
    with pytest.raises(Conflict):
        rbac.create_role(dbsession, rbac.declared_permissions(app.registry), name="racer")
    # the session is still usable afterwards
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(rbac.Role).where(rbac.Role.name == "racer")) == 1


def test_admin_created_usernames_differing_in_non_ascii_case_conflict(clients):
    body = {"username": "Ñandú", "password": "a long enough passphrase", "email": "n1@example.com"}
    clients["admin"].post_json("/api/v1/admin/users", body, status=201)
    body = {**body, "username": "ñandú", "email": "n2@example.com"}
    response = clients["admin"].post_json("/api/v1/admin/users", body, status=409)
    assert "username" in error_of(response)["details"]


def test_admin_create_racing_the_uniqueness_check_is_a_conflict(clients, monkeypatch):
    """Two admins creating one username at once: the loser's insert hits
    the unique index; that is a 409 naming the field."""
    from learnsail.identity import admin_users, services

    body = {"username": "twice", "password": "a long enough passphrase", "email": "t1@example.com"}
    clients["admin"].post_json("/api/v1/admin/users", body, status=201)
    monkeypatch.setattr(admin_users, "_ensure_free", lambda *args, **kwargs: None)
    for name in ("ensure_unique", "_ensure_unique"):
        monkeypatch.setattr(services, name, lambda *args, **kwargs: None, raising=False)
    response = clients["admin"].post_json("/api/v1/admin/users", {**body, "email": "t2@example.com"}, status=409)
    assert "username" in error_of(response)["details"]
    other = clients["admin"].post_json("/api/v1/admin/users", {**body, "username": "third", "email": "t3@example.com"},
                                       status=201).json
    response = clients["admin"].put_json(f"/api/v1/admin/users/{other['id']}", {"email": "t1@example.com"},
                                         status=409)
    assert "email" in error_of(response)["details"]


def test_self_registration_non_ascii_username_taken(testapp):
    body = {"username": "Ökonom", "password": "a long enough passphrase", "email": "o1@example.com"}
    testapp.post_json("/api/v1/users/register", body, status=201)
    body = {**body, "username": "ökonom", "email": "o2@example.com"}
    testapp.post_json("/api/v1/users/register", body, status=409)


def test_admin_search_ignores_non_ascii_case(clients, make_user):
    make_user(username="Ülrich")
    found = clients["admin"].get("/api/v1/admin/users", params={"search": "ülr"}, status=200).json
    assert [u["username"] for u in found["results"]] == ["Ülrich"]


# --- SQLite: a write after a stale read is retried ----------------------------------------------

def test_sqlite_busy_snapshot_is_retryable(tmp_path):
    """WAL mode: a transaction that read, then writes after another
    connection committed, fails at once with "database is locked" (no busy
    wait helps).  pyramid_tm must see it as retryable so pyramid_retry
    replays the request."""
    from zope.sqlalchemy.datamanager import SessionDataManager

    import learnsail.db as db

    engine = make_engine({"learnsail.database_url": f"sqlite:///{tmp_path / 'busy.sqlite'}"})
    db._mark_sqlite_retryable()
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        first, second = engine.connect(), engine.connect()
        first.begin()
        first.exec_driver_sql("SELECT count(*) FROM t").scalar()
        with second.begin():
            second.exec_driver_sql("INSERT INTO t VALUES (1)")
        with pytest.raises(sa.exc.OperationalError) as caught:
            first.exec_driver_sql("INSERT INTO t VALUES (2)")
        first.rollback()
        first.close()
        second.close()
        assert SessionDataManager.should_retry(None, caught.value)
    finally:
        engine.dispose()


@pytest.fixture
def file_sqlite_app(tmp_path):
    """An app of its own on a SQLite file, with real connections (not the
    shared test connection), so two transactions can collide."""
    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app
    from learnsail.testing import isolated_environ

    settings = {
        "learnsail.data_dir": str(tmp_path / "data"),
        "learnsail.database_url": f"sqlite:///{tmp_path / 'app.sqlite'}",
        "learnsail.plugins": "",
        "learnsail.secret": "fuzz-regressions-secret-fuzz-regressions-1",
        "learnsail.log_level": "WARNING",
    }
    config = configure(settings, environ=isolated_environ())
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    app = make_wsgi_app(config)
    yield app, tmp_path / "app.sqlite"
    app.registry["learnsail.db_engine"].dispose()


def test_a_request_that_hits_sqlite_busy_is_replayed(file_sqlite_app):
    """The write of a request collides with a commit made since its first
    read (SQLITE_BUSY at once, in WAL mode): the request is replayed and
    succeeds, and the failed attempt is no "unhandled error"."""
    import logging
    import sqlite3

    import webtest
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from learnsail.identity.services import create_user
    from learnsail.testing.identity import bearer

    app, path = file_sqlite_app
    engine = app.registry["learnsail.db_engine"]
    with Session(engine) as session:
        admin = create_user(session, username="busy_admin", password="correct horse battery", role="admin",
                            email="busy_admin@example.com")
        student = create_user(session, username="busy_student", password="correct horse battery",
                              email="busy_student@example.com")
        session.commit()
        headers, student_id = bearer(app.registry.settings, admin), student.id

    inserts = []

    def collide(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO user_roles"):
            inserts.append(statement)
            if len(inserts) == 1:  # another connection commits between our read and our write
                other = sqlite3.connect(path, isolation_level=None)
                other.execute("CREATE TABLE IF NOT EXISTS busy_probe (n INTEGER)")
                other.execute("INSERT INTO busy_probe VALUES (1)")
                other.close()

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    errors_log = logging.getLogger("learnsail.errors")
    errors_log.addHandler(handler)
    event.listen(engine, "before_cursor_execute", collide)
    try:
        client = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        response = client.post(f"/api/v1/users/{student_id}/roles/2", headers=headers, status=201)
    finally:
        event.remove(engine, "before_cursor_execute", collide)
        errors_log.removeHandler(handler)
    assert len(inserts) == 2  # the first attempt failed, the replay wrote
    assert [r["name"] for r in response.json["roles"]] == ["student", "teacher"]
    assert [r.levelname for r in records] == ["WARNING"]
    assert "retrying" in records[0].getMessage()


# --- documentation ----------------------------------------------------------------------------

def test_request_bodies_are_required_only_when_a_field_is(testapp):
    doc = testapp.get("/api/openapi.json").json
    profile = doc["paths"]["/api/v1/users/profile"]["put"]["requestBody"]
    assert profile["required"] is False
    role = doc["paths"]["/api/v1/roles"]["post"]["requestBody"]
    assert role["required"] is True


def test_documented_id_ranges(testapp):
    doc = testapp.get("/api/openapi.json").json
    (param,) = doc["paths"]["/api/v1/roles/{id}"]["get"]["parameters"]
    assert param["schema"]["minimum"] == 1
    assert param["schema"]["maximum"] == BIG - 1


def test_a_collision_at_commit_time_is_replayed_too(file_sqlite_app):
    """A sign-in writes its log entry only when the transaction commits: a
    SQLITE_BUSY there (another process committed since the request's first
    read) is replayed like one raised in the view, not answered 500."""
    import sqlite3

    import webtest
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from learnsail.identity.services import create_user

    app, path = file_sqlite_app
    engine = app.registry["learnsail.db_engine"]
    with Session(engine) as session:
        create_user(session, username="busy_login", password="correct horse battery",
                    email="busy_login@example.com")
        session.commit()
    inserts = []

    def collide(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO login_events"):
            inserts.append(statement)
            if len(inserts) == 1:
                other = sqlite3.connect(path, isolation_level=None)
                other.execute("CREATE TABLE IF NOT EXISTS busy_probe (n INTEGER)")
                other.execute("INSERT INTO busy_probe VALUES (1)")
                other.close()

    event.listen(engine, "before_cursor_execute", collide)
    try:
        client = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        response = client.post_json("/api/v1/users/login", {"username": "busy_login",
                                                             "password": "correct horse battery"}, status=200)
    finally:
        event.remove(engine, "before_cursor_execute", collide)
    assert len(inserts) == 2 and response.json["access_token"]


def test_concurrent_writers_on_sqlite_all_succeed(file_sqlite_app):
    """Many requests writing at once on SQLite: each collision is replayed
    after a random, growing pause, so none runs out of attempts (without
    the pause, writers that collided once collided again at once)."""
    import threading

    from sqlalchemy.orm import Session
    from webob import Request

    from learnsail.identity.services import create_user
    from learnsail.testing.identity import bearer

    app, _path = file_sqlite_app
    with Session(app.registry["learnsail.db_engine"]) as session:
        users = [create_user(session, username=f"writer{i}", password="correct horse battery",
                             email=f"writer{i}@example.com") for i in range(8)]
        session.commit()
        headers = [bearer(app.registry.settings, u) for u in users]
    statuses = []

    def write(i):
        for n in range(5):
            request = Request.blank("/api/v1/users/profile", method="PUT", headers=headers[i],
                                    content_type="application/json", remote_addr="127.0.0.1",
                                    body=f'{{"profile": {{"bio": "edit {n} by {i}"}}}}'.encode())
            statuses.append(request.get_response(app).status_int)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 40
