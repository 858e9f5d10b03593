"""Account rules found in review: who may hand out roles, the last admin,
what unlocking and logging out really end, and what sign-in reveals."""

from __future__ import annotations

import sqlalchemy as sa

from learnsail.identity.models import AuditEntry, User
from learnsail.testing.identity import bearer

PASSWORD = "correct horse battery"


def sign_in(testapp, status=200, **who):
    return testapp.post_json("/api/v1/users/login", {**who, "password": who.pop("password", PASSWORD)},
                             status=status)


def test_managing_accounts_does_not_include_handing_out_roles(clients, users, testapp, app):
    role = clients["admin"].post_json("/api/v1/roles", {"name": "helpdesk", "permissions": ["core:users:manage"]},
                                      status=201).json
    clients["admin"].put_json(f"/api/v1/users/{users.teacher.id}/role", {"role_id": role["id"]})
    helpdesk = bearer(app.registry.settings, users.teacher, role="helpdesk")
    target = f"/api/v1/admin/users/{users.student.id}"
    r = testapp.put_json(target, {"role": "admin"}, headers=helpdesk, status=403)
    assert "role" in r.json["error"]["details"]
    testapp.put_json(target, {"phone": "13500135000"}, headers=helpdesk, status=200)  # managing is fine
    testapp.post_json("/api/v1/admin/users", {"username": "newadmin", "password": "a fine passphrase",
                                              "email": "na@example.com", "role": "admin"},
                      headers=helpdesk, status=403)
    # and a role without core:account:self still reaches the caller's own account
    testapp.get("/api/v1/users/profile", headers=helpdesk, status=200)


def test_the_last_admin_cannot_erase_the_account(testapp, make_user, auth_headers):
    admin = make_user("admin", password=PASSWORD)
    r = testapp.delete_json("/api/v1/users/me", {"password": PASSWORD}, headers=auth_headers(admin), status=409)
    assert r.json["error"]["code"] == "CONFLICT"
    make_user("admin")
    testapp.delete_json("/api/v1/users/me", {"password": PASSWORD}, headers=auth_headers(admin), status=204)


def test_unlock_starts_the_count_again(testapp, make_user, clients):
    user = make_user(password=PASSWORD)
    for _ in range(3):  # learnsail.login_max_failures = 3 in the core tests
        sign_in(testapp, 401, username=user.username, password="wrong password")
    sign_in(testapp, 401, username=user.username)  # locked
    clients["admin"].post_json(f"/api/v1/admin/users/{user.id}/unlock", status=200)
    sign_in(testapp, 401, username=user.username, password="wrong password")  # one more failure...
    sign_in(testapp, 200, username=user.username)  # ...does not lock again


def test_a_disabled_account_signing_in_is_not_a_failure_towards_lockout(testapp, make_user, dbsession):
    user = make_user(password=PASSWORD)
    dbsession.execute(sa.update(User).where(User.id == user.id).values(is_active=False))
    dbsession.commit()
    for _ in range(4):
        sign_in(testapp, 401, username=user.username)
    dbsession.execute(sa.update(User).where(User.id == user.id).values(is_active=True))
    dbsession.commit()
    sign_in(testapp, 200, username=user.username)


def test_logout_ends_the_sessions_refresh_token_too(testapp, make_user):
    user = make_user(password=PASSWORD)
    pair = sign_in(testapp, username=user.username).json
    testapp.post_json("/api/v1/users/logout", {}, headers={"Authorization": f"Bearer {pair['access_token']}"},
                      status=204)
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": pair["refresh_token"]}, status=401)


def test_sign_in_ignores_the_case_of_username_and_email(testapp, make_user):
    user = make_user(password=PASSWORD, username="CamelCase", email="Camel@Example.com")
    assert sign_in(testapp, username="camelcase").json["user"]["id"] == user.id
    assert sign_in(testapp, email="CAMEL@example.com").json["user"]["id"] == user.id


def test_reset_confirm_does_not_reveal_accounts_through_the_password_policy(testapp, make_user):
    make_user(email="known@example.com")
    answers = []
    for address in ("known@example.com", "unknown@example.com"):
        r = testapp.post_json("/api/v1/users/password/reset/confirm",
                              {"email": address, "code": "000000", "new_password": address}, status=400)
        answers.append(r.json["error"])
    assert answers[0] == answers[1] and "code" in answers[0]["details"]


def test_password_change_is_rate_limited(testapp, make_user, auth_headers, app, monkeypatch):
    monkeypatch.setitem(app.registry.settings, "learnsail.ratelimit_login_account", "2/minute")
    user = make_user(password=PASSWORD)
    headers = auth_headers(user)
    body = {"old_password": "not it at all", "new_password": "another fine passphrase"}
    testapp.post_json("/api/v1/users/password/change", body, headers=headers, status=401)
    testapp.post_json("/api/v1/users/password/change", body, headers=headers, status=401)
    r = testapp.post_json("/api/v1/users/password/change", body, headers=headers, status=429)
    assert r.json["error"]["code"] == "RATE_LIMITED"


def test_admin_sign_ins_are_audited(testapp, make_user, dbsession):
    admin = make_user("admin", password=PASSWORD)
    sign_in(testapp, username=admin.username)
    entries = dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:user:admin_login")).all()
    assert [(e.actor_id, e.target_id) for e in entries] == [(admin.id, str(admin.id))]
