"""Accounts over HTTP (000 §六 用户相关API): register, login, refresh,
logout, profile, password change, the caller's login log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields, validate, validates_schema

from learnsail.api import PUBLIC, Schema, Service, no_content, page_of
from learnsail.api.errorviews import api_error_view
from learnsail.api.validation import Id
from learnsail.db.pagination import paginate
from learnsail.errors import AuthFailed
from learnsail.identity import audit, services, tokens
from learnsail.identity.models import GENDERS, LoginEvent, User

SELF = "core:account:self"


# --- schemas --------------------------------------------------------------------

class RegisterSchema(Schema):
    username = fields.String(required=True, validate=[validate.Length(min=3, max=50),
                                                      validate.Regexp(r"^[\w.\-]+$",
                                                                      error="Letters, digits, _ . - only.")])
    email = fields.String(validate=validate.Length(max=100))
    phone = fields.String(validate=validate.Length(max=20))
    password = fields.String(required=True, validate=validate.Length(max=1024))
    role_id = Id(allow_none=True)

    @validates_schema(skip_on_field_errors=False)
    def contact(self, data: dict, **kwargs: Any) -> None:
        if not data.get("email") and not data.get("phone"):
            raise ValidationError("Give an email or a phone number.", "email")


class UserOutSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    role_id = fields.Integer()
    created_at = fields.DateTime()


class LoginSchema(Schema):
    username = fields.String(validate=validate.Length(min=1, max=50))
    email = fields.String(validate=validate.Length(min=3, max=100))
    phone = fields.String(validate=validate.Length(min=3, max=20))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))

    @validates_schema(skip_on_field_errors=False)
    def one_identifier(self, data: dict, **kwargs: Any) -> None:
        if not any(data.get(k) for k in ("username", "email", "phone")):
            raise ValidationError("Give a username, an email or a phone number.", "username")


class LoginUserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String(allow_none=True)
    role = fields.String()


class TokenPairSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"description": "Seconds until the access token expires."})


class LoginResponseSchema(TokenPairSchema):
    user = fields.Nested(LoginUserSchema)


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class LogoutSchema(Schema):
    refresh_token = fields.String(validate=validate.Length(max=4096))
    everywhere = fields.Boolean(load_default=False,
                                metadata={"description": "Also end every other session of the account."})


class ProfileSchema(Schema):
    real_name = fields.String(allow_none=True, validate=validate.Length(max=50))
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    birthday = fields.Date(allow_none=True)
    bio = fields.String(allow_none=True, validate=validate.Length(max=5000))
    location = fields.String(allow_none=True, validate=validate.Length(max=100))
    education = fields.String(allow_none=True, validate=validate.Length(max=5000))
    work_experience = fields.String(allow_none=True, validate=validate.Length(max=5000))


class ProfileUpdateSchema(Schema):
    username = fields.String(validate=[validate.Length(min=3, max=50), validate.Regexp(r"^[\w.\-]+$")])
    email = fields.String(allow_none=True, validate=validate.Length(max=100))
    phone = fields.String(allow_none=True, validate=validate.Length(max=20))
    avatar_url = fields.String(allow_none=True, validate=validate.Length(max=255))
    profile = fields.Nested(ProfileSchema)


class ProfileOutSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    avatar_url = fields.String(allow_none=True)
    role = fields.String(metadata={"description": "The active identity."})
    email_verified = fields.Boolean()
    phone_verified = fields.Boolean()
    created_at = fields.DateTime()
    profile = fields.Nested(ProfileSchema)


class PasswordChangeSchema(Schema):
    old_password = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class LoginEventSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    ip = fields.String()
    user_agent = fields.String()
    method = fields.String()
    success = fields.Boolean()
    reason = fields.String(allow_none=True)


# --- serialisers ------------------------------------------------------------------

def profile_out(user: User) -> dict:
    profile = user.profile
    return {
        "id": user.id, "username": user.username, "email": user.email, "phone": user.phone,
        "avatar_url": user.avatar_url, "role": getattr(user, "active_role", user.role.name),
        "email_verified": user.email_verified, "phone_verified": user.phone_verified,
        "created_at": user.created_at,
        "profile": {key: getattr(profile, key) if profile else None for key in services.PROFILE_FIELDS},
    }


def login_event_out(event: LoginEvent) -> dict:
    return {"id": event.id, "created_at": event.created_at, "ip": event.ip, "user_agent": event.user_agent,
            "method": event.method, "success": event.success, "reason": event.reason}


# --- services -----------------------------------------------------------------------

register = Service(name="core.users_register", path="/api/v1/users/register",
                   description="Create an account.")
login = Service(name="core.users_login", path="/api/v1/users/login",
                description="Sign in with a username, email or phone and a password.")
refresh = Service(name="core.users_refresh", path="/api/v1/users/refresh",
                  description="Trade a refresh token for a new token pair.")
logout = Service(name="core.users_logout", path="/api/v1/users/logout", description="Sign out.")
profile = Service(name="core.users_profile", path="/api/v1/users/profile",
                  description="The caller's account and profile.")
password_change = Service(name="core.users_password_change", path="/api/v1/users/password/change",
                          description="Change the caller's password.")
my_logins = Service(name="core.users_me_logins", path="/api/v1/users/me/logins",
                    description="The caller's sign-in history.")


def _client(request: Any) -> tuple[str, str]:
    return request.client_addr or "", request.user_agent or ""


@register.post(permission=PUBLIC, schema=RegisterSchema, responses={201: UserOutSchema}, errors=(403, 409, 429))
def register_view(request: Any) -> dict:
    """Register; role_id may name a self-assignable role (student, teacher)."""
    settings = request.registry.settings
    ip, _ = _client(request)
    request.rate_limit("register-ip", ip, settings["learnsail.ratelimit_register_ip"])
    body = request.validated["body"]
    user = services.register(request.db, settings, request.registry["learnsail.pm"],
                             username=body["username"], password=body["password"],
                             email=body.get("email"), phone=body.get("phone"), role_id=body.get("role_id"))
    request.response.status = 201
    return {"id": user.id, "username": user.username, "email": user.email, "phone": user.phone,
            "role_id": user.role_id, "created_at": user.created_at}


@login.post(permission=PUBLIC, schema=LoginSchema, responses={200: LoginResponseSchema}, errors=(401, 429))
def login_view(request: Any) -> Any:
    """Sign in and receive an access token (2 h) and a refresh token (7 d)."""
    settings = request.registry.settings
    body = request.validated["body"]
    ip, agent = _client(request)
    identifier = (body.get("username") or body.get("email") or body.get("phone") or "").lower()
    request.rate_limit("login-ip", ip, settings["learnsail.ratelimit_login_ip"])
    request.rate_limit("login-account", identifier, settings["learnsail.ratelimit_login_account"])
    try:
        user, _ = services.login(request.db, settings, request.registry["learnsail.pm"],
                                 password=body["password"], ip=ip, user_agent=agent,
                                 username=body.get("username"), email=body.get("email"),
                                 phone=body.get("phone"))
    except AuthFailed as exc:
        # Answer without raising so the transaction commits the login log
        # and the lockout counter.
        return api_error_view(exc, request)
    pair = tokens.issue_pair(request.db, settings, user, user.role.name)
    if user.role.name == services.ADMIN_ROLE:
        audit.record(request.db, action="core:user:admin_login", target_type="user", target_id=user.id,
                     actor_id=user.id, ip=ip, after={"user_agent": agent[:255]})
    return {**pair, "user": {"id": user.id, "username": user.username, "email": user.email,
                             "role": user.role.name}}


@refresh.post(permission=PUBLIC, schema=RefreshSchema, responses={200: TokenPairSchema}, errors=(401,))
def refresh_view(request: Any) -> Any:
    """Spend a refresh token (single use) for a new access and refresh token."""
    try:
        _, pair = tokens.rotate(request.db, request.registry.settings, request.validated["body"]["refresh_token"])
    except AuthFailed as exc:
        # commit: a reused token's family revocation must stick
        return api_error_view(exc, request)
    return pair


@logout.post(permission=SELF, schema=LogoutSchema, errors=(401,))
def logout_view(request: Any) -> Any:
    """Sign out: this access token and its refresh token stop working now
    (with everywhere=true, every session of the account)."""
    body = request.validated["body"]
    user = request.identity
    claims = request.token_claims
    tokens.revoke_access(request.db, claims)
    if body.get("everywhere"):
        tokens.revoke_all(request.db, user)
    elif claims.get("fam"):
        tokens.revoke_family(request.db, claims["fam"])  # this session's refresh tokens
    elif body.get("refresh_token"):
        try:
            claims = tokens.decode(request.registry.settings, body["refresh_token"], "refresh")
        except tokens.TokenError:
            claims = None
        if claims is not None and claims.get("sub") == str(user.id) and claims.get("fam"):
            tokens.revoke_family(request.db, claims["fam"])
    return no_content(request)


@profile.get(permission=SELF, responses={200: ProfileOutSchema})
def get_profile(request: Any) -> dict:
    """The caller's account and profile."""
    return profile_out(request.identity)


@profile.put(permission=SELF, schema=ProfileUpdateSchema, responses={200: ProfileOutSchema}, errors=(409,))
def put_profile(request: Any) -> dict:
    """Update the caller's account fields and profile (a changed email or
    phone must be verified again)."""
    user = services.update_profile(request.db, request.identity, request.validated["body"])
    return profile_out(user)


@password_change.post(permission=SELF, schema=PasswordChangeSchema, errors=(401,))
def password_change_view(request: Any) -> Any:
    """Change the password; every token issued before stops working."""
    body = request.validated["body"]
    request.rate_limit("password-change", str(request.identity.id),
                       request.registry.settings["learnsail.ratelimit_login_account"])
    services.change_password(request.db, request.registry.settings, request.identity,
                             body["old_password"], body["new_password"])
    return no_content(request)


@my_logins.get(permission=SELF, responses={200: page_of(LoginEventSchema)})
def my_logins_view(request: Any) -> dict:
    """The caller's sign-ins, newest first (paginated)."""
    stmt = (sa.select(LoginEvent).where(LoginEvent.user_id == request.identity.id)
            .order_by(LoginEvent.created_at.desc(), LoginEvent.id.desc()))
    return paginate(request, request.db, stmt, login_event_out)


def includeme(config: Any) -> None:
    for service in (register, login, refresh, logout, profile, password_change, my_logins):
        config.add_learnsail_service(service)
