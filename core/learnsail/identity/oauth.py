"""Third-party sign-in (000 第三方登录相关API; 004 微信授权登录).

A small OAuth2 provider framework with WeChat and QQ adapters.  Each
provider's app id, secret and endpoints are settings
(``learnsail.oauth.<platform>.*``); a platform without credentials is not
offered.  The ``state`` parameter is an HMAC-signed, expiring token; the
browser flow also binds it to a cookie so a callback cannot be forged
across sites (login CSRF).
"""

from __future__ import annotations

import abc
import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.errors import APIError, Conflict, NotFound, ValidationFailed
from learnsail.identity import passwords
from learnsail.identity.models import OAuthAccount, User
from learnsail.settings import Setting, secret_key

STATE_TTL = 600
HTTP_TIMEOUT = 10


class ProviderUnavailable(APIError):
    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "The sign-in provider could not be reached; try again later."


@dataclass(frozen=True)
class ExternalIdentity:
    """Who the provider says the user is."""

    openid: str
    unionid: str | None
    nickname: str | None
    avatar_url: str | None


def _get_json(url: str, params: Mapping[str, str]) -> dict:
    full = f"{url}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 (configured https URL)
            return json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise ProviderUnavailable(details={"reason": str(exc)[:200]}) from None


class Provider(abc.ABC):
    """One OAuth2 platform.  Subclasses know its URLs and answer formats."""

    name = ""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        prefix = f"learnsail.oauth.{self.name}."
        self.app_id = settings.get(prefix + "app_id") or ""
        self.secret = settings.get(prefix + "app_secret") or ""
        self.authorize_endpoint = settings.get(prefix + "authorize_url") or ""
        self.api_base = (settings.get(prefix + "api_base") or "").rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self.app_id and self.secret)

    @abc.abstractmethod
    def authorize_url(self, redirect_uri: str, state: str) -> str:
        """The provider's consent page for this app."""

    @abc.abstractmethod
    def exchange(self, code: str, redirect_uri: str) -> ExternalIdentity:
        """Trade an authorisation code for the user's identity."""


def _bad_code(message: str) -> ValidationFailed:
    return ValidationFailed({"code": [message]})


class WeChat(Provider):
    """WeChat Open Platform website sign-in (snsapi_login)."""

    name = "wechat"

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urllib.parse.urlencode({"appid": self.app_id, "redirect_uri": redirect_uri,
                                        "response_type": "code", "scope": "snsapi_login", "state": state})
        return f"{self.authorize_endpoint}?{query}#wechat_redirect"

    def exchange(self, code: str, redirect_uri: str) -> ExternalIdentity:
        token = _get_json(f"{self.api_base}/sns/oauth2/access_token",
                          {"appid": self.app_id, "secret": self.secret, "code": code,
                           "grant_type": "authorization_code"})
        if token.get("errcode") or not token.get("openid"):
            raise _bad_code(f"WeChat refused the code: {token.get('errmsg', 'no openid')}")
        info = _get_json(f"{self.api_base}/sns/userinfo",
                         {"access_token": token["access_token"], "openid": token["openid"], "lang": "zh_CN"})
        if info.get("errcode"):
            info = {}
        return ExternalIdentity(openid=token["openid"], unionid=token.get("unionid") or info.get("unionid"),
                                nickname=info.get("nickname"), avatar_url=info.get("headimgurl"))


class QQ(Provider):
    """QQ Connect (graph.qq.com)."""

    name = "qq"

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urllib.parse.urlencode({"response_type": "code", "client_id": self.app_id,
                                        "redirect_uri": redirect_uri, "state": state,
                                        "scope": "get_user_info"})
        return f"{self.authorize_endpoint}?{query}"

    def exchange(self, code: str, redirect_uri: str) -> ExternalIdentity:
        token = _get_json(f"{self.api_base}/oauth2.0/token",
                          {"grant_type": "authorization_code", "client_id": self.app_id,
                           "client_secret": self.secret, "code": code, "redirect_uri": redirect_uri,
                           "fmt": "json"})
        if token.get("error") or not token.get("access_token"):
            raise _bad_code(f"QQ refused the code: {token.get('error_description', 'no token')}")
        me = _get_json(f"{self.api_base}/oauth2.0/me",
                       {"access_token": token["access_token"], "unionid": "1", "fmt": "json"})
        if not me.get("openid"):
            raise _bad_code("QQ did not return an openid.")
        info = _get_json(f"{self.api_base}/user/get_user_info",
                         {"access_token": token["access_token"], "oauth_consumer_key": self.app_id,
                          "openid": me["openid"]})
        if info.get("ret", 0) != 0:
            info = {}
        return ExternalIdentity(openid=me["openid"], unionid=me.get("unionid"),
                                nickname=info.get("nickname"),
                                avatar_url=info.get("figureurl_qq_2") or info.get("figureurl_qq_1"))


PROVIDERS: dict[str, type[Provider]] = {"wechat": WeChat, "qq": QQ}

SETTINGS = [
    setting
    for name, authorize, api in (
        ("wechat", "https://open.weixin.qq.com/connect/qrconnect", "https://api.weixin.qq.com"),
        ("qq", "https://graph.qq.com/oauth2.0/authorize", "https://graph.qq.com"),
    )
    for setting in (
        Setting(f"learnsail.oauth.{name}.app_id", "", f"{name}: the app id (empty: sign-in with {name} is off)."),
        Setting(f"learnsail.oauth.{name}.app_secret", "", f"{name}: the app secret (app key)."),
        Setting(f"learnsail.oauth.{name}.authorize_url", authorize, f"{name}: the authorisation page."),
        Setting(f"learnsail.oauth.{name}.api_base", api, f"{name}: base URL of the token and user-info API."),
    )
] + [
    Setting("learnsail.oauth.redirect_uris", "",
            "Extra redirect URIs (space separated) the authorise step may send providers to, besides the "
            "API's own callback; e.g. a front-end page that finishes the sign-in."),
]


def provider(settings: Mapping[str, Any], platform: str) -> Provider:
    cls = PROVIDERS.get(platform)
    if cls is None:
        raise NotFound(f"Unknown sign-in platform {platform!r}.", {"platform": sorted(PROVIDERS)})
    instance = cls(settings)
    if not instance.configured:
        raise NotFound(f"Sign-in with {platform} is not configured on this platform.")
    return instance


# --- state ---------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_state(settings: Mapping[str, Any], platform: str, redirect_uri: str) -> tuple[str, str]:
    """``(state, nonce)``: the signed state and the nonce the cookie carries."""
    nonce = secrets.token_urlsafe(16)
    payload = _b64(json.dumps({"p": platform, "n": nonce, "r": redirect_uri,
                               "e": int(time.time()) + STATE_TTL}).encode())
    signature = _b64(hmac.new(secret_key(settings).encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", nonce


def read_state(settings: Mapping[str, Any], platform: str, state: str) -> dict:
    """The state's contents; ValidationFailed on ``state`` when it is
    forged, expired or for another platform."""
    try:
        payload, signature = state.split(".", 1)
        expected = _b64(hmac.new(secret_key(settings).encode(), payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            raise ValueError("bad signature")
        data = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        raise ValidationFailed({"state": ["The state is invalid; start the sign-in again."]}) from None
    if data.get("p") != platform or int(data.get("e", 0)) < time.time():
        raise ValidationFailed({"state": ["The state has expired or is for another platform."]})
    return data


# --- accounts -------------------------------------------------------------------

def _generated_username(session: Session, platform: str) -> str:
    while True:
        candidate = f"{platform}_{secrets.token_hex(4)}"
        if session.scalar(sa.select(User.id).where(User.username == candidate)) is None:
            return candidate


def sign_in(session: Session, pm: Any, platform: str, identity: ExternalIdentity) -> tuple[User, bool]:
    """The user bound to this external identity, created on first sign-in:
    ``(user, created)``."""
    from learnsail.identity.services import create_user

    account = session.scalar(sa.select(OAuthAccount).where(OAuthAccount.platform == platform,
                                                           OAuthAccount.openid == identity.openid))
    if account is None and identity.unionid:
        # same person through another app of the same WeChat open platform
        account = session.scalar(sa.select(OAuthAccount).where(OAuthAccount.platform == platform,
                                                               OAuthAccount.unionid == identity.unionid))
    if account is not None:
        user = session.get(User, account.user_id)
        if user is None or not user.is_active or user.deleted_at is not None:
            from learnsail.errors import AuthFailed

            raise AuthFailed("This account is disabled.")
        return user, False
    user = create_user(session, username=_generated_username(session, platform),
                       password=secrets.token_urlsafe(32), pm=pm)
    user.password = passwords.UNUSABLE_PASSWORD  # sign-in only through the provider until one is set
    user.avatar_url = (identity.avatar_url or None) and identity.avatar_url[:255]
    session.add(OAuthAccount(user_id=user.id, platform=platform, openid=identity.openid,
                             unionid=identity.unionid, nickname=(identity.nickname or "")[:100] or None))
    session.flush()
    return user, True


def bind(session: Session, user: User, platform: str, identity: ExternalIdentity) -> OAuthAccount:
    existing = session.scalar(sa.select(OAuthAccount).where(OAuthAccount.platform == platform,
                                                            OAuthAccount.openid == identity.openid))
    if existing is not None:
        if existing.user_id == user.id:
            return existing
        raise Conflict(f"This {platform} account is bound to another user.", {"openid": ["Already bound."]})
    if session.scalar(sa.select(OAuthAccount.id).where(OAuthAccount.platform == platform,
                                                       OAuthAccount.user_id == user.id)) is not None:
        raise Conflict(f"You already bound a {platform} account; unbind it first.", {"platform": ["Bound."]})
    account = OAuthAccount(user_id=user.id, platform=platform, openid=identity.openid,
                           unionid=identity.unionid, nickname=(identity.nickname or "")[:100] or None)
    session.add(account)
    session.flush()
    return account


def unbind(session: Session, user: User, platform: str) -> None:
    account = session.scalar(sa.select(OAuthAccount).where(OAuthAccount.platform == platform,
                                                           OAuthAccount.user_id == user.id))
    if account is None:
        raise NotFound(f"No {platform} account is bound.")
    others = session.scalar(sa.select(sa.func.count()).select_from(OAuthAccount)
                            .where(OAuthAccount.user_id == user.id, OAuthAccount.id != account.id))
    if user.password == passwords.UNUSABLE_PASSWORD and not others:
        raise Conflict("Set a password before unbinding your only way to sign in.",
                       {"platform": ["The only sign-in method."]})
    session.delete(account)
