"""Verification codes over HTTP (004 §2.1): password reset, email and
phone verification, SMS sign-in and registration.

Requesting a code answers 202 whether or not an account matches, so the
endpoints never tell who is registered; requests are limited per
destination and per client IP (``learnsail.ratelimit_codes``).  A rejected
code is answered without raising, so the transaction still commits the
attempt it cost.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from learnsail.api import PUBLIC, Schema, Service
from learnsail.api.errorviews import api_error_view
from learnsail.delivery import send_email, send_sms
from learnsail.identity import codes, services, tokens
from learnsail.identity.views import LoginResponseSchema

SELF = "core:account:self"

CODE_FIELD = fields.String(required=True, validate=validate.Regexp(r"^\d{4,10}$", error="The digits you received."))

#: (subject, first line) of the email carrying a code, per purpose
EMAIL_TEXTS = {
    codes.PASSWORD_RESET: ("重置密码验证码 / Password reset code",
                           "您正在重置 learnsail 账号的密码。/ You asked to reset your learnsail password."),
    codes.VERIFY_EMAIL: ("邮箱验证码 / Email verification code",
                         "请验证您的邮箱地址。/ Please confirm your email address."),
}


# --- schemas -----------------------------------------------------------------------

class _EmailOrPhone(Schema):
    email = fields.String(validate=validate.Length(min=3, max=100))
    phone = fields.String(validate=validate.Length(min=3, max=20))

    @validates_schema(skip_on_field_errors=False)
    def exactly_one(self, data: dict, **kwargs: Any) -> None:
        if bool(data.get("email")) == bool(data.get("phone")):
            raise ValidationError("Give either an email or a phone number.", "email")


class PasswordResetRequestSchema(_EmailOrPhone):
    pass


class PasswordResetConfirmSchema(_EmailOrPhone):
    code = CODE_FIELD
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class VerificationCodeSchema(Schema):
    code = CODE_FIELD


class SmsSendSchema(Schema):
    phone = fields.String(required=True, validate=validate.Length(min=3, max=20))
    purpose = fields.String(load_default="login", validate=validate.OneOf(("login", "register")),
                            metadata={"description": "`login` (existing account) or `register` "
                                                     "(creates a student account on first sign-in)."})


class SmsLoginSchema(Schema):
    phone = fields.String(required=True, validate=validate.Length(min=3, max=20))
    code = CODE_FIELD


class MessageSchema(Schema):
    message = fields.String()


class VerifiedSchema(Schema):
    id = fields.Integer()
    email = fields.String(allow_none=True)
    email_verified = fields.Boolean()
    phone = fields.String(allow_none=True)
    phone_verified = fields.Boolean()


# --- services ----------------------------------------------------------------------

reset_request = Service(name="core.users_password_reset_request", path="/api/v1/users/password/reset/request",
                        description="Send a password reset code to an account's email or phone.")
reset_confirm = Service(name="core.users_password_reset_confirm", path="/api/v1/users/password/reset/confirm",
                        description="Set a new password with a reset code.")
verify_email_request = Service(name="core.users_verify_email_request", path="/api/v1/users/verify/email/request",
                               description="Send a code to the caller's email.")
verify_email_confirm = Service(name="core.users_verify_email_confirm", path="/api/v1/users/verify/email/confirm",
                               description="Verify the caller's email with the code sent to it.")
verify_phone_request = Service(name="core.users_verify_phone_request", path="/api/v1/users/verify/phone/request",
                               description="Send a code to the caller's phone.")
verify_phone_confirm = Service(name="core.users_verify_phone_confirm", path="/api/v1/users/verify/phone/confirm",
                               description="Verify the caller's phone with the code sent to it.")
sms_send = Service(name="core.users_sms_send", path="/api/v1/users/sms/send",
                   description="Send a sign-in or registration code by SMS.")
sms_login = Service(name="core.users_sms_login", path="/api/v1/users/sms/login",
                    description="Sign in (or register) with a phone number and an SMS code.")

ACCEPTED = "If an account matches, a verification code is on its way."


def _limit(request: Any, destination: str) -> None:
    limit = request.registry.settings["learnsail.ratelimit_codes"]
    request.rate_limit("codes-ip", request.client_addr or "", limit)
    request.rate_limit("codes-destination", destination, limit)


def _send_code(request: Any, channel: str, destination: str, code: str, purpose: str) -> None:
    minutes = max(1, int(request.registry.settings["learnsail.code_ttl"]) // 60)
    if channel == codes.SMS:
        send_sms(request, destination, "verification_code", {"code": code, "minutes": minutes})
        return
    subject, first_line = EMAIL_TEXTS[purpose]
    body = (f"{first_line}\n\n    {code}\n\n"
            f"验证码 {minutes} 分钟内有效；如非本人操作，请忽略本邮件。\n"
            f"The code expires in {minutes} minutes. If you did not ask for it, ignore this email.\n")
    send_email(request, destination, subject, body)


def _accepted(request: Any) -> dict:
    request.response.status = 202
    return {"message": ACCEPTED}


def _verified(user: Any) -> dict:
    return {"id": user.id, "email": user.email, "email_verified": user.email_verified,
            "phone": user.phone, "phone_verified": user.phone_verified}


@reset_request.post(permission=PUBLIC, schema=PasswordResetRequestSchema, responses={202: MessageSchema},
                    errors=(429,))
def reset_request_view(request: Any) -> dict:
    """Send a reset code to the email or phone (the same 202 whether or not
    an account has it)."""
    body = request.validated["body"]
    _, destination, _ = codes.reset_destination(email=body.get("email"), phone=body.get("phone"))
    _limit(request, destination)
    channel, destination, code = codes.request_password_reset(
        request.db, request.registry.settings, email=body.get("email"), phone=body.get("phone"))
    if code is not None:
        _send_code(request, channel, destination, code, codes.PASSWORD_RESET)
    return _accepted(request)


@reset_confirm.post(permission=PUBLIC, schema=PasswordResetConfirmSchema, responses={200: MessageSchema})
def reset_confirm_view(request: Any) -> Any:
    """Set a new password with the code; every session of the account ends."""
    body = request.validated["body"]
    try:
        codes.reset_password(request.db, request.registry.settings, code=body["code"],
                             new_password=body["new_password"], email=body.get("email"),
                             phone=body.get("phone"), ip=request.client_addr)
    except codes.CodeRejected as exc:
        return api_error_view(exc, request)  # commit the attempt it cost
    return {"message": "Password reset successfully"}


def _request_verification(request: Any, channel: str) -> dict:
    user = request.identity
    _, destination = codes.contact(user, channel)
    _limit(request, destination)
    destination, code = codes.request_verification(request.db, request.registry.settings, user, channel)
    _send_code(request, channel, destination, code, codes.VERIFY_EMAIL if channel == codes.EMAIL else codes.VERIFY_PHONE)
    return _accepted(request)


def _confirm_verification(request: Any, channel: str) -> Any:
    try:
        user = codes.confirm_verification(request.db, request.registry.settings, request.identity, channel,
                                          request.validated["body"]["code"])
    except codes.CodeRejected as exc:
        return api_error_view(exc, request)
    return _verified(user)


@verify_email_request.post(permission=SELF, responses={202: MessageSchema}, errors=(400, 409, 429))
def verify_email_request_view(request: Any) -> dict:
    """Send a verification code to the caller's email address."""
    return _request_verification(request, codes.EMAIL)


@verify_email_confirm.post(permission=SELF, schema=VerificationCodeSchema, responses={200: VerifiedSchema})
def verify_email_confirm_view(request: Any) -> Any:
    """Mark the caller's email verified with the code sent to it."""
    return _confirm_verification(request, codes.EMAIL)


@verify_phone_request.post(permission=SELF, responses={202: MessageSchema}, errors=(400, 409, 429))
def verify_phone_request_view(request: Any) -> dict:
    """Send a verification code by SMS to the caller's phone."""
    return _request_verification(request, codes.SMS)


@verify_phone_confirm.post(permission=SELF, schema=VerificationCodeSchema, responses={200: VerifiedSchema})
def verify_phone_confirm_view(request: Any) -> Any:
    """Mark the caller's phone verified with the code sent to it."""
    return _confirm_verification(request, codes.SMS)


@sms_send.post(permission=PUBLIC, schema=SmsSendSchema, responses={202: MessageSchema}, errors=(429,))
def sms_send_view(request: Any) -> dict:
    """Send a sign-in code (purpose ``login``: only to the phone of an
    account) or a registration code (``register``).  Always 202."""
    body = request.validated["body"]
    _limit(request, services.normalise_phone(body["phone"]))
    phone, code = codes.request_sms_code(request.db, request.registry.settings, phone=body["phone"],
                                         purpose=body["purpose"])
    if code is not None:
        _send_code(request, codes.SMS, phone, code, codes.SMS_LOGIN)
    return _accepted(request)


@sms_login.post(permission=PUBLIC, schema=SmsLoginSchema, responses={200: LoginResponseSchema},
                errors=(401, 429))
def sms_login_view(request: Any) -> Any:
    """Sign in with the SMS code: the same answer as /api/v1/users/login.
    A registration code creates a student account on first use."""
    settings = request.registry.settings
    body = request.validated["body"]
    ip, agent = request.client_addr or "", request.user_agent or ""
    request.rate_limit("login-ip", ip, settings["learnsail.ratelimit_login_ip"])
    try:
        user = codes.sms_login(request.db, settings, request.registry["learnsail.pm"], phone=body["phone"],
                               code=body["code"], ip=ip, user_agent=agent)
    except codes.SmsLoginFailed as exc:
        return api_error_view(exc, request)  # commit the login log and the attempt
    pair = tokens.issue_pair(request.db, settings, user, user.role.name)
    return {**pair, "user": {"id": user.id, "username": user.username, "email": user.email,
                             "role": user.role.name}}


def includeme(config: Any) -> None:
    for service in (reset_request, reset_confirm, verify_email_request, verify_email_confirm,
                    verify_phone_request, verify_phone_confirm, sms_send, sms_login):
        config.add_learnsail_service(service)
