"""Users admin (004 §2.2.1): /api/v1/admin/users."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from learnsail.errors import Conflict

from learnsail.identity import admin_users
from learnsail.identity.models import AuditEntry, Role, User, UserProfile, UserRole

BASE = "/api/v1/admin/users"


def error(response) -> dict:
    return response.json["error"]


@pytest.fixture
def admin(make_user):
    return make_user("admin")


@pytest.fixture
def as_admin(admin, auth_headers):
    return auth_headers(admin)


def audit_entries(dbsession, action: str, user_id: int) -> list[AuditEntry]:
    return list(dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == action,
                                                              AuditEntry.target_id == str(user_id))
                                  .order_by(AuditEntry.id)))


# --- who may ----------------------------------------------------------------------------

ENDPOINTS = [
    ("get", BASE, None), ("post", BASE, {"username": "x" * 5, "password": "long enough pass"}),
    ("get", f"{BASE}/export.csv", None), ("get", f"{BASE}/{{id}}", None),
    ("put", f"{BASE}/{{id}}", {"email": "changed@example.com"}), ("delete", f"{BASE}/{{id}}", None),
    ("post", f"{BASE}/{{id}}/disable", None), ("post", f"{BASE}/{{id}}/enable", None),
    ("post", f"{BASE}/{{id}}/unlock", None), ("get", f"{BASE}/{{id}}/logins", None),
]


@pytest.mark.parametrize("method, path, body", ENDPOINTS)
def test_only_admins_reach_the_users_admin(testapp, make_user, auth_headers, method, path, body):
    target = make_user("student")
    path = path.format(id=target.id)
    call = getattr(testapp, f"{method}_json" if body is not None else method)
    args = (path, body) if body is not None else (path,)
    r = call(*args, status=401)
    assert error(r)["code"] == "AUTH_FAILED"
    for role in ("student", "teacher"):
        r = call(*args, headers=auth_headers(make_user(role)), status=403)
        assert error(r)["code"] == "PERMISSION_DENIED"
    # a student's own account is no exception
    r = call(*args, headers=auth_headers(target), status=403)


# --- listing ------------------------------------------------------------------------------

def test_list_filters_and_sorts(testapp, make_user, as_admin, admin, dbsession):
    alice = make_user("teacher", username="alice_filter", email="alice@filter.example", phone="13811110000")
    bob = make_user("student", username="bob_filter", email="bob@filter.example")
    carol = make_user("student", username="carol_filter", email="carol@filter.example")
    dave = make_user("student", username="dave_filter", email="dave@filter.example")
    erin = make_user("student", username="erin_filter", email="erin@filter.example")
    now = dt.datetime.now(dt.timezone.utc)
    rows = {u.id: dbsession.get(User, u.id) for u in (alice, bob, carol, dave, erin)}
    rows[bob.id].is_active = False
    rows[carol.id].deleted_at = now
    rows[carol.id].is_active = False
    rows[dave.id].locked_until = now + dt.timedelta(minutes=10)
    rows[alice.id].created_at = dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc)
    rows[erin.id].created_at = dt.datetime(2024, 3, 31, 23, 59, tzinfo=dt.timezone.utc)
    dbsession.add(UserRole(user_id=erin.id, role_id=dbsession.scalar(sa.select(Role.id).where(Role.name == "teacher"))))
    dbsession.commit()

    def names(**params):
        r = testapp.get(BASE, params={"search": "_filter", **params}, headers=as_admin)
        return [row["username"] for row in r.json["results"]]

    assert names(sort="username") == ["alice_filter", "bob_filter", "dave_filter", "erin_filter"]  # no deleted
    assert names(sort="-username") == ["erin_filter", "dave_filter", "bob_filter", "alice_filter"]
    assert names(status="disabled") == ["bob_filter"]
    assert names(status="deleted") == ["carol_filter"]
    assert names(status="locked") == ["dave_filter"]
    assert names(status="active", sort="username") == ["alice_filter", "erin_filter"]
    assert names(role="teacher", sort="username") == ["alice_filter", "erin_filter"]  # primary or extra
    assert names(registered_from="2024-03-01", registered_to="2024-03-31", sort="created_at") == \
        ["alice_filter", "erin_filter"]
    assert names(registered_to="2024-03-30") == ["alice_filter"]
    assert names(search="BOB@FILTER") == ["bob_filter"]
    assert names(search="1381111") == ["alice_filter"]
    assert names(search="%") == []  # wildcards are text

    page = testapp.get(BASE, params={"search": "_filter", "sort": "username", "page_size": 2}, headers=as_admin).json
    assert page["count"] == 4 and len(page["results"]) == 2 and "page=2" in page["next"]
    row = page["results"][0]
    assert row["status"] == "active" and row["role"] == "teacher" and row["phone"] == "13811110000"
    assert "password" not in row
    dave_row = testapp.get(BASE, params={"status": "locked"}, headers=as_admin).json["results"][0]
    assert dave_row["status"] == "locked" and dave_row["locked_until"]

    r = testapp.get(BASE, params={"status": "sleeping", "sort": "password",
                                  "registered_from": "2024-04-01", "registered_to": "2024-03-01"},
                    headers=as_admin, status=400)
    assert {"status", "sort", "registered_to"} <= set(error(r)["details"])


def test_list_runs_the_same_queries_whatever_the_page_size(testapp, make_user, as_admin, app):
    for n in range(12):
        make_user("student", username=f"bulk{n:02d}", email=f"bulk{n}@example.com")
    engine = app.registry["learnsail.db_engine"]
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    testapp.get(BASE, headers=as_admin)  # warm the caches of identity and permissions
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        figures = []
        for size in (1, 12):
            statements.clear()
            r = testapp.get(BASE, params={"search": "bulk", "page_size": size}, headers=as_admin)
            assert len(r.json["results"]) == size
            figures.append(sum(1 for s in statements if s.lstrip().upper().startswith("SELECT")))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert figures[0] == figures[1] <= 3  # at most identity, count and page


# --- one user ----------------------------------------------------------------------------

def test_detail_has_profile_roles_and_recent_logins(testapp, make_user, as_admin, dbsession):
    user = make_user("student", username="detailed")
    dbsession.add(UserProfile(user_id=user.id, real_name="李雷", bio="学生"))
    dbsession.add(UserRole(user_id=user.id, role_id=dbsession.scalar(sa.select(Role.id).where(Role.name == "teacher"))))
    dbsession.commit()
    testapp.post_json("/api/v1/users/login", {"username": "detailed", "password": "wrong password!"}, status=401)
    testapp.post_json("/api/v1/users/login", {"username": "detailed", "password": "correct horse battery"})
    r = testapp.get(f"{BASE}/{user.id}", headers=as_admin)
    assert r.json["profile"]["real_name"] == "李雷" and r.json["roles"] == ["student", "teacher"]
    assert [(e["success"], e["reason"]) for e in r.json["recent_logins"]] == [(True, None), (False, "bad_credentials")]
    assert r.json["last_login"] is not None and "$argon2" not in r.text
    logins = testapp.get(f"{BASE}/{user.id}/logins", params={"page_size": 1}, headers=as_admin).json
    assert logins["count"] == 2 and logins["results"][0]["success"] is True and logins["next"]
    testapp.get(f"{BASE}/999999", headers=as_admin, status=404)
    testapp.get(f"{BASE}/abc", headers=as_admin, status=400)


# --- creating and changing ------------------------------------------------------------------

def test_create_a_user_with_a_role(testapp, as_admin, admin, dbsession):
    body = {"username": "newteacher", "password": "a long enough password", "email": "New@Teacher.example",
            "phone": "13900000001", "role": "teacher"}
    r = testapp.post_json(BASE, body, headers=as_admin, status=201)
    assert r.json["role"] == "teacher" and r.json["email"] == "new@teacher.example" and "$argon2" not in r.text
    (entry,) = audit_entries(dbsession, "core:user:create", r.json["id"])
    assert entry.actor_id == admin.id and entry.after["username"] == "newteacher" and entry.before is None
    assert "password" not in entry.after
    testapp.post_json("/api/v1/users/login", {"username": "newteacher", "password": body["password"]}, status=200)

    r = testapp.post_json(BASE, {**body, "username": "NewTeacher", "email": "other@teacher.example", "phone": None},
                          headers=as_admin, status=409)
    assert error(r)["details"] == {"username": ["Already registered."]}  # case-insensitive on every backend
    r = testapp.post_json(BASE, {**body, "username": "another"}, headers=as_admin, status=409)
    assert error(r)["details"] == {"email": ["Already registered."]}
    r = testapp.post_json(BASE, {**body, "username": "another", "password": "password"}, headers=as_admin, status=400)
    assert "password" in error(r)["details"]
    r = testapp.post_json(BASE, {**body, "username": "another", "role": "wizard"}, headers=as_admin, status=400)
    assert "role" in error(r)["details"]


def test_update_fields_with_uniqueness_and_audit(testapp, make_user, as_admin, admin, dbsession):
    user = make_user("student", username="changeme", email="changeme@example.com")
    other = make_user("student", username="taken", email="taken@example.com", phone="13912345678")
    row = dbsession.get(User, user.id)
    row.email_verified = True
    dbsession.commit()
    r = testapp.put_json(f"{BASE}/{user.id}", {"email": "Fresh@Example.com", "phone": "13987654321",
                                               "role": "teacher"}, headers=as_admin)
    assert (r.json["email"], r.json["phone"], r.json["role"]) == ("fresh@example.com", "13987654321", "teacher")
    assert r.json["email_verified"] is False
    (entry,) = audit_entries(dbsession, "core:user:update", user.id)
    assert entry.before["email"] == "changeme@example.com" and entry.after["email"] == "fresh@example.com"
    assert entry.before["role"] == "student" and entry.after["role"] == "teacher"

    for field, value in (("username", "TAKEN"), ("email", "taken@example.com"), ("phone", "13912345678")):
        r = testapp.put_json(f"{BASE}/{user.id}", {field: value}, headers=as_admin, status=409)
        assert error(r)["code"] == "CONFLICT" and set(error(r)["details"]) == {field}
    r = testapp.put_json(f"{BASE}/{user.id}", {"username": "bad name!"}, headers=as_admin, status=400)
    assert "username" in error(r)["details"]
    # nothing changed: no new audit entry
    testapp.put_json(f"{BASE}/{user.id}", {"username": "changeme"}, headers=as_admin)
    assert len(audit_entries(dbsession, "core:user:update", user.id)) == 1
    assert other.id != user.id


def test_disable_ends_every_session_at_once_and_enable_restores_sign_in(testapp, make_user, auth_headers,
                                                                          as_admin, admin, dbsession):
    user = make_user("student", username="tobedisabled")
    login = testapp.post_json("/api/v1/users/login", {"username": "tobedisabled",
                                                      "password": "correct horse battery"}).json
    bearer = {"Authorization": f"Bearer {login['access_token']}"}
    testapp.get("/api/v1/users/profile", headers=bearer, status=200)
    r = testapp.post(f"{BASE}/{user.id}/disable", headers=as_admin)
    assert r.json["status"] == "disabled" and r.json["is_active"] is False
    testapp.get("/api/v1/users/profile", headers=bearer, status=401)
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": login["refresh_token"]}, status=401)
    testapp.post_json("/api/v1/users/login", {"username": "tobedisabled", "password": "correct horse battery"},
                      status=401)
    (entry,) = audit_entries(dbsession, "core:user:disable", user.id)
    assert entry.before["is_active"] is True and entry.after["is_active"] is False and entry.actor_id == admin.id

    r = testapp.post(f"{BASE}/{user.id}/enable", headers=as_admin)
    assert r.json["status"] == "active"
    assert len(audit_entries(dbsession, "core:user:enable", user.id)) == 1
    testapp.post_json("/api/v1/users/login", {"username": "tobedisabled", "password": "correct horse battery"},
                      status=200)
    testapp.get("/api/v1/users/profile", headers=bearer, status=401)  # old tokens stay dead


def test_update_is_active_false_disables_too(testapp, make_user, auth_headers, as_admin):
    user = make_user("student")
    headers = auth_headers(user)
    testapp.put_json(f"{BASE}/{user.id}", {"is_active": False}, headers=as_admin)
    testapp.get("/api/v1/users/profile", headers=headers, status=401)


def test_admins_cannot_disable_delete_or_demote_themselves(testapp, admin, as_admin):
    for call in (lambda: testapp.post(f"{BASE}/{admin.id}/disable", headers=as_admin, status=409),
                 lambda: testapp.delete(f"{BASE}/{admin.id}", headers=as_admin, status=409),
                 lambda: testapp.put_json(f"{BASE}/{admin.id}", {"is_active": False}, headers=as_admin, status=409),
                 lambda: testapp.put_json(f"{BASE}/{admin.id}", {"role": "student"}, headers=as_admin, status=409)):
        assert error(call())["code"] == "CONFLICT"
    testapp.get("/api/v1/users/profile", headers=as_admin, status=200)


def test_unlock(testapp, make_user, as_admin, dbsession):
    user = make_user("student", username="lockedout")
    for _ in range(3):  # the test app locks after 3 failures
        testapp.post_json("/api/v1/users/login", {"username": "lockedout", "password": "not the password"},
                          status=401)
    assert testapp.get(f"{BASE}/{user.id}", headers=as_admin).json["status"] == "locked"
    testapp.post_json("/api/v1/users/login", {"username": "lockedout", "password": "correct horse battery"},
                      status=401)
    r = testapp.post(f"{BASE}/{user.id}/unlock", headers=as_admin)
    assert r.json["status"] == "active" and r.json["failed_logins"] == 0 and r.json["locked_until"] is None
    (entry,) = audit_entries(dbsession, "core:user:unlock", user.id)
    assert entry.before["locked_until"] is not None and entry.after["locked_until"] is None
    testapp.post_json("/api/v1/users/login", {"username": "lockedout", "password": "correct horse battery"},
                      status=200)


def test_soft_delete(testapp, make_user, auth_headers, as_admin, dbsession):
    user = make_user("student", username="goner")
    headers = auth_headers(user)
    testapp.delete(f"{BASE}/{user.id}", headers=as_admin, status=204)
    testapp.get("/api/v1/users/profile", headers=headers, status=401)
    dbsession.expire_all()
    row = dbsession.get(User, user.id)
    assert row.deleted_at is not None and row.is_active is False and row.username == "goner"
    assert [u["id"] for u in testapp.get(BASE, params={"search": "goner"}, headers=as_admin).json["results"]] == []
    deleted = testapp.get(BASE, params={"search": "goner", "status": "deleted"}, headers=as_admin).json["results"]
    assert [u["status"] for u in deleted] == ["deleted"]
    assert len(audit_entries(dbsession, "core:user:delete", user.id)) == 1
    testapp.delete(f"{BASE}/{user.id}", headers=as_admin, status=204)  # again: nothing more happens
    assert len(audit_entries(dbsession, "core:user:delete", user.id)) == 1
    r = testapp.post(f"{BASE}/{user.id}/enable", headers=as_admin, status=409)
    assert error(r)["code"] == "CONFLICT"
    assert testapp.get(f"{BASE}/{user.id}", headers=as_admin).json["status"] == "deleted"


# --- export ----------------------------------------------------------------------------------

def test_csv_export(testapp, make_user, as_admin, admin, dbsession):
    make_user("teacher", username="csv_teacher", email="csv.teacher@example.com", phone="13712345678")
    make_user("student", username="csv_student", email="=cmd@example.com")
    off = make_user("student", username="csv_off", email="csv.off@example.com")
    dbsession.get(User, off.id).is_active = False
    dbsession.commit()
    r = testapp.get(f"{BASE}/export.csv", params={"search": "csv_", "sort": "username"}, headers=as_admin)
    assert r.content_type == "text/csv" and r.charset == "utf-8"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="users-')
    assert r.body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.body.decode("utf-8-sig"))))
    assert rows[0] == list(admin_users.CSV_COLUMNS)
    body = {row[1]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert list(body) == ["csv_off", "csv_student", "csv_teacher"]
    assert body["csv_teacher"]["role"] == "teacher" and body["csv_teacher"]["phone"] == "13712345678"
    assert body["csv_off"]["status"] == "disabled"
    assert body["csv_student"]["email"] == "'=cmd@example.com"  # no formula for spreadsheets
    assert body["csv_teacher"]["created_at"].endswith("Z")
    assert "$argon2" not in r.text
    only_off = testapp.get(f"{BASE}/export.csv", params={"search": "csv_", "status": "disabled"}, headers=as_admin)
    assert [row[1] for row in csv.reader(io.StringIO(only_off.body.decode("utf-8-sig")))][1:] == ["csv_off"]
    entries = list(dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:user:export")))
    assert len(entries) == 2 and entries[0].after == {"filters": {"search": "csv_", "sort": "username"}}


def test_csv_export_streams_in_batches(app, make_user, dbsession):
    for n in range(5):
        make_user("student", username=f"stream{n}", email=f"stream{n}@example.com")
    stmt = admin_users.user_query(search="stream", sort="username")
    chunks = admin_users.export_csv(app.registry["learnsail.dbsession_factory"], stmt, batch=2)
    assert iter(chunks) is chunks  # a generator: nothing is read before the response is written
    parts = list(chunks)
    assert len(parts) == 3  # header + 2 rows, 2 rows, the last row
    text = b"".join(parts).decode("utf-8-sig")
    assert [line.split(",")[1] for line in text.strip().splitlines()[1:]] == [f"stream{n}" for n in range(5)]


# --- service level ---------------------------------------------------------------------------

def test_status_of():
    now = dt.datetime.now(dt.timezone.utc)
    user = User(is_active=True, deleted_at=None, locked_until=None)
    assert admin_users.status_of(user, now) == "active"
    user.locked_until = now + dt.timedelta(seconds=5)
    assert admin_users.status_of(user, now) == "locked"
    user.locked_until = now - dt.timedelta(seconds=5)
    assert admin_users.status_of(user, now) == "active"
    user.is_active = False
    assert admin_users.status_of(user, now) == "disabled"
    user.deleted_at = now
    assert admin_users.status_of(user, now) == "deleted"


def test_role_change_through_the_service_keeps_one_admin(dbsession, app, make_user):
    only_admin = make_user("admin")
    other_admins = dbsession.scalars(sa.select(User).join(Role).where(Role.name == "admin",
                                                                        User.id != only_admin.id)).all()
    for row in other_admins:
        row.is_active = False
    dbsession.flush()
    with pytest.raises(Conflict, match="last admin"):
        admin_users.update_user(dbsession, dbsession.get(User, only_admin.id), {"role": "student"}, actor_id=None)
