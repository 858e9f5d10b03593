"""Role-based access: which permissions a role holds, and the rules for
changing roles, grants and who holds which identity.

A role holds (1) the permissions plugins grant it by default through the
``learnsail_permissions`` hook, (2) those an admin granted it (table
role_permissions), and (3) everything its parent role holds.  The admin
role holds every permission.  Lookups are cached per role for a few seconds
and dropped at once, in this process, when roles or grants change.

A user holds a primary identity (``users.role_id``) and any number of
extra ones (``user_roles``, 003: teacher here, student there).  A token
carries one identity; the security policy refuses a token whose identity
the user no longer holds, so taking an identity away ends its sessions.

The management functions below take a session and plain values, raise
the domain errors of :mod:`learnsail.errors`, and write an audit entry in
the same transaction as the change.  ``declared`` is the mapping
``{permission: default roles}`` of the running app
(:func:`declared_permissions`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from typing import Any, Collection, Iterable, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from learnsail.identity import audit, authcache
from learnsail.identity.models import RefreshToken, Role, RolePermission, User, UserRole

ADMIN_ROLE = "admin"
#: in learnsail_permissions grants: every signed-in identity, whatever its role
AUTHENTICATED = "authenticated"
CACHE_KEY = "learnsail.permission_cache"
CACHE_SECONDS = 5.0

#: a role name travels in tokens and principals (``role:<name>``): one word
ROLE_NAME = re.compile(r"^\w[\w.\-]{0,29}$")


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


def invalidate_after_commit(registry: Any, transaction: Any, user_ids: Iterable[int] = ()) -> None:
    """Forget cached permissions (and the sign-in state of ``user_ids``)
    now and again once ``transaction`` commits, so that no request caches
    the state from before the change meanwhile."""
    user_ids = list(user_ids)

    def forget(committed: bool = True) -> None:
        if not committed:
            return
        invalidate(registry)
        cache = registry.get(authcache.REGISTRY_KEY)
        for user_id in user_ids if cache is not None else ():
            cache.forget_user(user_id)

    forget()
    transaction.addAfterCommitHook(forget)


def declared_permissions(registry: Any) -> dict[str, set[str]]:
    """Every permission the core and the plugins declare, with default roles."""
    return registry.get("learnsail.permissions", {})


# --- reading roles -------------------------------------------------------------

def _grants(session: Session, role_ids: Iterable[int] | None = None) -> dict[int, set[str]]:
    stmt = sa.select(RolePermission.role_id, RolePermission.permission)
    if role_ids is not None:
        stmt = stmt.where(RolePermission.role_id.in_(list(role_ids)))
    grants: dict[int, set[str]] = {}
    for role_id, permission in session.execute(stmt):
        grants.setdefault(role_id, set()).add(permission)
    return grants


def describe_roles(session: Session, declared: Mapping[str, Collection[str]],
                   only: Iterable[Role] | None = None) -> list[dict[str, Any]]:
    """Roles as the API shows them (two queries, whatever their number).

    ``permissions`` are the admin's grants to the role itself,
    ``default_permissions`` what plugins grant it by default and
    ``effective_permissions`` all it holds, inheritance included.
    """
    roles = {role.id: role for role in session.scalars(sa.select(Role).order_by(Role.id))}
    grants = _grants(session)
    wanted = [roles[r.id] for r in only] if only is not None else list(roles.values())
    out = []
    for role in wanted:
        chain: list[Role] = []
        node: Role | None = role
        while node is not None and node not in chain:
            chain.append(node)
            node = roles.get(node.parent_id) if node.parent_id else None
        defaults = {p for p, holders in declared.items() if role.name in holders}
        if role.name == ADMIN_ROLE:
            effective = set(declared)
        else:
            names = {r.name for r in chain}
            effective = {p for p, holders in declared.items() if names & set(holders)}
            for ancestor in chain:
                effective |= grants.get(ancestor.id, set())
        parent = roles.get(role.parent_id) if role.parent_id else None
        out.append({
            "id": role.id,
            "name": role.name,
            "description": role.description or "",
            "parent_id": role.parent_id,
            "parent": parent.name if parent is not None else None,
            "is_builtin": role.is_builtin,
            "permissions": sorted(grants.get(role.id, set())),
            "default_permissions": sorted(defaults),
            "effective_permissions": sorted(effective),
            "created_at": role.created_at,
            "updated_at": role.updated_at,
        })
    return out


def get_role(session: Session, role_id: int) -> Role:
    role = session.get(Role, role_id)
    if role is None:
        raise NotFound(f"No role with id {role_id}.")
    return role


def _snapshot(session: Session, role: Role) -> dict[str, Any]:
    """A role as the audit log keeps it."""
    permissions = sorted(session.scalars(sa.select(RolePermission.permission)
                                         .where(RolePermission.role_id == role.id)))
    return {"id": role.id, "name": role.name, "description": role.description or "",
            "parent_id": role.parent_id, "permissions": permissions}


# --- checks ---------------------------------------------------------------------

def _check_name(session: Session, name: str, exclude_id: int | None = None) -> str:
    name = name.strip()
    if not ROLE_NAME.match(name):
        raise ValidationFailed({"name": ["One word of up to 30 letters, digits, _ . or -."]})
    # case-insensitive everywhere (MariaDB's collation is; SQLite's is not)
    stmt = sa.select(Role.id).where(sa.func.lower(Role.name) == name.lower())
    if exclude_id is not None:
        stmt = stmt.where(Role.id != exclude_id)
    if session.scalar(stmt) is not None:
        raise _name_taken(name)
    return name


def _check_permissions(declared: Mapping[str, Any], permissions: Iterable[str]) -> list[str]:
    permissions = list(permissions)
    unknown = [p for p in dict.fromkeys(permissions) if p not in declared]
    if unknown:
        raise ValidationFailed({"permissions": [
            f"Unknown permission {p!r}: GET /api/v1/permissions lists the declared ones." for p in unknown]})
    return sorted(set(permissions))


def _check_parent(session: Session, parent_id: int | None, role_id: int | None = None) -> None:
    if parent_id is None:
        return
    roles = {role.id: role for role in session.scalars(sa.select(Role))}
    if parent_id not in roles:
        raise ValidationFailed({"parent_id": [f"No role with id {parent_id}."]})
    seen: set[int] = set()
    node: int | None = parent_id
    while node is not None and node not in seen:
        if node == role_id:
            raise ValidationFailed({"parent_id": [
                "A role cannot inherit from itself or from a role that inherits from it."]})
        seen.add(node)
        node = roles[node].parent_id if node in roles else None


@contextlib.contextmanager
def _unique(session: Session, conflict: Conflict) -> Iterator[None]:
    """Run the block and flush it in a savepoint: a unique index refusing
    its rows (a request that created the same name or grant since the
    check looked) is ``conflict``, not a 500, and the session stays usable."""
    try:
        with session.begin_nested():
            yield
            session.flush()
    except sa.exc.IntegrityError:
        raise conflict from None


def _name_taken(name: str) -> Conflict:
    return Conflict(f"A role named {name!r} already exists.", {"name": ["Already used by another role."]})


def _set_grants(session: Session, role: Role, permissions: list[str]) -> None:
    session.execute(sa.delete(RolePermission).where(RolePermission.role_id == role.id))
    session.add_all(RolePermission(role_id=role.id, permission=p) for p in permissions)
    session.flush()


# --- changing roles ------------------------------------------------------------

def create_role(session: Session, declared: Mapping[str, Any], *, name: str, description: str = "",
                parent_id: int | None = None, permissions: Iterable[str] = (),
                actor_id: int | None = None, ip: str | None = None) -> Role:
    """Create a role.  :class:`Conflict` if the name is taken (case
    insensitive); :class:`ValidationFailed` naming an undeclared
    permission or an unknown parent."""
    name = _check_name(session, name)
    granted = _check_permissions(declared, permissions)
    _check_parent(session, parent_id)
    with _unique(session, _name_taken(name)):
        role = Role(name=name, description=description or "", parent_id=parent_id, is_builtin=False)
        session.add(role)
    _set_grants(session, role, granted)
    audit.record(session, action="core:role:create", target_type="role", target_id=role.id,
                 actor_id=actor_id, ip=ip, after=_snapshot(session, role))
    return role


def update_role(session: Session, declared: Mapping[str, Any], role_id: int, values: Mapping[str, Any], *,
                actor_id: int | None = None, ip: str | None = None) -> Role:
    """Change a role's ``name``, ``description``, ``parent_id`` and/or
    ``permissions`` (only the keys given).  Built-in roles keep their
    name: plugins grant permissions to them by name.  Renaming a role ends
    its access tokens (they carry the name); refreshing gives new ones."""
    role = get_role(session, role_id)
    before = _snapshot(session, role)
    # every check before any change
    name = role.name
    if "name" in values and values["name"].strip() != role.name:
        if role.is_builtin:
            raise Conflict(f"The built-in role {role.name!r} cannot be renamed.",
                           {"name": ["Built-in roles keep their name."]})
        name = _check_name(session, values["name"], exclude_id=role.id)
    if "parent_id" in values:
        _check_parent(session, values["parent_id"], role.id)
    if "permissions" in values:
        granted = _check_permissions(declared, values["permissions"])
        _set_grants(session, role, granted)
    if name != role.name:
        # sessions of the identity continue under its new name once their
        # access token is refreshed (access tokens carry the old name)
        session.execute(sa.update(RefreshToken).where(RefreshToken.role == role.name).values(role=name))
        for user_id in holder_ids(session, role.id):
            authcache.forget_user(session, user_id)
    with _unique(session, _name_taken(name)):
        role.name = name
        if "parent_id" in values:
            role.parent_id = values["parent_id"]
        if "description" in values:
            role.description = values["description"] or ""
    after = _snapshot(session, role)
    attributes = ("name", "description", "parent_id")
    if any(before[key] != after[key] for key in attributes):
        audit.record(session, action="core:role:update", target_type="role", target_id=role.id,
                     actor_id=actor_id, ip=ip, before={k: before[k] for k in ("id", *attributes)},
                     after={k: after[k] for k in ("id", *attributes)})
    if before["permissions"] != after["permissions"]:
        _record_grant(session, role, before["permissions"], after["permissions"], actor_id, ip)
    return role


def _record_grant(session: Session, role: Role, before: list[str], after: list[str],
                  actor_id: int | None, ip: str | None) -> None:
    audit.record(session, action="core:role:grant", target_type="role", target_id=role.id,
                 actor_id=actor_id, ip=ip,
                 before={"id": role.id, "name": role.name, "permissions": before},
                 after={"id": role.id, "name": role.name, "permissions": after})


def set_role_permissions(session: Session, declared: Mapping[str, Any], role_id: int,
                         permissions: Iterable[str], *, actor_id: int | None = None,
                         ip: str | None = None) -> Role:
    """Replace the permissions granted to a role (plugin defaults stay)."""
    role = get_role(session, role_id)
    granted = _check_permissions(declared, permissions)
    before = _snapshot(session, role)["permissions"]
    _set_grants(session, role, granted)
    if before != granted:
        _record_grant(session, role, before, granted, actor_id, ip)
    return role


def _holders(role_id: int) -> sa.CompoundSelect:
    return sa.union(sa.select(User.id).where(User.role_id == role_id),
                    sa.select(UserRole.user_id).where(UserRole.role_id == role_id))


def holder_ids(session: Session, role_id: int) -> list[int]:
    """The accounts holding the role, as primary or extra identity."""
    return list(session.scalars(_holders(role_id)))


def role_holders(session: Session, role_id: int) -> int:
    """How many accounts hold the role, as primary or extra identity."""
    return session.scalar(sa.select(sa.func.count()).select_from(_holders(role_id).subquery())) or 0


def delete_role(session: Session, role_id: int, *, actor_id: int | None = None, ip: str | None = None) -> None:
    """Delete a role nobody holds and nothing inherits from.  Built-in
    roles (admin, teacher, student) are never deleted: :class:`Conflict`."""
    role = get_role(session, role_id)
    if role.is_builtin:
        raise Conflict(f"The built-in role {role.name!r} cannot be deleted.",
                       {"id": ["Built-in roles (admin, teacher, student) stay."]})
    holders = role_holders(session, role.id)
    if holders:
        raise Conflict(f"{holders} user(s) hold the role {role.name!r}; give them another role first.",
                       {"id": [f"Held by {holders} user(s)."], "user_count": holders})
    children = list(session.scalars(sa.select(Role.name).where(Role.parent_id == role.id).order_by(Role.name)))
    if children:
        raise Conflict(f"Roles inherit from {role.name!r}: {', '.join(children)}; change their parent first.",
                       {"id": [f"Parent of {', '.join(children)}."], "children": children})
    before = _snapshot(session, role)
    session.delete(role)
    session.flush()
    audit.record(session, action="core:role:delete", target_type="role", target_id=role_id,
                 actor_id=actor_id, ip=ip, before=before)


# --- who holds which identity ----------------------------------------------------

def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def extra_roles(session: Session, user_id: int) -> list[Role]:
    """The user's extra identities, by name."""
    return list(session.scalars(sa.select(Role).join(UserRole, UserRole.role_id == Role.id)
                                .where(UserRole.user_id == user_id).order_by(Role.name)))


def identities(session: Session, user: User) -> list[Role]:
    """Every identity the user holds: the primary one first."""
    return [user.role] + [r for r in extra_roles(session, user.id) if r.id != user.role_id]


def _holding(session: Session, user: User) -> dict[str, Any]:
    return {"user_id": user.id, "role_id": user.role_id, "role": user.role.name,
            "extra_roles": [r.name for r in extra_roles(session, user.id)]}


def _admin_ids(session: Session) -> set[int]:
    """Active accounts that hold the admin identity."""
    admin = sa.select(Role.id).where(Role.name == ADMIN_ROLE).scalar_subquery()
    live = sa.and_(User.is_active.is_(True), User.deleted_at.is_(None))
    primary = sa.select(User.id).where(User.role_id == admin, live)
    extra = sa.select(UserRole.user_id).join(User, User.id == UserRole.user_id).where(
        UserRole.role_id == admin, live)
    return set(session.scalars(sa.union(primary, extra)))


def _keep_an_admin(session: Session, user: User, losing: Role) -> None:
    if losing.name == ADMIN_ROLE and not (_admin_ids(session) - {user.id}):
        raise Conflict("This is the last admin account; make another admin first.",
                       {"role_id": ["The platform needs at least one admin."]})


def _not_self(user: User, actor_id: int | None) -> None:
    # as for the account settings: an admin does not lock themselves out by mistake
    if actor_id is not None and user.id == actor_id:
        raise Conflict("You cannot change the role of your own account.",
                       {"id": ["Ask another admin to change it."]})


def _end_sessions_of(session: Session, user: User, role: Role) -> None:
    """Refresh tokens of an identity taken away can no longer be rotated
    (its access tokens are refused by the security policy already)."""
    session.execute(sa.update(RefreshToken)
                    .where(RefreshToken.user_id == user.id, RefreshToken.role == role.name,
                           RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=dt.datetime.now(dt.timezone.utc)))


def set_primary_role(session: Session, user_id: int, role_id: int, *, actor_id: int | None = None,
                     ip: str | None = None) -> User:
    """Give the user ``role_id`` as primary identity (000 PUT
    /users/{id}/role).  The former primary identity is taken away unless
    the user also holds it as an extra one; an extra identity promoted to
    primary leaves the extra list.  Nobody changes their own role, and the
    last admin keeps the admin role (:class:`Conflict`)."""
    user = get_user(session, user_id)
    role = session.get(Role, role_id)
    if role is None:
        raise ValidationFailed({"role_id": [f"No role with id {role_id}."]})
    if role.id == user.role_id:
        return user
    _not_self(user, actor_id)
    before = _holding(session, user)
    old = user.role
    still_holds_old = session.get(UserRole, (user.id, old.id)) is not None
    if not still_holds_old:
        _keep_an_admin(session, user, old)
    session.execute(sa.delete(UserRole).where(UserRole.user_id == user.id, UserRole.role_id == role.id))
    user.role = role
    if not still_holds_old:
        _end_sessions_of(session, user, old)
    session.flush()
    _identities_changed(session, user, before, actor_id, ip)
    return user


def _identities_changed(session: Session, user: User, before: Any, actor_id: int | None,
                        ip: str | None) -> None:
    """After any change of who holds what: the policy's cache forgets the
    user, and the audit log records before and after."""
    authcache.forget_user(session, user.id)
    audit.record(session, action="core:user:role", target_type="user", target_id=user.id,
                 actor_id=actor_id, ip=ip, before=before, after=_holding(session, user))


def add_identity(session: Session, user_id: int, role_id: int, *, actor_id: int | None = None,
                 ip: str | None = None) -> User:
    """Give the user a further identity.  :class:`Conflict` if they hold it."""
    user = get_user(session, user_id)
    role = get_role(session, role_id)
    if role.id == user.role_id or session.get(UserRole, (user.id, role.id)) is not None:
        raise Conflict(f"The user already holds the role {role.name!r}.",
                       {"role_id": ["Already held by this user."]})
    before = _holding(session, user)
    with _unique(session, Conflict(f"The user already holds the role {role.name!r}.",
                                   {"role_id": ["Already held by this user."]})):
        session.add(UserRole(user_id=user.id, role_id=role.id))
    _identities_changed(session, user, before, actor_id, ip)
    return user


def remove_identity(session: Session, user_id: int, role_id: int, *, actor_id: int | None = None,
                    ip: str | None = None) -> User:
    """Take an extra identity away: its tokens stop working at once.  The
    primary identity is changed with :func:`set_primary_role` instead;
    nobody takes their own identities away, and the last admin keeps the
    admin role (:class:`Conflict`)."""
    user = get_user(session, user_id)
    role = get_role(session, role_id)
    if role.id == user.role_id:
        raise Conflict(f"{role.name!r} is the user's primary role; give them another primary role instead.",
                       {"role_id": ["The primary role; change it with PUT /api/v1/users/{id}/role."]})
    link = session.get(UserRole, (user.id, role.id))
    if link is None:
        raise NotFound(f"The user does not hold the role {role.name!r}.")
    _not_self(user, actor_id)
    _keep_an_admin(session, user, role)
    before = _holding(session, user)
    session.delete(link)
    _end_sessions_of(session, user, role)
    session.flush()
    _identities_changed(session, user, before, actor_id, ip)
    return user


def switch_identity(session: Session, settings: Mapping[str, Any], user: User, role_name: str) -> dict[str, Any]:
    """A new token pair for another identity the user holds (003 身份切换).
    :class:`PermissionDenied` for one they do not hold."""
    from learnsail.identity import tokens

    held = {role.name: role for role in identities(session, user)}
    if role_name not in held:
        raise PermissionDenied(f"You do not hold the role {role_name!r}.",
                               {"role": ["Not one of your identities: GET /api/v1/users/identities."]})
    return tokens.issue_pair(session, settings, user, role_name)
