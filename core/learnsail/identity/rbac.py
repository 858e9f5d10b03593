"""Role-based access: which permissions a role holds.

A role holds (1) the permissions plugins grant it by default through the
``learnsail_permissions`` hook, (2) those an admin granted it (table
role_permissions), and (3) everything its parent role holds.  The admin
role holds every permission.  Lookups are cached per role for a few seconds
and dropped at once, in this process, when roles or grants change.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.identity.models import Role, RolePermission

ADMIN_ROLE = "admin"
CACHE_KEY = "learnsail.permission_cache"
CACHE_SECONDS = 5.0


def role_chain(session: Session, role_name: str) -> list[Role]:
    """The role and its ancestors, nearest first (cycles are cut)."""
    roles = {role.id: role for role in session.scalars(sa.select(Role))}
    by_name = {role.name: role for role in roles.values()}
    chain: list[Role] = []
    role = by_name.get(role_name)
    while role is not None and role not in chain:
        chain.append(role)
        role = roles.get(role.parent_id) if role.parent_id else None
    return chain


def permissions_for(registry: Any, session: Session, role_name: str) -> frozenset[str]:
    """Every permission ``role_name`` holds (cached per role)."""
    cache: dict[str, tuple[float, frozenset[str]]] = registry.setdefault(CACHE_KEY, {})
    entry = cache.get(role_name)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    chain = role_chain(session, role_name)
    names = {role.name for role in chain}
    defaults = registry.get("learnsail.permissions", {})
    granted = {permission for permission, roles in defaults.items() if names & set(roles)}
    if chain:
        granted |= set(session.scalars(sa.select(RolePermission.permission)
                                       .where(RolePermission.role_id.in_([r.id for r in chain]))))
    result = frozenset(granted)
    cache[role_name] = (time.monotonic() + CACHE_SECONDS, result)
    return result


def invalidate(registry: Any) -> None:
    """Forget cached permissions (after a role or grant changes)."""
    registry.setdefault(CACHE_KEY, {}).clear()


def declared_permissions(registry: Any) -> dict[str, set[str]]:
    """Every permission the core and the plugins declare, with default roles."""
    return registry.get("learnsail.permissions", {})
