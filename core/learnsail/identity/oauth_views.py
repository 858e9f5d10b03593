"""Third-party sign-in over HTTP (000 第三方登录相关API)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate
from pyramid.httpexceptions import HTTPFound

from learnsail.api import PUBLIC, Schema, Service, no_content
from learnsail.api.validation import QuerySchema
from learnsail.errors import ValidationFailed
from learnsail.identity import oauth, tokens

SELF = "core:account:self"
COOKIE = "learnsail_oauth_state"
PLATFORMS = sorted(oauth.PROVIDERS)


class PlatformPath(Schema):
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))


class AuthorizeQuery(QuerySchema):
    redirect_uri = fields.Url(require_tld=False, metadata={
        "description": "Where the provider sends the user back: this API's callback (the default) or a "
                       "front-end page listed in learnsail.oauth.redirect_uris."})


class CallbackQuery(QuerySchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=512))
    state = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class OAuthUserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    avatar_url = fields.String(allow_none=True)
    role = fields.String()


class OAuthLoginSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(OAuthUserSchema)
    created = fields.Boolean(metadata={"description": "True when this sign-in created the account."})


class BindSchema(Schema):
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    code = fields.String(required=True, validate=validate.Length(min=1, max=512),
                         metadata={"description": "The authorisation code the provider returned."})
    state = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    openid = fields.String(validate=validate.Length(max=128),
                           metadata={"description": "Optional: must match the identity the code proves."})
    unionid = fields.String(validate=validate.Length(max=128))


class BindResponseSchema(Schema):
    message = fields.String()
    user_id = fields.Integer()
    platform = fields.String()


class UnbindSchema(Schema):
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))


authorize = Service(name="core.oauth_authorize", path="/api/v1/users/oauth/{platform}/authorize",
                    description="Start a third-party sign-in.")
callback = Service(name="core.oauth_callback", path="/api/v1/users/oauth/{platform}/callback",
                   description="Finish a third-party sign-in.")
bind = Service(name="core.oauth_bind", path="/api/v1/users/oauth/bind",
               description="Bind a third-party account to the caller.")
unbind = Service(name="core.oauth_unbind", path="/api/v1/users/oauth/unbind",
                 description="Unbind a third-party account from the caller.")


def _callback_url(request: Any, platform: str) -> str:
    return request.route_url("core.oauth_callback", platform=platform)


def _allowed_redirects(request: Any, platform: str) -> set[str]:
    extra = request.registry.settings.get("learnsail.oauth.redirect_uris") or ""
    return {_callback_url(request, platform), *str(extra).split()}


@authorize.get(permission=PUBLIC, schema={"path": PlatformPath, "querystring": AuthorizeQuery},
               responses={302: (None, "Redirect to the provider's consent page.")}, errors=(404,))
def authorize_view(request: Any) -> Any:
    """Redirect to the provider's consent page with a CSRF-safe state."""
    platform = request.validated["path"]["platform"]
    provider = oauth.provider(request.registry.settings, platform)
    redirect_uri = request.validated["querystring"].get("redirect_uri") or _callback_url(request, platform)
    if redirect_uri not in _allowed_redirects(request, platform):
        raise ValidationFailed({"redirect_uri": ["Not an allowed redirect URI."]})
    state, nonce = oauth.make_state(request.registry.settings, platform, redirect_uri)
    response = HTTPFound(location=provider.authorize_url(redirect_uri, state))
    response.set_cookie(COOKIE, nonce, max_age=oauth.STATE_TTL, httponly=True, samesite="Lax",
                        secure=request.scheme == "https", path="/api/v1/users/oauth")
    return response


@callback.get(permission=PUBLIC, schema={"path": PlatformPath, "querystring": CallbackQuery},
              responses={200: OAuthLoginSchema}, errors=(401, 404, 503))
def callback_view(request: Any) -> dict:
    """Exchange the code, then sign in (creating the account on first use)."""
    platform = request.validated["path"]["platform"]
    query = request.validated["querystring"]
    settings = request.registry.settings
    provider = oauth.provider(settings, platform)
    state = oauth.read_state(settings, platform, query["state"])
    if request.cookies.get(COOKIE) != state["n"]:
        raise ValidationFailed({"state": ["This sign-in was not started from this browser."]})
    identity = provider.exchange(query["code"], state["r"])
    user, created = oauth.sign_in(request.db, request.registry["learnsail.pm"], platform, identity)
    from learnsail.identity.services import signed_in

    signed_in(request.db, request.registry["learnsail.pm"], user,
              identifier=f"{platform}:{identity.openid}"[:100], ip=request.client_addr or "",
              user_agent=request.user_agent or "", method=platform)
    request.response.delete_cookie(COOKIE, path="/api/v1/users/oauth")
    pair = tokens.issue_pair(request.db, settings, user, user.role.name)
    return {**pair, "created": created,
            "user": {"id": user.id, "username": user.username, "avatar_url": user.avatar_url,
                     "role": user.role.name}}


@bind.post(permission=SELF, schema=BindSchema, responses={200: BindResponseSchema}, errors=(404, 409, 503))
def bind_view(request: Any) -> dict:
    """Bind the third-party account proven by ``code`` to the caller."""
    body = request.validated["body"]
    settings = request.registry.settings
    provider = oauth.provider(settings, body["platform"])
    state = oauth.read_state(settings, body["platform"], body["state"])
    identity = provider.exchange(body["code"], state["r"])
    if body.get("openid") and body["openid"] != identity.openid:
        raise ValidationFailed({"openid": ["Does not match the account the code belongs to."]})
    oauth.bind(request.db, request.identity, body["platform"], identity)
    return {"message": "Account bound successfully", "user_id": request.identity.id,
            "platform": body["platform"]}


@unbind.post(permission=SELF, schema=UnbindSchema, errors=(404, 409))
def unbind_view(request: Any) -> Any:
    """Unbind the caller's account on that platform."""
    oauth.unbind(request.db, request.identity, request.validated["body"]["platform"])
    return no_content(request)


def includeme(config: Any) -> None:
    for service in (authorize, callback, bind, unbind):
        config.add_learnsail_service(service)
