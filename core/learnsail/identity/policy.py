"""The security policy: bearer JWT -> user -> role -> permissions.

Permissions are declared by the core and the plugins through the
``learnsail_permissions`` hook, with the roles that hold them.  The admin
role holds every permission.  A resource may also carry an ``__acl__``
(owner rules); it is consulted first with the principals ``user:<id>`` and
``role:<name>``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.security import Allowed, Denied

from learnsail.identity import tokens
from learnsail.identity.models import User
from learnsail.identity.services import ADMIN_ROLE


class SecurityPolicy:
    def identity(self, request: Any) -> User | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            claims = tokens.decode(request.registry.settings, token.strip(), "access")
            user_id = int(claims["sub"])
        except (tokens.TokenError, ValueError, KeyError):
            return None
        user = request.db.scalar(sa.select(User).where(User.id == user_id))
        if user is None or not user.is_active:
            return None
        return user

    def authenticated_userid(self, request: Any) -> int | None:
        user = request.identity
        return user.id if user is not None else None

    def principals(self, user: User | None) -> list[str]:
        if user is None:
            return [Everyone]
        return [Everyone, Authenticated, f"user:{user.id}", f"role:{user.role.name}"]

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        user = request.identity
        if getattr(context, "__acl__", None) is not None:
            result = ACLHelper().permits(context, self.principals(user), permission)
            if result:
                return result
        if user is None:
            return Denied("not authenticated")
        if user.role.name == ADMIN_ROLE:
            return Allowed("admin holds every permission")
        grants = request.registry.get("learnsail.permissions", {})
        if user.role.name in grants.get(permission, ()):
            return Allowed(f"role {user.role.name} holds {permission}")
        return Denied(f"role {user.role.name} lacks {permission}")

    def remember(self, request: Any, userid: Any, **kw: Any) -> list:
        return []

    def forget(self, request: Any, **kw: Any) -> list:
        return []


def includeme(config: Any) -> None:
    config.set_security_policy(SecurityPolicy())
