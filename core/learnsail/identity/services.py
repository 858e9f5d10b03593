"""Account rules, independent of HTTP: registration, sign-in with lockout
and a login log, password policy and changes, profiles."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
from functools import lru_cache
from typing import Any, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.errors import AuthFailed, Conflict, PermissionDenied, ValidationFailed
from learnsail.identity import passwords, tokens
from learnsail.identity.models import GENDERS, LoginEvent, Role, User, UserProfile

#: the roles every platform starts with (also created by migration core_0002)
DEFAULT_ROLES = (
    ("student", "Learns: enrols in courses, studies, takes exams."),
    ("teacher", "Teaches: creates and runs courses."),
    ("admin", "Runs the platform: every permission."),
)
ADMIN_ROLE = "admin"
PASSWORD_MIN, PASSWORD_MAX = 8, 128
PROFILE_FIELDS = ("real_name", "gender", "birthday", "bio", "location", "education", "work_experience")

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PHONE_STRIP = re.compile(r"[\s\-().]")


# --- normalisation and policy ------------------------------------------------

def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 100 or not EMAIL_RE.match(value):
        raise ValidationFailed({"email": ["Not a valid email address."]})
    return value


def normalise_phone(phone: str) -> str:
    """Digits with an optional leading +; a mainland number may carry +86."""
    value = PHONE_STRIP.sub("", phone.strip())
    if value.startswith("00"):
        value = "+" + value[2:]
    if value.startswith("+86") and len(value) == 14:
        value = value[3:]
    digits = value[1:] if value.startswith("+") else value
    if not digits.isdigit() or not 6 <= len(digits) <= 15:
        raise ValidationFailed({"phone": ["Not a valid phone number."]})
    return value


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # The 30,000 most common passwords of the zxcvbn project's data set.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def validate_password(password: str, settings: Mapping[str, Any] | None = None, *,
                      username: str | None = None, email: str | None = None) -> list[str]:
    """Reasons the password is refused (ASVS V2.1): empty means accepted.

    Length 8-128, not among common passwords, not the username or email.
    No composition rules.
    """
    reasons = []
    if len(password) < PASSWORD_MIN:
        reasons.append(f"Use at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        reasons.append(f"Use at most {PASSWORD_MAX} characters.")
    lowered = password.lower()
    if lowered in _common_passwords():
        reasons.append("This password is too common; choose another.")
    if username and lowered == username.lower() or email and lowered == email.lower():
        reasons.append("The password must not be your username or email.")
    return reasons


def check_password(password: str, settings: Mapping[str, Any] | None = None, *, field: str = "password",
                   username: str | None = None, email: str | None = None) -> None:
    reasons = validate_password(password, settings, username=username, email=email)
    if reasons:
        raise ValidationFailed({field: reasons})


# --- roles and accounts -------------------------------------------------------

def ensure_default_roles(session: Session) -> dict[str, Role]:
    """Create the default roles that are missing (idempotent)."""
    existing = {role.name: role for role in session.scalars(sa.select(Role))}
    for name, description in DEFAULT_ROLES:
        if name not in existing:
            role = Role(name=name, description=description, is_builtin=True)
            session.add(role)
            existing[name] = role
    session.flush()
    return existing


def ensure_unique(session: Session, exclude_id: int | None = None, **values: str | None) -> None:
    """:class:`Conflict` naming the first of username/email/phone another
    account holds (``exclude_id``: the account being changed)."""
    for field, value in values.items():
        if not value:
            continue
        # case-insensitive on every backend (MySQL's collation already is)
        stmt = sa.select(User.id).where(sa.func.lower(getattr(User, field)) == value.lower())
        if exclude_id is not None:
            stmt = stmt.where(User.id != exclude_id)
        if session.scalar(stmt.limit(1)) is not None:
            raise Conflict(f"This {field} is already registered.", {field: ["Already registered."]})


@contextlib.contextmanager
def taken_is_conflict(session: Session) -> Iterator[None]:
    """Run the block and flush it in a savepoint: a unique index refusing a
    username, email or phone taken since :func:`ensure_unique` looked (two
    requests at once) is a :class:`Conflict` naming it, not a 500."""
    try:
        with session.begin_nested():
            yield
            session.flush()
    except sa.exc.IntegrityError as exc:
        text = str(exc.orig)
        field = next((f for f in ("username", "email", "phone") if f"users.{f}" in text or f"users_{f}" in text),
                     None)
        if field is None:
            raise
        raise Conflict(f"This {field} is already registered.", {field: ["Already registered."]}) from None


def create_user(session: Session, *, username: str, password: str, role: str = "student",
                email: str | None = None, phone: str | None = None, pm: Any = None) -> User:
    """Create an account.  Raises :class:`Conflict` naming the taken field."""
    roles = ensure_default_roles(session)
    if role not in roles:
        raise ValidationFailed({"role": [f"Unknown role {role!r}."]})
    email = normalise_email(email) if email else None
    phone = normalise_phone(phone) if phone else None
    ensure_unique(session, username=username, email=email, phone=phone)
    user = User(username=username, email=email, phone=phone, role=roles[role],
                password=passwords.hash_password(password))
    with taken_is_conflict(session):
        session.add(user)
    if pm is not None:
        pm.hook.learnsail_user_created(user=user, session=session)
    return user


def register(session: Session, settings: Mapping[str, Any], pm: Any, *, username: str, password: str,
             email: str | None = None, phone: str | None = None, role_id: int | None = None) -> User:
    """Self-registration: the role must be one users may choose."""
    ensure_default_roles(session)
    role_name = "student"
    if role_id is not None:
        role = session.get(Role, role_id)
        if role is None:
            raise ValidationFailed({"role_id": ["No such role."]})
        allowed = set(settings.get("learnsail.self_assignable_roles") or ())
        if role.name not in allowed:
            raise PermissionDenied("This role cannot be chosen when registering.",
                                   {"role_id": [f"Choose one of: {', '.join(sorted(allowed))}."]})
        role_name = role.name
    normalised_email = normalise_email(email) if email else None
    check_password(password, settings, username=username, email=normalised_email)
    return create_user(session, username=username, password=password, role=role_name,
                       email=normalised_email, phone=phone, pm=pm)


def is_last_admin(session: Session, user: User) -> bool:
    """Is ``user`` the only active administrator (primary role admin)?"""
    if user.role.name != ADMIN_ROLE:
        return False
    others = session.scalar(sa.select(sa.func.count()).select_from(User).where(
        User.role_id == user.role_id, User.id != user.id, User.is_active.is_(True), User.deleted_at.is_(None)))
    return not others


def ensure_admin(session: Session, username: str | None, password: str | None,
                 pm: Any = None) -> tuple[User | None, str | None]:
    """Create an admin when the platform has none.

    Returns ``(user, generated_password)``: user is None when an admin
    already exists; the password is returned only when it was generated.
    """
    roles = ensure_default_roles(session)
    if session.scalar(sa.select(User.id).where(User.role_id == roles[ADMIN_ROLE].id, User.is_active.is_(True),
                                               User.deleted_at.is_(None)).limit(1)):
        return None, None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    user = create_user(session, username=username or "admin", password=password, role=ADMIN_ROLE, pm=pm)
    return user, generated


# --- sign-in --------------------------------------------------------------------

def _find(session: Session, *, username: str | None, email: str | None, phone: str | None) -> User | None:
    if username:
        clause = sa.func.lower(User.username) == username.lower()  # as uniqueness: case-insensitive
    elif email:
        clause = sa.func.lower(User.email) == email.strip().lower()
    elif phone:
        try:
            clause = User.phone == normalise_phone(phone)
        except ValidationFailed:
            return None
    else:
        raise ValidationFailed({"username": ["Give a username, an email or a phone number."]})
    return session.scalar(sa.select(User).where(clause, User.deleted_at.is_(None)))


def authenticate(session: Session, password: str, *, username: str | None = None,
                 email: str | None = None, phone: str | None = None) -> User:
    """The active user with these credentials; :class:`AuthFailed` otherwise
    (the same answer whether the account exists or not)."""
    user = _find(session, username=username, email=email, phone=phone)
    if user is None:
        passwords.verify_password(passwords.DUMMY_HASH, password)
        raise AuthFailed("Invalid username or password.")
    ok, new_hash = passwords.verify_password(user.password, password)
    if not ok or not user.is_active:
        raise AuthFailed("Invalid username or password.")
    if new_hash:
        user.password = new_hash
    return user


def record_login(session: Session, *, user: User | None, identifier: str, ip: str, user_agent: str,
                 method: str, success: bool, reason: str | None = None) -> LoginEvent:
    event = LoginEvent(user_id=user.id if user else None, identifier=identifier[:100], ip=ip or "",
                       user_agent=(user_agent or "")[:255], method=method, success=success, reason=reason)
    session.add(event)
    return event


def _recent_failures(session: Session, user: User, settings: Mapping[str, Any], now: dt.datetime) -> int:
    since = now - dt.timedelta(seconds=int(settings["learnsail.login_failure_window"]))
    if user.locked_until is not None and user.locked_until > since:
        since = user.locked_until  # failures before the last lock are spent
    last_success = session.scalar(sa.select(sa.func.max(LoginEvent.created_at))
                                  .where(LoginEvent.user_id == user.id, LoginEvent.success.is_(True)))
    if last_success is not None and last_success > since:
        since = last_success
    return session.scalar(sa.select(sa.func.count()).select_from(LoginEvent).where(
        LoginEvent.user_id == user.id, LoginEvent.success.is_(False), LoginEvent.reason == "bad_credentials",
        LoginEvent.created_at > since)) or 0


def login(session: Session, settings: Mapping[str, Any], pm: Any, *, password: str, ip: str,
          user_agent: str, username: str | None = None, email: str | None = None,
          phone: str | None = None) -> tuple[User, bool]:
    """Sign in with a password: ``(user, new_device)``.

    Every attempt is written to the login log, failures included: callers
    must commit even when this raises :class:`AuthFailed`.  Too many
    failures in the window lock the account for a while.
    """
    identifier = username or email or phone or ""
    now = tokens.now()
    user = _find(session, username=username, email=email, phone=phone)
    if user is not None and user.locked_until is not None and user.locked_until > now:
        record_login(session, user=user, identifier=identifier, ip=ip, user_agent=user_agent,
                     method="password", success=False, reason="locked")
        passwords.verify_password(passwords.DUMMY_HASH, password)
        retry = int((user.locked_until - now).total_seconds()) + 1
        raise AuthFailed("Too many failed sign-ins: the account is locked for a while.",
                         {"retry_after": retry})
    try:
        user = authenticate(session, password, username=username, email=email, phone=phone)
    except AuthFailed:
        if user is not None and not user.is_active:
            record_login(session, user=user, identifier=identifier, ip=ip, user_agent=user_agent,
                         method="password", success=False, reason="disabled")
        elif user is not None:
            record_login(session, user=user, identifier=identifier, ip=ip, user_agent=user_agent,
                         method="password", success=False, reason="bad_credentials")
            session.flush()
            if _recent_failures(session, user, settings, now) >= int(settings["learnsail.login_max_failures"]):
                user.locked_until = now + dt.timedelta(seconds=int(settings["learnsail.login_lockout_seconds"]))
                user.failed_logins = 0
            else:
                user.failed_logins = (user.failed_logins or 0) + 1
        else:
            record_login(session, user=None, identifier=identifier, ip=ip, user_agent=user_agent,
                         method="password", success=False, reason="unknown_account")
        raise
    return user, signed_in(session, pm, user, identifier=identifier, ip=ip, user_agent=user_agent,
                           method="password")


def signed_in(session: Session, pm: Any, user: User, *, identifier: str, ip: str, user_agent: str,
              method: str) -> bool:
    """Book-keeping of every successful sign-in (password, SMS, WeChat...):
    the login log, last_login, the lockout cleared, and the
    ``learnsail_login_new_device`` hook for an IP and browser never seen
    before (not on the account's very first sign-in).  Returns whether the
    device was new."""
    new_device = session.scalar(sa.select(LoginEvent.id).where(
        LoginEvent.user_id == user.id, LoginEvent.success.is_(True), LoginEvent.ip == (ip or ""),
        LoginEvent.user_agent == (user_agent or "")[:255]).limit(1)) is None
    first_login = user.last_login is None
    event = record_login(session, user=user, identifier=identifier, ip=ip, user_agent=user_agent,
                         method=method, success=True)
    user.last_login = tokens.now()
    unlock(user)
    if new_device and not first_login and pm is not None:
        session.flush()
        pm.hook.learnsail_login_new_device(user=user, event=event, session=session)
    return new_device and not first_login


def unlock(user: User) -> None:
    """End a lockout; failures before now no longer count towards the next."""
    user.locked_until = tokens.now()  # in the past from now on: a marker, not a lock
    user.failed_logins = 0


# --- passwords and profile ----------------------------------------------------

def change_password(session: Session, settings: Mapping[str, Any], user: User, old: str, new: str) -> None:
    """Change the password; every outstanding token stops working."""
    ok, _ = passwords.verify_password(user.password, old)
    if not ok:
        raise AuthFailed("The current password is wrong.", {"old_password": ["Incorrect."]})
    if old == new:
        raise ValidationFailed({"new_password": ["Choose a password different from the current one."]})
    check_password(new, settings, field="new_password", username=user.username, email=user.email)
    user.password = passwords.hash_password(new)
    tokens.revoke_all(session, user)


def update_profile(session: Session, user: User, values: Mapping[str, Any]) -> User:
    """Update account fields (username, email, phone, avatar_url) and the
    nested profile.  A changed email or phone is no longer verified."""
    account = {k: values[k] for k in ("username", "email", "phone") if k in values}
    if "email" in account and account["email"]:
        account["email"] = normalise_email(account["email"])
    if "phone" in account and account["phone"]:
        account["phone"] = normalise_phone(account["phone"])
    ensure_unique(session, exclude_id=user.id, **account)
    if "email" in account and account["email"] != user.email:
        user.email_verified = False
    if "phone" in account and account["phone"] != user.phone:
        user.phone_verified = False
    with taken_is_conflict(session):
        for key, value in account.items():
            setattr(user, key, value or (None if key != "username" else user.username))
    if "avatar_url" in values:
        user.avatar_url = values["avatar_url"]
    profile_values = values.get("profile") or {}
    if profile_values:
        if profile_values.get("gender") not in (None, *GENDERS):
            raise ValidationFailed({"profile.gender": [f"One of {', '.join(GENDERS)}."]})
        if user.profile is None:
            user.profile = UserProfile()
        for key in PROFILE_FIELDS:
            if key in profile_values:
                setattr(user.profile, key, profile_values[key])
    session.flush()
    return user
