"""Verification codes: password reset, email/phone verification, SMS
sign-in and registration (004 §2.1)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from learnsail.identity import codes
from learnsail.identity.models import AuditEntry, LoginEvent, User, VerificationCode

RESET = "/api/v1/users/password/reset"
NEW_PASSWORD = "a fresh long passphrase"


def code_in(message) -> str:
    return re.search(r"\b(\d{6})\b", message.get_body().get_content()).group(1)


def error(response) -> dict:
    return response.json["error"]


def live_code(dbsession, destination: str) -> VerificationCode:
    dbsession.expire_all()
    return dbsession.scalars(sa.select(VerificationCode).where(VerificationCode.destination == destination)
                             .order_by(VerificationCode.id.desc())).first()


# --- password reset -------------------------------------------------------------------

def test_password_reset_by_email(testapp, make_user, auth_headers, mailbox, dbsession):
    user = make_user("student", email="reset@example.com")
    old_headers = auth_headers(user)
    testapp.get("/api/v1/users/profile", headers=old_headers, status=200)
    r = testapp.post_json(f"{RESET}/request", {"email": " Reset@Example.com "}, status=202)
    (message,) = mailbox.delivered()
    assert message["To"] == "reset@example.com" and "Password reset" in message["Subject"]
    code = code_in(message)
    stored = live_code(dbsession, "reset@example.com")
    assert code not in stored.code_hash and len(stored.code_hash) == 64  # only the HMAC is kept
    assert stored.purpose == "password_reset" and stored.user_id == user.id

    r = testapp.post_json(f"{RESET}/confirm", {"email": "reset@example.com", "code": code,
                                               "new_password": NEW_PASSWORD}, status=200)
    assert r.json == {"message": "Password reset successfully"}
    # every earlier token stops working; the new password signs in, the old one does not
    testapp.get("/api/v1/users/profile", headers=old_headers, status=401)
    testapp.post_json("/api/v1/users/login", {"email": "reset@example.com", "password": NEW_PASSWORD}, status=200)
    testapp.post_json("/api/v1/users/login", {"email": "reset@example.com", "password": "correct horse battery"},
                      status=401)
    entry = dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:user:password_reset")).one()
    assert (entry.target_id, entry.actor_id, entry.after) == (str(user.id), user.id, {"channel": "email"})
    # single use
    r = testapp.post_json(f"{RESET}/confirm", {"email": "reset@example.com", "code": code,
                                               "new_password": "yet another passphrase"}, status=400)
    assert error(r)["code"] == "VALIDATION_ERROR" and "code" in error(r)["details"]


def test_password_reset_by_sms(testapp, make_user, sms_outbox):
    make_user("student", email=None, phone="13800138011")
    testapp.post_json(f"{RESET}/request", {"phone": "+86 138-0013-8011"}, status=202)
    ((phone, template, params),) = sms_outbox.delivered()
    assert (phone, template, params["minutes"]) == ("13800138011", "verification_code", 10)
    testapp.post_json(f"{RESET}/confirm", {"phone": "13800138011", "code": params["code"],
                                           "new_password": NEW_PASSWORD}, status=200)
    testapp.post_json("/api/v1/users/login", {"phone": "13800138011", "password": NEW_PASSWORD}, status=200)


def test_reset_request_does_not_reveal_whether_an_account_exists(testapp, make_user, mailbox):
    make_user("student", email="known@example.com")
    known = testapp.post_json(f"{RESET}/request", {"email": "known@example.com"}, status=202)
    unknown = testapp.post_json(f"{RESET}/request", {"email": "nobody@example.com"}, status=202)
    assert known.json == unknown.json and known.body == unknown.body
    assert [m["To"] for m in mailbox.delivered()] == ["known@example.com"]
    # confirming for an unknown address answers like a wrong code
    r = testapp.post_json(f"{RESET}/confirm", {"email": "nobody@example.com", "code": "123456",
                                               "new_password": NEW_PASSWORD}, status=400)
    assert set(error(r)["details"]) == {"code"}


def test_reset_refuses_a_weak_password_without_spending_the_code(testapp, make_user, mailbox):
    make_user("student", email="weak@example.com")
    testapp.post_json(f"{RESET}/request", {"email": "weak@example.com"}, status=202)
    code = code_in(mailbox.delivered()[0])
    r = testapp.post_json(f"{RESET}/confirm", {"email": "weak@example.com", "code": code,
                                               "new_password": "password"}, status=400)
    assert set(error(r)["details"]) == {"new_password"}
    testapp.post_json(f"{RESET}/confirm", {"email": "weak@example.com", "code": code,
                                           "new_password": NEW_PASSWORD}, status=200)


def test_reset_input_is_validated(testapp):
    r = testapp.post_json(f"{RESET}/request", {}, status=400)
    assert "email" in error(r)["details"]
    r = testapp.post_json(f"{RESET}/request", {"email": "a@example.com", "phone": "13800138000"}, status=400)
    assert "email" in error(r)["details"]
    r = testapp.post_json(f"{RESET}/request", {"email": "not an email"}, status=400)
    assert "email" in error(r)["details"]
    r = testapp.post_json(f"{RESET}/confirm", {"email": "a@example.com", "code": "12ab",
                                               "new_password": NEW_PASSWORD}, status=400)
    assert "code" in error(r)["details"]


def test_a_code_dies_after_the_maximum_of_wrong_attempts(testapp, make_user, mailbox, dbsession):
    make_user("student", email="guess@example.com")
    testapp.post_json(f"{RESET}/request", {"email": "guess@example.com"}, status=202)
    code = code_in(mailbox.delivered()[0])
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for attempt in range(1, 6):
        testapp.post_json(f"{RESET}/confirm", {"email": "guess@example.com", "code": wrong,
                                               "new_password": NEW_PASSWORD}, status=400)
        assert live_code(dbsession, "guess@example.com").attempts == attempt  # committed despite the 400
    r = testapp.post_json(f"{RESET}/confirm", {"email": "guess@example.com", "code": code,
                                               "new_password": NEW_PASSWORD}, status=400)
    assert error(r)["details"] == {"code": [codes.SPENT]}


def test_an_expired_code_is_refused(testapp, make_user, mailbox, dbsession):
    make_user("student", email="late@example.com")
    testapp.post_json(f"{RESET}/request", {"email": "late@example.com"}, status=202)
    code = code_in(mailbox.delivered()[0])
    row = live_code(dbsession, "late@example.com")
    assert dt.timedelta(seconds=590) < row.expires_at - row.created_at <= dt.timedelta(seconds=600)
    row.expires_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    dbsession.commit()
    r = testapp.post_json(f"{RESET}/confirm", {"email": "late@example.com", "code": code,
                                               "new_password": NEW_PASSWORD}, status=400)
    assert error(r)["details"] == {"code": [codes.WRONG]}


def test_a_new_code_voids_the_previous_one(testapp, make_user, mailbox):
    make_user("student", email="twice@example.com")
    testapp.post_json(f"{RESET}/request", {"email": "twice@example.com"}, status=202)
    (first,) = (code_in(m) for m in mailbox.delivered())  # sends run on a pool: take them one by one
    testapp.post_json(f"{RESET}/request", {"email": "twice@example.com"}, status=202)
    second = code_in(mailbox.delivered()[-1])
    if first != second:
        testapp.post_json(f"{RESET}/confirm", {"email": "twice@example.com", "code": first,
                                               "new_password": NEW_PASSWORD}, status=400)
    testapp.post_json(f"{RESET}/confirm", {"email": "twice@example.com", "code": second,
                                           "new_password": NEW_PASSWORD}, status=200)


def test_code_requests_are_rate_limited_per_destination_and_per_ip(testapp, make_user, mailbox):
    make_user("student", email="limit@example.com")
    for n in range(5):
        testapp.post_json(f"{RESET}/request", {"email": "limit@example.com"},
                          extra_environ={"REMOTE_ADDR": f"10.0.0.{n}"}, status=202)
    r = testapp.post_json(f"{RESET}/request", {"email": "limit@example.com"},
                          extra_environ={"REMOTE_ADDR": "10.0.0.99"}, status=429)
    assert error(r)["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) > 0
    assert len(mailbox.delivered()) == 5
    for n in range(5):
        testapp.post_json(f"{RESET}/request", {"email": f"other{n}@example.com"},
                          extra_environ={"REMOTE_ADDR": "10.0.1.1"}, status=202)
    r = testapp.post_json(f"{RESET}/request", {"email": "fresh@example.com"},
                          extra_environ={"REMOTE_ADDR": "10.0.1.1"}, status=429)
    assert int(r.headers["Retry-After"]) > 0


# --- verifying one's email and phone --------------------------------------------------------

def test_verify_email(testapp, make_user, auth_headers, mailbox, dbsession):
    user = make_user("teacher", email="verify@example.com")
    headers = auth_headers(user)
    testapp.post("/api/v1/users/verify/email/request", status=401)
    testapp.post("/api/v1/users/verify/email/request", headers=headers, status=202)
    (message,) = mailbox.delivered()
    assert message["To"] == "verify@example.com" and "Email verification" in message["Subject"]
    r = testapp.post_json("/api/v1/users/verify/email/confirm", {"code": "000000" if code_in(message) != "000000"
                                                                 else "111111"}, headers=headers, status=400)
    assert "code" in error(r)["details"]
    r = testapp.post_json("/api/v1/users/verify/email/confirm", {"code": code_in(message)}, headers=headers)
    assert r.json["email_verified"] is True and r.json["email"] == "verify@example.com"
    dbsession.expire_all()
    assert dbsession.get(User, user.id).email_verified is True
    r = testapp.post("/api/v1/users/verify/email/request", headers=headers, status=409)
    assert error(r)["code"] == "CONFLICT"


def test_verify_phone(testapp, make_user, auth_headers, sms_outbox, dbsession):
    user = make_user("student", phone="13800138022")
    headers = auth_headers(user)
    testapp.post("/api/v1/users/verify/phone/request", headers=headers, status=202)
    ((phone, _, params),) = sms_outbox.delivered()
    assert phone == "13800138022"
    r = testapp.post_json("/api/v1/users/verify/phone/confirm", {"code": params["code"]}, headers=headers)
    assert r.json["phone_verified"] is True


def test_verify_needs_a_contact(testapp, make_user, auth_headers):
    user = make_user("student")  # email only
    r = testapp.post("/api/v1/users/verify/phone/request", headers=auth_headers(user), status=400)
    assert "phone" in error(r)["details"]


def test_a_code_for_one_purpose_does_not_serve_another(testapp, make_user, auth_headers, mailbox):
    user = make_user("student", email="purpose@example.com")
    testapp.post_json(f"{RESET}/request", {"email": "purpose@example.com"}, status=202)
    code = code_in(mailbox.delivered()[0])
    testapp.post_json("/api/v1/users/verify/email/confirm", {"code": code}, headers=auth_headers(user), status=400)


# --- SMS sign-in and registration ---------------------------------------------------------

def test_sms_registration_creates_a_student_on_first_sign_in(testapp, sms_outbox, dbsession):
    testapp.post_json("/api/v1/users/sms/send", {"phone": "13900139000", "purpose": "register"}, status=202)
    ((phone, _, params),) = sms_outbox.delivered()
    r = testapp.post_json("/api/v1/users/sms/login", {"phone": "139 0013 9000", "code": params["code"]},
                          extra_environ={"HTTP_USER_AGENT": "phone-app/1.0"})
    assert set(r.json) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert r.json["token_type"] == "Bearer" and r.json["user"]["role"] == "student"
    assert "$argon2" not in r.text
    user = dbsession.get(User, r.json["user"]["id"])
    assert user.phone == "13900139000" and user.phone_verified and user.username.startswith("user_")
    assert user.password.startswith("!")  # no password signs in
    profile = testapp.get("/api/v1/users/profile", headers={"Authorization": f"Bearer {r.json['access_token']}"})
    assert profile.json["phone"] == "13900139000"
    event = dbsession.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == user.id)).one()
    assert (event.method, event.success, event.user_agent) == ("sms", True, "phone-app/1.0")
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": r.json["refresh_token"]}, status=200)


def test_sms_sign_in_of_an_existing_account(testapp, make_user, sms_outbox, dbsession):
    user = make_user("teacher", phone="13700137000")
    testapp.post_json("/api/v1/users/sms/send", {"phone": "13700137000"}, status=202)
    ((_, _, params),) = sms_outbox.delivered()
    wrong = "000000" if params["code"] != "000000" else "111111"
    r = testapp.post_json("/api/v1/users/sms/login", {"phone": "13700137000", "code": wrong}, status=401)
    assert error(r)["code"] == "AUTH_FAILED"
    r = testapp.post_json("/api/v1/users/sms/login", {"phone": "13700137000", "code": params["code"]})
    assert r.json["user"] == {"id": user.id, "username": user.username, "email": user.email, "role": "teacher"}
    events = dbsession.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == user.id)
                               .order_by(LoginEvent.id)).all()
    assert [(e.method, e.success, e.reason) for e in events] == [("sms", False, "bad_code"), ("sms", True, None)]
    testapp.post_json("/api/v1/users/sms/login", {"phone": "13700137000", "code": params["code"]}, status=401)


def test_sms_login_code_is_only_sent_to_a_known_phone(testapp, sms_outbox, dbsession):
    r = testapp.post_json("/api/v1/users/sms/send", {"phone": "13600136000", "purpose": "login"}, status=202)
    assert r.json["message"] and sms_outbox.delivered() == []
    testapp.post_json("/api/v1/users/sms/login", {"phone": "13600136000", "code": "123456"}, status=401)
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(User).where(User.phone == "13600136000")) == 0


def test_sms_sign_in_refused_for_a_disabled_account(testapp, make_user, sms_outbox, dbsession):
    user = make_user("student", phone="13500135000")
    testapp.post_json("/api/v1/users/sms/send", {"phone": "13500135000"}, status=202)
    ((_, _, params),) = sms_outbox.delivered()
    user = dbsession.get(User, user.id)
    user.is_active = False
    dbsession.commit()
    testapp.post_json("/api/v1/users/sms/login", {"phone": "13500135000", "code": params["code"]}, status=401)
    event = dbsession.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == user.id)).one()
    assert (event.method, event.success, event.reason) == ("sms", False, "disabled")


def test_sms_send_is_rate_limited(testapp, sms_outbox):
    for _ in range(5):
        testapp.post_json("/api/v1/users/sms/send", {"phone": "13400134000", "purpose": "register"}, status=202)
    r = testapp.post_json("/api/v1/users/sms/send", {"phone": "13400134000", "purpose": "register"}, status=429)
    assert r.headers["Retry-After"]
    assert len(sms_outbox.delivered()) == 5


@pytest.mark.parametrize("body, field", [({"phone": "12", "purpose": "register"}, "phone"),
                                         ({"phone": "13400134000", "purpose": "spam"}, "purpose"),
                                         ({"phone": "abcdefg"}, "phone")])
def test_sms_send_input(testapp, body, field):
    r = testapp.post_json("/api/v1/users/sms/send", body, status=400)
    assert field in error(r)["details"]


# --- service level ------------------------------------------------------------------------

def test_codes_are_random_digits_of_the_configured_length(dbsession, app):
    settings = dict(app.registry.settings, **{"learnsail.code_length": 8})
    issued = [codes.issue(dbsession, settings, purpose="verify_email", channel="email",
                          destination=f"d{n}@example.com") for n in range(20)]
    assert all(re.fullmatch(r"\d{8}", c) for c in issued) and len(set(issued)) > 15
    with pytest.raises(codes.CodeRejected):  # bound to its destination
        codes.consume(dbsession, settings, purposes=["verify_email"], destination="d1@example.com", code=issued[0])
    row = codes.consume(dbsession, settings, purposes=["verify_email"], destination="d0@example.com", code=issued[0])
    assert row.used_at is not None
    assert codes.purge_expired(dbsession) == 0
