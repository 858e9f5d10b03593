"""The owner's personal data: export and erasure (GET /api/v1/users/me/export,
DELETE /api/v1/users/me)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from learnsail import hookimpl
from learnsail.identity import audit, codes
from learnsail.identity.models import (AuditEntry, LoginEvent, OAuthAccount, RefreshToken, User,
                                       UserProfile, VerificationCode)

EXPORT = "/api/v1/users/me/export"
ME = "/api/v1/users/me"
PASSWORD = "correct horse battery"


class NotesPlugin:
    """A plugin holding personal data, for the duration of a test."""

    def __init__(self) -> None:
        self.erased: list[int] = []
        self.notes: dict[int, list[str]] = {}

    @hookimpl
    def learnsail_user_export(self, user_id, session):
        return {"notes": self.notes[user_id]} if user_id in self.notes else None

    @hookimpl
    def learnsail_user_erased(self, user_id, session):
        # runs in the erasing transaction, before the account is anonymised
        assert session.get(User, user_id).username != f"deleted-{user_id}"
        self.erased.append(user_id)
        self.notes.pop(user_id, None)


class SessionOnlyPlugin:
    """An implementation may take only some of the hook's arguments."""

    @hookimpl
    def learnsail_user_export(self, user_id):
        return {"seen": user_id}


@pytest.fixture
def plugins(app):
    pm = app.registry["learnsail.pm"]
    notes, partial = NotesPlugin(), SessionOnlyPlugin()
    pm.register(notes, name="notes")
    pm.register(partial, name="partial")
    yield notes
    pm.unregister(name="notes")
    pm.unregister(name="partial")


@pytest.fixture
def owner(make_user, dbsession, testapp):
    user = make_user("student", username="dataowner", email="owner@example.com", phone="13800138999")
    dbsession.add(UserProfile(user_id=user.id, real_name="韩梅梅", bio="我的简介", birthday=dt.date(2000, 1, 2)))
    dbsession.commit()
    testapp.post_json("/api/v1/users/login", {"username": "dataowner", "password": "wrong guess!!"}, status=401)
    testapp.post_json("/api/v1/users/login", {"username": "dataowner", "password": PASSWORD},
                      extra_environ={"HTTP_USER_AGENT": "browser/1"})
    return user


def test_export_holds_every_piece_of_personal_data(testapp, owner, auth_headers, plugins, make_user, dbsession,
                                                   app):
    plugins.notes[owner.id] = ["my note"]
    admin = make_user("admin")
    testapp.put_json(f"/api/v1/admin/users/{owner.id}", {"email": "owner2@example.com"}, headers=auth_headers(admin))
    codes.issue(dbsession, app.registry.settings, purpose="verify_email", channel="email",
                destination="owner2@example.com", user_id=owner.id)
    audit.record(dbsession, action="core:thing:update", target_type="thing", target_id=7, actor_id=owner.id,
                 ip="10.1.1.1", before={"email": "someone.else@example.com"})
    dbsession.add(OAuthAccount(user_id=owner.id, platform="wechat", openid="o-owner", nickname="梅梅"))
    dbsession.commit()

    r = testapp.get(EXPORT, headers=auth_headers(owner))
    assert "$argon2" not in r.text and "code_hash" not in r.text
    assert r.headers["Content-Disposition"].startswith("attachment")
    data = r.json
    assert data["account"]["username"] == "dataowner" and data["account"]["email"] == "owner2@example.com"
    assert data["account"]["phone"] == "13800138999" and data["account"]["roles"] == ["student"]
    assert "password" not in data["account"]
    assert data["profile"]["real_name"] == "韩梅梅" and data["profile"]["birthday"] == "2000-01-02"
    assert [(e["success"], e["reason"]) for e in data["login_events"]] == [(False, "bad_credentials"), (True, None)]
    assert data["login_events"][1]["user_agent"] == "browser/1"
    (change,) = data["audit_entries"]
    assert change["action"] == "core:user:update" and change["after"]["email"] == "owner2@example.com"
    (action,) = data["actions"]
    assert action == {"created_at": action["created_at"], "action": "core:thing:update", "target_type": "thing",
                      "target_id": "7", "ip": "10.1.1.1"}  # not the other person's data
    assert "someone.else" not in r.text
    assert [(b["platform"], b["openid"], b["nickname"]) for b in data["oauth_accounts"]] == \
        [("wechat", "o-owner", "梅梅")]
    (code,) = data["verification_codes"]
    assert code["destination"] == "owner2@example.com" and code["purpose"] == "verify_email"
    assert data["plugins"] == {"notes": {"notes": ["my note"]}, "partial": {"seen": owner.id}}
    json.dumps(data)  # plain JSON throughout


def test_export_and_erase_need_a_signed_in_user(testapp):
    assert testapp.get(EXPORT, status=401).json["error"]["code"] == "AUTH_FAILED"
    assert testapp.delete_json(ME, {"password": "x"}, status=401).json["error"]["code"] == "AUTH_FAILED"


def test_erase_with_a_wrong_password_changes_nothing(testapp, owner, auth_headers, plugins, dbsession):
    r = testapp.delete_json(ME, {"password": "not my password"}, headers=auth_headers(owner), status=401)
    assert r.json["error"]["code"] == "AUTH_FAILED" and r.json["error"]["details"] == {"password": ["Incorrect."]}
    assert plugins.erased == []
    dbsession.expire_all()
    assert dbsession.get(User, owner.id).username == "dataowner"
    testapp.get("/api/v1/users/profile", headers=auth_headers(owner), status=200)
    r = testapp.delete_json(ME, {}, headers=auth_headers(owner), status=400)
    assert "password" in r.json["error"]["details"]


def test_erase_anonymises_the_account(testapp, owner, auth_headers, plugins, make_user, dbsession, app):
    plugins.notes[owner.id] = ["private"]
    admin = make_user("admin")
    testapp.put_json(f"/api/v1/admin/users/{owner.id}", {"phone": "13800138998"}, headers=auth_headers(admin))
    codes.issue(dbsession, app.registry.settings, purpose="sms_register", channel="sms", destination="13800138998")
    dbsession.add(OAuthAccount(user_id=owner.id, platform="qq", openid="q-owner"))
    dbsession.commit()
    login = testapp.post_json("/api/v1/users/login", {"username": "dataowner", "password": PASSWORD}).json
    headers = {"Authorization": f"Bearer {login['access_token']}"}

    testapp.delete_json(ME, {"password": PASSWORD}, headers=headers, status=204)

    assert plugins.erased == [owner.id] and owner.id not in plugins.notes
    dbsession.expire_all()
    user = dbsession.get(User, owner.id)
    assert user.username == f"deleted-{owner.id}" and user.email is None and user.phone is None
    assert user.deleted_at is not None and user.is_active is False and user.password.startswith("!")
    assert user.profile is None
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(UserProfile)
                            .where(UserProfile.user_id == owner.id)) == 0
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(LoginEvent)
                            .where(LoginEvent.user_id == owner.id)) == 0
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(VerificationCode).where(
        sa.or_(VerificationCode.user_id == owner.id, VerificationCode.destination == "13800138998"))) == 0
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(OAuthAccount)
                            .where(OAuthAccount.user_id == owner.id)) == 0
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(RefreshToken)
                            .where(RefreshToken.user_id == owner.id)) == 0
    # sessions end; the old credentials sign in nowhere
    testapp.get("/api/v1/users/profile", headers=headers, status=401)
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": login["refresh_token"]}, status=401)
    testapp.post_json("/api/v1/users/login", {"username": "dataowner", "password": PASSWORD}, status=401)
    testapp.post_json("/api/v1/users/login", {"email": "owner@example.com", "password": PASSWORD}, status=401)
    # the audit trail keeps what happened, not who it was
    (update,) = dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:user:update",
                                                              AuditEntry.target_id == str(owner.id))).all()
    assert update.before["phone"] == "[erased]" and update.after["phone"] == "[erased]"
    assert update.before["role"] == "student" and update.actor_id == admin.id
    (erase,) = dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:user:erase")).all()
    assert (erase.target_id, erase.actor_id, erase.ip) == (str(owner.id), owner.id, None)
    # the email and the username are free again
    testapp.post_json("/api/v1/users/register", {"username": "dataowner", "email": "owner@example.com",
                                                 "password": "a brand new password"}, status=201)
