"""Managing accounts as an admin (004 §2.2.1 用户数据管理): list, filter,
sort and export users, read one with its profile, identities and
sign-ins, create, update, disable/enable, unlock and soft-delete.

Every change writes an audit entry (``core:user:<verb>``) with the
account before and after, in the same transaction.  Snapshots and
serialised users never carry the password hash.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from learnsail.errors import Conflict, NotFound, ValidationFailed
from learnsail.identity import audit, rbac, services, tokens
from learnsail.identity.models import LoginEvent, Role, User, UserRole

STATUSES = ("active", "disabled", "deleted", "locked")
SORTS = {
    "created_at": (User.created_at.asc(), User.id.asc()),
    "-created_at": (User.created_at.desc(), User.id.desc()),
    "username": (User.username.asc(), User.id.asc()),
    "-username": (User.username.desc(), User.id.desc()),
    "last_login": (User.last_login.asc(), User.id.asc()),
    "-last_login": (User.last_login.desc(), User.id.desc()),
}
#: the fields an admin changes with :func:`update_user`
EDITABLE = ("username", "email", "phone", "role", "is_active")
RECENT_LOGINS = 10
CSV_COLUMNS = ("id", "username", "email", "phone", "role", "status", "email_verified", "phone_verified",
               "created_at", "last_login")


# --- reading --------------------------------------------------------------------------

def status_of(user: User, now: dt.datetime | None = None) -> str:
    """deleted, disabled, locked or active (the first that applies)."""
    now = now or tokens.now()
    if user.deleted_at is not None:
        return "deleted"
    if not user.is_active:
        return "disabled"
    if user.locked_until is not None and user.locked_until > now:
        return "locked"
    return "active"


def _status_clause(status: str, now: dt.datetime) -> Any:
    live = User.deleted_at.is_(None)
    locked = sa.and_(User.locked_until.is_not(None), User.locked_until > now)
    return {
        "deleted": User.deleted_at.is_not(None),
        "disabled": sa.and_(live, User.is_active.is_(False)),
        "locked": sa.and_(live, User.is_active.is_(True), locked),
        "active": sa.and_(live, User.is_active.is_(True), sa.not_(locked)),
    }[status]


def user_query(*, role: str | None = None, status: str | None = None,
               registered_from: dt.date | None = None, registered_to: dt.date | None = None,
               search: str | None = None, sort: str = "-created_at", now: dt.datetime | None = None) -> sa.Select:
    """The users matching the filters, sorted.  Without ``status`` deleted
    accounts are left out.  ``registered_to`` includes that whole day (UTC);
    ``role`` matches the primary or an extra identity; ``search`` looks for
    the text in username, email and phone."""
    now = now or tokens.now()
    stmt = sa.select(User)
    stmt = stmt.where(_status_clause(status, now) if status else User.deleted_at.is_(None))
    if role:
        role_id = sa.select(Role.id).where(Role.name == role).scalar_subquery()
        stmt = stmt.where(sa.or_(User.role_id == role_id,
                                 sa.exists().where(UserRole.user_id == User.id, UserRole.role_id == role_id)))
    if registered_from:
        stmt = stmt.where(User.created_at >= _day_start(registered_from))
    if registered_to and registered_to < dt.date.max:  # the last day has no next day: no upper bound
        stmt = stmt.where(User.created_at < _day_start(registered_to + dt.timedelta(days=1)))
    if search:
        term = search.strip().lower()
        stmt = stmt.where(sa.or_(*(sa.func.lower(column).contains(term, autoescape=True)
                                   for column in (User.username, User.email, User.phone))))
    return stmt.order_by(*SORTS[sort])


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def summary(user: User, now: dt.datetime | None = None) -> dict[str, Any]:
    """A user as the admin list shows it (no query beyond the user's row
    and its primary role, which is loaded with it)."""
    return {
        "id": user.id, "username": user.username, "email": user.email, "phone": user.phone,
        "role": user.role.name, "role_id": user.role_id, "status": status_of(user, now),
        "is_active": user.is_active, "email_verified": user.email_verified,
        "phone_verified": user.phone_verified, "avatar_url": user.avatar_url,
        "failed_logins": user.failed_logins,
        # a past instant is only where failures start counting again (see services.unlock)
        "locked_until": user.locked_until if user.locked_until and user.locked_until > (now or tokens.now())
        else None,
        "last_login": user.last_login, "created_at": user.created_at, "updated_at": user.updated_at,
        "deleted_at": user.deleted_at,
    }


def login_event_out(event: LoginEvent) -> dict[str, Any]:
    return {"id": event.id, "created_at": event.created_at, "identifier": event.identifier, "ip": event.ip,
            "user_agent": event.user_agent, "method": event.method, "success": event.success,
            "reason": event.reason}


def get_user(session: Session, user_id: int) -> User:
    """Any account, deleted ones included; :class:`NotFound` otherwise."""
    user = session.scalar(sa.select(User).where(User.id == user_id).options(selectinload(User.profile)))
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def detail(session: Session, user: User) -> dict[str, Any]:
    """The account with its profile, every identity and its latest sign-ins."""
    profile = user.profile
    logins = session.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == user.id)
                             .order_by(LoginEvent.created_at.desc(), LoginEvent.id.desc()).limit(RECENT_LOGINS))
    extra = rbac.extra_roles(session, user.id)
    return {
        **summary(user),
        "profile": {key: getattr(profile, key) for key in services.PROFILE_FIELDS} if profile is not None else None,
        "roles": [user.role.name] + [role.name for role in extra if role.id != user.role_id],
        "recent_logins": [login_event_out(event) for event in logins],
    }


def login_events_query(user_id: int) -> sa.Select:
    return (sa.select(LoginEvent).where(LoginEvent.user_id == user_id)
            .order_by(LoginEvent.created_at.desc(), LoginEvent.id.desc()))


# --- export -----------------------------------------------------------------------------

def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def _safe_text(value: str | None) -> str:
    """Text a spreadsheet will not run as a formula (OWASP CSV injection)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value or ""


def csv_row(user: User, now: dt.datetime) -> list[Any]:
    return [user.id, _safe_text(user.username), _safe_text(user.email), user.phone or "", user.role.name,
            status_of(user, now), _cell(user.email_verified), _cell(user.phone_verified),
            _cell(user.created_at), _cell(user.last_login)]


def export_csv(session_factory: Any, stmt: sa.Select, *, batch: int = 500) -> Iterator[bytes]:
    """The users of ``stmt`` as CSV (UTF-8 with a BOM, which spreadsheets
    need to read Chinese names), produced while they stream from the
    database ``batch`` rows at a time: the table is never held in memory.

    Runs on its own session (``session_factory()``), since the response is
    written after the request's transaction has ended.
    """
    now = tokens.now()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(CSV_COLUMNS)
    session = session_factory()
    try:
        rows = session.scalars(stmt.execution_options(yield_per=batch))
        for count, user in enumerate(rows, 1):
            writer.writerow(csv_row(user, now))
            if count % batch == 0:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode("utf-8")
    finally:
        session.close()


# --- changing ---------------------------------------------------------------------------

def snapshot(user: User) -> dict[str, Any]:
    """An account as the audit log keeps it (no password hash)."""
    return {"id": user.id, "username": user.username, "email": user.email, "phone": user.phone,
            "role": user.role.name, "is_active": user.is_active, "email_verified": user.email_verified,
            "phone_verified": user.phone_verified, "status": status_of(user)}


def _record(session: Session, action: str, user: User, actor_id: int | None, ip: str | None,
            before: Any = None, after: Any = None) -> None:
    audit.record(session, action=f"core:user:{action}", target_type="user", target_id=user.id,
                 actor_id=actor_id, ip=ip, before=before, after=after)


def _not_deleted(user: User) -> None:
    if user.deleted_at is not None:
        raise Conflict("This account was deleted.", {"id": ["Deleted accounts cannot be changed."]})


def _not_self(user: User, actor_id: int | None, what: str) -> None:
    if actor_id is not None and user.id == actor_id:
        raise Conflict(f"You cannot {what} your own account.", {"id": [f"Ask another admin to {what} it."]})


def _role(session: Session, name: str) -> Role:
    role = session.scalar(sa.select(Role).where(Role.name == name))
    if role is None:
        raise ValidationFailed({"role": [f"No role named {name!r}."]})
    return role


def _ensure_free(session: Session, values: Mapping[str, str | None], exclude_id: int | None = None) -> None:
    from learnsail.identity.services import ensure_unique

    ensure_unique(session, exclude_id, **values)


_taken_is_conflict = services.taken_is_conflict


def create_user(session: Session, settings: Mapping[str, Any], pm: Any, *, username: str, password: str,
                role: str = "student", email: str | None = None, phone: str | None = None,
                is_active: bool = True, actor_id: int | None = None, ip: str | None = None) -> User:
    """Create an account with any role.  The password policy applies;
    :class:`Conflict` names a taken username, email or phone."""
    _role(session, role)
    email = services.normalise_email(email) if email else None
    phone = services.normalise_phone(phone) if phone else None
    services.check_password(password, settings, username=username, email=email)
    _ensure_free(session, {"username": username, "email": email, "phone": phone})
    with _taken_is_conflict(session):
        user = services.create_user(session, username=username, password=password, role=role, email=email,
                                    phone=phone, pm=pm)
        user.is_active = is_active
    _record(session, "create", user, actor_id, ip, after=snapshot(user))
    return user


def update_user(session: Session, user: User, values: Mapping[str, Any], *, actor_id: int | None = None,
                ip: str | None = None) -> User:
    """Change any of :data:`EDITABLE`.  A new email or phone is no longer
    verified; ``is_active`` false ends every session (as :func:`disable`);
    admins cannot deactivate themselves or change their own role."""
    _not_deleted(user)
    values = {key: values[key] for key in EDITABLE if key in values}
    if "username" in values and not values["username"]:
        raise ValidationFailed({"username": ["A username is required."]})
    if values.get("email"):
        values["email"] = services.normalise_email(values["email"])
    if values.get("phone"):
        values["phone"] = services.normalise_phone(values["phone"])
    for key in ("email", "phone"):
        if key in values and not values[key]:
            values[key] = None
    changes = {key: value for key, value in values.items()
               if value != (user.role.name if key == "role" else getattr(user, key))}
    if not changes:
        return user
    if "role" in changes:
        _not_self(user, actor_id, "change the role of")
    if changes.get("is_active") is False:
        _not_self(user, actor_id, "disable")
    _ensure_free(session, {key: changes[key] for key in ("username", "email", "phone") if key in changes},
                 exclude_id=user.id)
    before = snapshot(user)
    if "role" in changes:
        rbac.set_primary_role(session, user.id, _role(session, changes["role"]).id, actor_id=actor_id, ip=ip)
    with _taken_is_conflict(session):
        for key in ("username", "email", "phone"):
            if key in changes:
                setattr(user, key, changes[key])
    if "email" in changes:
        user.email_verified = False
    if "phone" in changes:
        user.phone_verified = False
    if "is_active" in changes:
        user.is_active = changes["is_active"]
        if not user.is_active:
            tokens.revoke_all(session, user)
    session.flush()
    _record(session, "update", user, actor_id, ip, before=before, after=snapshot(user))
    return user


def _set_active(session: Session, user: User, active: bool, actor_id: int | None, ip: str | None) -> User:
    _not_deleted(user)
    if not active:
        _not_self(user, actor_id, "disable")
    if user.is_active == active:
        return user
    before = snapshot(user)
    user.is_active = active
    if not active:
        tokens.revoke_all(session, user)
    session.flush()
    _record(session, "enable" if active else "disable", user, actor_id, ip, before=before, after=snapshot(user))
    return user


def disable(session: Session, user: User, *, actor_id: int | None = None, ip: str | None = None) -> User:
    """Disable the account: it cannot sign in and every token it holds
    stops working at once."""
    return _set_active(session, user, False, actor_id, ip)


def enable(session: Session, user: User, *, actor_id: int | None = None, ip: str | None = None) -> User:
    return _set_active(session, user, True, actor_id, ip)


def unlock(session: Session, user: User, *, actor_id: int | None = None, ip: str | None = None) -> User:
    """End a lockout after failed sign-ins (the failure count restarts)."""
    _not_deleted(user)
    before = {**snapshot(user), "failed_logins": user.failed_logins, "locked_until": _cell(user.locked_until) or None}
    services.unlock(user)
    session.flush()
    _record(session, "unlock", user, actor_id, ip, before=before,
            after={**snapshot(user), "failed_logins": 0, "locked_until": None})
    return user


def soft_delete(session: Session, user: User, *, actor_id: int | None = None, ip: str | None = None) -> None:
    """Delete the account: it disappears from lists and cannot sign in,
    its tokens stop working; its rows stay (erasure is the owner's
    DELETE /api/v1/users/me).  Deleting a deleted account changes nothing."""
    _not_self(user, actor_id, "delete")
    if user.deleted_at is not None:
        return
    before = snapshot(user)
    user.deleted_at = tokens.now()
    user.is_active = False
    tokens.revoke_all(session, user)
    session.flush()
    _record(session, "delete", user, actor_id, ip, before=before, after=snapshot(user))
