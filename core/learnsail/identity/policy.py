"""The security policy: bearer JWT -> user and active identity -> permissions.

One query per authenticated request loads the user and answers, at the same
time, whether the token was revoked and whether the user still holds the
identity (role) the token carries.  A resource may carry an ``__acl__``
(owner rules, see :mod:`learnsail.identity.acl`); it is consulted first
with the principals ``user:<id>`` and ``role:<name>``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.security import Allowed, Denied

from learnsail.identity import rbac, tokens
from learnsail.identity.models import RevokedToken, Role, User, UserRole


def load_identity(request: Any, token: str) -> User | None:
    try:
        claims = tokens.decode(request.registry.settings, token, "access")
        user_id = int(claims["sub"])
    except (tokens.TokenError, ValueError, KeyError):
        return None
    role = str(claims.get("role") or "")
    revoked = sa.exists().where(RevokedToken.jti == claims["jti"])
    holds_extra = sa.exists().where(UserRole.user_id == User.id, UserRole.role_id == Role.id, Role.name == role)
    row = request.db.execute(
        sa.select(User, revoked.label("revoked"), holds_extra.label("holds")).where(User.id == user_id)
    ).first()
    if row is None:
        return None
    user, is_revoked, holds = row
    if is_revoked or not user.is_active or user.deleted_at is not None \
            or tokens.issued_before(claims, user.tokens_valid_after):
        return None
    if role != user.role.name and not holds:
        return None  # the identity was taken away since the token was issued
    user.active_role = role
    request.token_claims = claims
    return user


class SecurityPolicy:
    def identity(self, request: Any) -> User | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return load_identity(request, token.strip())

    def authenticated_userid(self, request: Any) -> int | None:
        user = request.identity
        return user.id if user is not None else None

    @staticmethod
    def principals(user: User | None) -> list[str]:
        if user is None:
            return [Everyone]
        return [Everyone, Authenticated, f"user:{user.id}", f"role:{user.active_role}"]

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        user = request.identity
        if getattr(context, "__acl__", None) is not None:
            result = ACLHelper().permits(context, self.principals(user), permission)
            if result:
                return result
        if user is None:
            return Denied("not authenticated")
        role = user.active_role
        if role == rbac.ADMIN_ROLE:
            return Allowed("admin holds every permission")
        if permission in rbac.permissions_for(request.registry, request.db, role):
            return Allowed(f"role {role} holds {permission}")
        return Denied(f"role {role} lacks {permission}")

    def remember(self, request: Any, userid: Any, **kw: Any) -> list:
        return []

    def forget(self, request: Any, **kw: Any) -> list:
        return []


def includeme(config: Any) -> None:
    config.set_security_policy(SecurityPolicy())
