"""Account rules, independent of HTTP."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.errors import AuthFailed, Conflict, ValidationFailed
from learnsail.identity import passwords
from learnsail.identity.models import Role, User

#: the roles every platform starts with: (name, description, self-assignable)
DEFAULT_ROLES = (
    ("student", "Learns: enrols in courses, studies, takes exams.", True),
    ("teacher", "Teaches: creates and runs courses.", True),
    ("admin", "Runs the platform: every permission.", False),
)
ADMIN_ROLE = "admin"


def ensure_default_roles(session: Session) -> dict[str, Role]:
    """Create the default roles that are missing (idempotent)."""
    existing = {role.name: role for role in session.scalars(sa.select(Role))}
    for name, description, self_assignable in DEFAULT_ROLES:
        if name not in existing:
            role = Role(name=name, description=description, self_assignable=self_assignable,
                        is_builtin=True)
            session.add(role)
            existing[name] = role
    session.flush()
    return existing


def create_user(session: Session, *, username: str, password: str, role: str = "student",
                email: str | None = None, phone: str | None = None, pm: Any = None) -> User:
    """Create an account.  Raises :class:`Conflict` naming the taken field."""
    roles = ensure_default_roles(session)
    if role not in roles:
        raise ValidationFailed({"role": [f"Unknown role {role!r}."]})
    email = email.strip().lower() if email else None
    for field, value in (("username", username), ("email", email), ("phone", phone)):
        if value and session.scalar(sa.select(User.id).where(getattr(User, field) == value)):
            raise Conflict(f"This {field} is already registered.", {field: ["Already registered."]})
    user = User(username=username, email=email, phone=phone, role=roles[role],
                password=passwords.hash_password(password))
    session.add(user)
    session.flush()
    if pm is not None:
        pm.hook.learnsail_user_created(user=user, session=session)
    return user


def ensure_admin(session: Session, username: str | None, password: str | None,
                 pm: Any = None) -> tuple[User | None, str | None]:
    """Create an admin when the platform has none.

    Returns ``(user, generated_password)``: user is None when an admin
    already exists; the password is returned only when it was generated.
    """
    roles = ensure_default_roles(session)
    if session.scalar(sa.select(User.id).where(User.role_id == roles[ADMIN_ROLE].id).limit(1)):
        return None, None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    user = create_user(session, username=username or "admin", password=password, role=ADMIN_ROLE, pm=pm)
    return user, generated


def authenticate(session: Session, password: str, *, username: str | None = None,
                 email: str | None = None, phone: str | None = None) -> User:
    """The active user with these credentials; :class:`AuthFailed` otherwise
    (the same answer whether the account exists or not)."""
    if username:
        clause = User.username == username
    elif email:
        clause = User.email == email.strip().lower()
    elif phone:
        clause = User.phone == phone
    else:
        raise ValidationFailed({"username": ["Give a username, an email or a phone number."]})
    user = session.scalar(sa.select(User).where(clause))
    if user is None:
        passwords.verify_password(passwords.DUMMY_HASH, password)
        raise AuthFailed("Invalid username or password.")
    ok, new_hash = passwords.verify_password(user.password, password)
    if not ok or not user.is_active:
        raise AuthFailed("Invalid username or password.")
    if new_hash:
        user.password = new_hash
    user.last_login = dt.datetime.now(dt.timezone.utc)
    return user
