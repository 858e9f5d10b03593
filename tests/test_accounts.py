"""Accounts: register, sign in, tokens, logout, passwords, profile, lockout."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
import sqlalchemy as sa

from learnsail.identity.models import LoginEvent, RefreshToken, Role, User

PASSWORD = "correct horse battery"


def error(response):
    return response.json["error"]


def register(testapp, status=201, **fields):
    body = {"username": "lin", "email": "Lin@Example.com", "phone": "138 0013 8000", "password": PASSWORD}
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    return testapp.post_json("/api/v1/users/register", body, status=status)


def login(testapp, status=200, password=PASSWORD, **who):
    who = who or {"username": "lin"}
    return testapp.post_json("/api/v1/users/login", {**who, "password": password}, status=status)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# --- registration ---------------------------------------------------------------

def test_register_returns_the_spec_fields(testapp, dbsession):
    r = register(testapp)
    assert set(r.json) == {"id", "username", "email", "phone", "role_id", "created_at"}
    assert r.json["email"] == "lin@example.com"  # normalised
    assert r.json["phone"] == "13800138000"
    student = dbsession.scalar(sa.select(Role).where(Role.name == "student"))
    assert r.json["role_id"] == student.id
    assert "$argon2" not in r.text and "password" not in r.json


@pytest.mark.parametrize("field,value", [("username", "lin"), ("username", "LIN"), ("email", "LIN@example.com"),
                                         ("phone", "+86 13800138000")])
def test_register_duplicates_are_409_naming_the_field(testapp, field, value):
    register(testapp)
    others = {"username": "other", "email": "other@example.com", "phone": "13900139000", field: value}
    r = register(testapp, status=409, **others)
    assert error(r)["code"] == "CONFLICT" and field in error(r)["details"]


def test_register_password_policy(testapp):
    r = register(testapp, status=400, password="short")
    assert "password" in error(r)["details"]
    r = register(testapp, status=400, password="password123")
    assert any("too common" in reason for reason in error(r)["details"]["password"])
    r = register(testapp, status=400, password="x" * 129)
    assert any("at most 128" in reason for reason in error(r)["details"]["password"])
    register(testapp, password="no composition rules here")  # long passphrase: fine


def test_register_validation_names_every_field(testapp, dbsession):
    before = dbsession.scalar(sa.select(sa.func.count()).select_from(User))
    r = register(testapp, status=400, username="a b", email=None, phone=None, password=None)
    assert {"username", "email", "password"} <= set(error(r)["details"])
    r = register(testapp, status=400, email="not-an-email")
    assert "email" in error(r)["details"]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(User)) == before


def test_register_role_must_be_self_assignable(testapp, dbsession):
    roles = {r.name: r.id for r in dbsession.scalars(sa.select(Role))}
    r = register(testapp, role_id=roles["teacher"])
    assert r.json["role_id"] == roles["teacher"]
    r = register(testapp, status=403, username="sneaky", email="s@example.com", phone="13700137000",
                 role_id=roles["admin"])
    assert error(r)["code"] == "PERMISSION_DENIED"
    r = register(testapp, status=400, username="ghost", email="g@example.com", phone="13600136000",
                 role_id=99999)
    assert "role_id" in error(r)["details"]


def test_register_rate_limited(testapp, app):
    app.registry.settings["learnsail.ratelimit_register_ip"] = "2/hour"
    try:
        register(testapp, username="reg1", email="r1@example.com", phone="13100131001")
        register(testapp, username="reg2", email="r2@example.com", phone="13100131002")
        r = register(testapp, status=429, username="reg3", email="r3@example.com", phone="13100131003")
        assert error(r)["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1
    finally:
        app.registry.settings["learnsail.ratelimit_register_ip"] = "20/hour"


# --- sign-in -----------------------------------------------------------------------

@pytest.mark.parametrize("who", [{"username": "lin"}, {"email": "LIN@example.com"},
                                 {"phone": "+8613800138000"}])
def test_login_by_username_email_or_phone(testapp, who):
    register(testapp)
    r = login(testapp, **who)
    assert set(r.json) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert r.json["token_type"] == "Bearer" and r.json["expires_in"] == 7200
    assert r.json["user"] == {"id": r.json["user"]["id"], "username": "lin", "email": "lin@example.com",
                              "role": "student"}
    profile = testapp.get("/api/v1/users/profile", headers=bearer(r.json["access_token"]))
    assert profile.json["username"] == "lin"


def test_wrong_credentials_do_not_say_which_part(testapp):
    register(testapp)
    wrong_password = error(login(testapp, status=401, password="not the password"))
    unknown_user = error(login(testapp, status=401, username="nobody"))
    assert wrong_password == unknown_user
    assert wrong_password["code"] == "AUTH_FAILED"


def test_login_log_is_written_even_for_failures(testapp, dbsession):
    register(testapp)
    login(testapp, status=401, password="not the password")
    r = login(testapp)
    events = dbsession.scalars(sa.select(LoginEvent).order_by(LoginEvent.id)).all()
    assert [(e.success, e.reason) for e in events] == [(False, "bad_credentials"), (True, None)]
    mine = testapp.get("/api/v1/users/me/logins", headers=bearer(r.json["access_token"])).json
    assert mine["count"] == 2 and mine["results"][0]["success"] is True
    assert {"ip", "user_agent", "method", "created_at"} <= set(mine["results"][0])


def test_lockout_after_failures_then_expiry(testapp, dbsession):
    register(testapp)
    for _ in range(3):  # learnsail.login_max_failures = 3 in the core tests
        login(testapp, status=401, password="not the password")
    r = login(testapp, status=401)  # even the right password is refused now
    assert "locked" in error(r)["message"] and error(r)["details"]["retry_after"] > 0
    user = dbsession.scalar(sa.select(User).where(User.username == "lin"))
    dbsession.refresh(user)
    user.locked_until = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    dbsession.commit()
    login(testapp)  # the lock expired


def test_disabled_account_cannot_sign_in_and_its_tokens_stop(testapp, dbsession):
    register(testapp)
    token = login(testapp).json["access_token"]
    user = dbsession.scalar(sa.select(User).where(User.username == "lin"))
    user.is_active = False
    dbsession.commit()
    login(testapp, status=401)
    testapp.get("/api/v1/users/profile", headers=bearer(token), status=401)


# --- tokens ------------------------------------------------------------------------

def test_refresh_rotates_and_reuse_revokes_the_family(testapp, dbsession):
    register(testapp)
    first = login(testapp).json
    second = testapp.post_json("/api/v1/users/refresh", {"refresh_token": first["refresh_token"]}).json
    assert set(second) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert second["refresh_token"] != first["refresh_token"]
    testapp.get("/api/v1/users/profile", headers=bearer(second["access_token"]))
    # the first refresh token is spent: presenting it again revokes the family
    r = testapp.post_json("/api/v1/users/refresh", {"refresh_token": first["refresh_token"]}, status=401)
    assert error(r)["code"] == "AUTH_FAILED"
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": second["refresh_token"]}, status=401)
    rows = dbsession.scalars(sa.select(RefreshToken)).all()
    assert rows and all(row.revoked_at is not None for row in rows)


def test_refresh_rejects_access_tokens_and_garbage(testapp):
    register(testapp)
    pair = login(testapp).json
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": pair["access_token"]}, status=401)
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": "garbage"}, status=401)
    # and a refresh token is not an access token
    testapp.get("/api/v1/users/profile", headers=bearer(pair["refresh_token"]), status=401)


def test_logout_revokes_the_access_token_and_its_refresh_token(testapp):
    register(testapp)
    pair = login(testapp).json
    other = login(testapp).json  # another device
    testapp.post_json("/api/v1/users/logout", {"refresh_token": pair["refresh_token"]},
                      headers=bearer(pair["access_token"]), status=204)
    testapp.get("/api/v1/users/profile", headers=bearer(pair["access_token"]), status=401)
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": pair["refresh_token"]}, status=401)
    testapp.get("/api/v1/users/profile", headers=bearer(other["access_token"]))  # still signed in there
    testapp.post_json("/api/v1/users/logout", {"everywhere": True}, headers=bearer(other["access_token"]),
                      status=204)
    testapp.get("/api/v1/users/profile", headers=bearer(other["access_token"]), status=401)
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": other["refresh_token"]}, status=401)


def test_logout_needs_a_token(testapp):
    r = testapp.post_json("/api/v1/users/logout", {}, status=401)
    assert error(r)["code"] == "AUTH_FAILED"


def test_forged_tokens_are_refused(testapp, app):
    register(testapp)
    good = login(testapp).json["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    forged_none = jwt.encode(claims, key=None, algorithm="none")
    other_key = jwt.encode(claims, "another-secret-another-secret-another", algorithm="HS256")
    wrong_audience = jwt.encode({**claims, "aud": "someone-else"},
                                app.registry.settings["learnsail.secret"], algorithm="HS256")
    expired = jwt.encode({**claims, "exp": claims["iat"] - 10},
                         app.registry.settings["learnsail.secret"], algorithm="HS256")
    escalated = jwt.encode({**claims, "role": "admin"}, app.registry.settings["learnsail.secret"],
                           algorithm="HS256")
    for token in (forged_none, other_key, wrong_audience, expired, escalated):
        testapp.get("/api/v1/users/profile", headers=bearer(token), status=401)
    testapp.get("/api/v1/users/profile", headers=bearer(good))


def test_rs256_tokens(testapp, app):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from learnsail.identity import tokens

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    settings = {"learnsail.jwt_algorithm": "RS256", "learnsail.jwt_private_key": private,
                "learnsail.jwt_public_key": public, "learnsail.jwt_audience": "learnsail"}
    token = tokens.issue(settings, 1, "access", 60)
    assert tokens.decode(settings, token, "access")["sub"] == "1"
    # algorithm confusion: an HS256 token whose HMAC key is the public key
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    payload = jwt.decode(token, options={"verify_signature": False})
    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + \
        b64(json.dumps(payload).encode())
    signature = hmac.new(public.encode(), signing_input, hashlib.sha256).digest()
    confused = (signing_input + b"." + b64(signature)).decode()
    with pytest.raises(tokens.TokenError):
        tokens.decode(settings, confused, "access")
    with pytest.raises(tokens.TokenError):
        tokens.decode(settings, jwt.encode(payload, key=None, algorithm="none"), "access")


# --- password and profile ------------------------------------------------------------

def test_password_change_revokes_old_tokens(testapp):
    register(testapp)
    old = login(testapp).json
    r = testapp.post_json("/api/v1/users/password/change",
                          {"old_password": "wrong one", "new_password": "a brand new passphrase"},
                          headers=bearer(old["access_token"]), status=401)
    assert "old_password" in error(r)["details"]
    r = testapp.post_json("/api/v1/users/password/change",
                          {"old_password": PASSWORD, "new_password": "password"},
                          headers=bearer(old["access_token"]), status=400)
    assert "new_password" in error(r)["details"]
    testapp.post_json("/api/v1/users/password/change",
                      {"old_password": PASSWORD, "new_password": "a brand new passphrase"},
                      headers=bearer(old["access_token"]), status=204)
    testapp.get("/api/v1/users/profile", headers=bearer(old["access_token"]), status=401)
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": old["refresh_token"]}, status=401)
    login(testapp, status=401)
    fresh = login(testapp, password="a brand new passphrase").json
    testapp.get("/api/v1/users/profile", headers=bearer(fresh["access_token"]))


def test_profile_read_and_update(testapp):
    register(testapp)
    register(testapp, username="wang", email="wang@example.com", phone="13900139000")
    token = login(testapp).json["access_token"]
    r = testapp.get("/api/v1/users/profile", headers=bearer(token))
    assert r.json["profile"] == {"real_name": None, "gender": None, "birthday": None, "bio": None,
                                 "location": None, "education": None, "work_experience": None}
    r = testapp.put_json("/api/v1/users/profile", {
        "email": "new@example.com", "profile": {"real_name": "林", "gender": "female",
                                                "birthday": "2001-02-03", "bio": "学习🚀"}},
        headers=bearer(token))
    assert r.json["email"] == "new@example.com" and r.json["email_verified"] is False
    assert r.json["profile"]["real_name"] == "林" and r.json["profile"]["birthday"] == "2001-02-03"
    assert testapp.get("/api/v1/users/profile", headers=bearer(token)).json["profile"]["bio"] == "学习🚀"
    r = testapp.put_json("/api/v1/users/profile", {"email": "wang@example.com"}, headers=bearer(token),
                         status=409)
    assert "email" in error(r)["details"]
    r = testapp.put_json("/api/v1/users/profile", {"profile": {"gender": "robot"}, "role_id": 1},
                         headers=bearer(token), status=400)
    assert {"profile.gender", "role_id"} <= set(error(r)["details"])
    testapp.get("/api/v1/users/profile", status=401)
