"""The security policy: bearer JWT -> active identity -> permissions.

Deciding whether a request may proceed needs no database round trip in the
common case (see :mod:`learnsail.identity.authcache`); ``request.identity``
loads the ``User`` row only when a view asks for it.  A resource may carry
an ``__acl__`` (owner rules, see :mod:`learnsail.identity.acl`); it is
consulted first with the principals ``user:<id>`` and ``role:<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.security import Allowed, Denied

from learnsail.identity import rbac, tokens
from learnsail.identity.authcache import REGISTRY_KEY
from learnsail.identity.models import User

_UNSET = object()


@dataclass(frozen=True)
class Auth:
    """Who the bearer token proves the caller to be."""

    user_id: int
    role: str
    claims: dict


def authenticate(request: Any) -> Auth | None:
    """The caller's verified identity, or None (anonymous or invalid)."""
    cached = request.__dict__.get("_learnsail_auth", _UNSET)
    if cached is not _UNSET:
        return cached
    request._learnsail_auth = result = _authenticate(request)
    return result


def _authenticate(request: Any) -> Auth | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    cache = request.registry[REGISTRY_KEY]
    try:
        claims = cache.claims(request.registry.settings, token)
        user_id = int(claims["sub"])
    except (tokens.TokenError, ValueError, KeyError):
        return None
    role = str(claims.get("role") or "")

    def session() -> Any:
        return request.db

    state, revoked = cache.state_and_revocation(session, user_id, claims["jti"])
    if state is None or not state.active or role not in state.roles \
            or tokens.issued_before(claims, state.valid_after):
        return None  # disabled, signed out everywhere, or the identity was taken away
    if revoked:
        return None
    return Auth(user_id=user_id, role=role, claims=claims)


class SecurityPolicy:
    def identity(self, request: Any) -> User | None:
        cached = request.__dict__.get("_learnsail_user", _UNSET)
        if cached is not _UNSET:
            return cached
        auth = authenticate(request)
        user = request.db.get(User, auth.user_id) if auth is not None else None
        if user is not None:
            user.active_role = auth.role
            request.token_claims = auth.claims
        request._learnsail_user = user
        return user

    def authenticated_userid(self, request: Any) -> int | None:
        auth = authenticate(request)
        return auth.user_id if auth is not None else None

    @staticmethod
    def principals(auth: Auth | None) -> list[str]:
        if auth is None:
            return [Everyone]
        return [Everyone, Authenticated, f"user:{auth.user_id}", f"role:{auth.role}"]

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        auth = authenticate(request)
        if getattr(context, "__acl__", None) is not None:
            result = ACLHelper().permits(context, self.principals(auth), permission)
            if result or getattr(result, "ace", "<default deny>") != "<default deny>":
                return result  # allowed, or explicitly denied by the resource
        if auth is None:
            return Denied("not authenticated")
        if auth.role == rbac.ADMIN_ROLE:
            return Allowed("admin holds every permission")
        cached = request.registry.get(rbac.CACHE_KEY, {}).get(auth.role)
        if cached is not None and cached[0] > _monotonic():
            granted = cached[1]
        else:
            granted = rbac.permissions_for(request.registry, request.db, auth.role)
        if permission in granted:
            return Allowed(f"role {auth.role} holds {permission}")
        if rbac.AUTHENTICATED in request.registry.get("learnsail.permissions", {}).get(permission, ()):
            return Allowed(f"every signed-in identity holds {permission}")
        return Denied(f"role {auth.role} lacks {permission}")

    def remember(self, request: Any, userid: Any, **kw: Any) -> list:
        return []

    def forget(self, request: Any, **kw: Any) -> list:
        return []


def _monotonic() -> float:
    import time

    return time.monotonic()


def includeme(config: Any) -> None:
    config.include("learnsail.identity.authcache")
    config.set_security_policy(SecurityPolicy())
