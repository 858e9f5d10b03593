"""Sign-in: ``POST /api/v1/users/login`` (000 §六 用户相关API)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate, validates_schema, ValidationError

from learnsail.api import PUBLIC, Schema, Service
from learnsail.identity import services, tokens


class LoginSchema(Schema):
    username = fields.String(validate=validate.Length(min=1, max=50))
    email = fields.String(validate=validate.Length(min=3, max=100))
    phone = fields.String(validate=validate.Length(min=3, max=20))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))

    @validates_schema(skip_on_field_errors=False)
    def one_identifier(self, data: dict, **kwargs: Any) -> None:
        if not any(data.get(k) for k in ("username", "email", "phone")):
            raise ValidationError("Give a username, an email or a phone number.", "username")


class LoginUserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String(allow_none=True)
    role = fields.String()


class LoginResponseSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"description": "Seconds until the access token expires."})
    user = fields.Nested(LoginUserSchema)


login = Service(name="core.users_login", path="/api/v1/users/login",
                description="Sign in with a username, email or phone and a password.")


@login.post(permission=PUBLIC, schema=LoginSchema,
            responses={200: LoginResponseSchema}, errors=(401,))
def login_view(request: Any) -> dict:
    """Sign in and receive an access token (2 h) and a refresh token (7 d)."""
    body = request.validated["body"]
    user = services.authenticate(request.db, body["password"], username=body.get("username"),
                                 email=body.get("email"), phone=body.get("phone"))
    settings = request.registry.settings
    access_ttl = settings["learnsail.jwt_access_ttl"]
    return {
        "access_token": tokens.issue(settings, user.id, "access", access_ttl, role=user.role.name),
        "refresh_token": tokens.issue(settings, user.id, "refresh", settings["learnsail.jwt_refresh_ttl"]),
        "token_type": "Bearer",
        "expires_in": access_ttl,
        "user": {"id": user.id, "username": user.username, "email": user.email, "role": user.role.name},
    }


def includeme(config: Any) -> None:
    config.add_learnsail_service(login)
