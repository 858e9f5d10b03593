"""One-time verification codes sent by email or SMS (004 §2.1): password
reset, email and phone verification, SMS sign-in and registration.

A code is ``learnsail.code_length`` random digits, valid for
``learnsail.code_ttl`` seconds, good for one use.  Only its HMAC-SHA256
(keyed with the app secret, bound to the purpose and the destination) is
stored.  Each wrong entry counts against the code; after
``learnsail.code_max_attempts`` it stops working.  Issuing a new code for
the same purpose and destination voids the previous one.

The functions raise :class:`CodeRejected` for a code that does not work,
*after* counting the attempt: the caller must commit anyway (answer with
the error instead of raising it), or wrong guesses would cost nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.errors import AuthFailed, Conflict, ValidationFailed
from learnsail.identity import audit, passwords, services, tokens
from learnsail.identity.models import User, VerificationCode
from learnsail.settings import secret_key

PASSWORD_RESET = "password_reset"
VERIFY_EMAIL = "verify_email"
VERIFY_PHONE = "verify_phone"
SMS_LOGIN = "sms_login"
SMS_REGISTER = "sms_register"

EMAIL, SMS = "email", "sms"


class CodeRejected(ValidationFailed):
    """The code is wrong, expired, used or spent its attempts (400 on ``code``)."""

    def __init__(self, reason: str) -> None:
        super().__init__({"code": [reason]}, "The verification code does not work.")


class SmsLoginFailed(AuthFailed):
    """SMS sign-in refused (401).  The login log entry is already written."""


WRONG = "The code is wrong or has expired; request a new one if needed."
SPENT = "Too many wrong entries; request a new code."


def code_hash(settings: Mapping[str, Any], purpose: str, destination: str, code: str) -> str:
    message = f"{purpose}\x00{destination}\x00{code}".encode()
    return hmac.new(secret_key(settings).encode(), message, hashlib.sha256).hexdigest()


def issue(session: Session, settings: Mapping[str, Any], *, purpose: str, channel: str,
          destination: str, user_id: int | None = None) -> str:
    """Create a code for ``destination`` and return it (to be sent; never stored).
    Unused codes of the same purpose for the destination stop working."""
    length = int(settings["learnsail.code_length"])
    code = f"{secrets.randbelow(10 ** length):0{length}d}"
    now = tokens.now()
    session.execute(sa.delete(VerificationCode).where(
        VerificationCode.destination == destination,
        sa.or_(sa.and_(VerificationCode.purpose == purpose, VerificationCode.used_at.is_(None)),
               VerificationCode.expires_at < now)))
    session.add(VerificationCode(
        purpose=purpose, channel=channel, destination=destination, user_id=user_id,
        code_hash=code_hash(settings, purpose, destination, code),
        expires_at=now + dt.timedelta(seconds=int(settings["learnsail.code_ttl"]))))
    session.flush()
    return code


def consume(session: Session, settings: Mapping[str, Any], *, purposes: Iterable[str], destination: str,
            code: str) -> VerificationCode:
    """Spend the newest live code for ``destination`` (any of ``purposes``).

    Raises :class:`CodeRejected` when there is none, it expired, it spent
    its attempts or ``code`` is wrong (the attempt is then counted).
    """
    now = tokens.now()
    row = session.scalars(
        sa.select(VerificationCode)
        .where(VerificationCode.destination == destination, VerificationCode.purpose.in_(list(purposes)),
               VerificationCode.used_at.is_(None))
        .order_by(VerificationCode.created_at.desc(), VerificationCode.id.desc())
        .limit(1).with_for_update()).first()
    if row is None or row.expires_at <= now:
        raise CodeRejected(WRONG)
    if row.attempts >= int(settings["learnsail.code_max_attempts"]):
        raise CodeRejected(SPENT)
    expected = code_hash(settings, row.purpose, destination, code)
    if not hmac.compare_digest(row.code_hash, expected):
        row.attempts += 1
        session.flush()
        raise CodeRejected(WRONG)
    row.used_at = now
    return row


def purge_expired(session: Session) -> int:
    """Delete codes past their expiry (used or not); returns the count."""
    return session.execute(sa.delete(VerificationCode).where(VerificationCode.expires_at < tokens.now())).rowcount


# --- password reset -----------------------------------------------------------------

def _live_user(session: Session, clause: Any) -> User | None:
    return session.scalar(sa.select(User).where(clause, User.deleted_at.is_(None), User.is_active.is_(True)))


def reset_destination(*, email: str | None = None, phone: str | None = None) -> tuple[str, str, Any]:
    """``(channel, destination, clause)`` for an email or a phone number."""
    if email:
        value = services.normalise_email(email)
        return EMAIL, value, User.email == value
    if phone:
        value = services.normalise_phone(phone)
        return SMS, value, User.phone == value
    raise ValidationFailed({"email": ["Give an email or a phone number."]})


def request_password_reset(session: Session, settings: Mapping[str, Any], *, email: str | None = None,
                           phone: str | None = None) -> tuple[str, str, str | None]:
    """``(channel, destination, code)``: the code is None when no active
    account has this email or phone (the caller answers the same anyway)."""
    channel, destination, clause = reset_destination(email=email, phone=phone)
    user = _live_user(session, clause)
    if user is None:
        return channel, destination, None
    return channel, destination, issue(session, settings, purpose=PASSWORD_RESET, channel=channel,
                                       destination=destination, user_id=user.id)


def reset_password(session: Session, settings: Mapping[str, Any], *, code: str, new_password: str,
                   email: str | None = None, phone: str | None = None, ip: str | None = None) -> User:
    """Set a new password with a reset code.  Every token of the account
    stops working and a lockout ends (the owner proved who they are)."""
    channel, destination, clause = reset_destination(email=email, phone=phone)
    user = _live_user(session, clause)
    if user is None:
        raise CodeRejected(WRONG)  # no code was ever sent: the same answer as a wrong one
    row = consume(session, settings, purposes=[PASSWORD_RESET], destination=destination, code=code)
    if row.user_id != user.id:
        raise CodeRejected(WRONG)  # the address moved to another account since
    # only now, with the code proven: the policy's answer names the account's email
    services.check_password(new_password, settings, field="new_password", username=user.username,
                            email=user.email)
    user.password = passwords.hash_password(new_password)
    services.unlock(user)
    if channel == EMAIL:
        user.email_verified = True
    else:
        user.phone_verified = True
    tokens.revoke_all(session, user)
    audit.record(session, action="core:user:password_reset", target_type="user", target_id=user.id,
                 actor_id=user.id, ip=ip, after={"channel": channel})
    return user


# --- verifying one's email or phone ----------------------------------------------------

def contact(user: User, channel: str) -> tuple[str, str]:
    """``(field, value)`` of the user's email or phone."""
    field = "email" if channel == EMAIL else "phone"
    value = getattr(user, field)
    if not value:
        raise ValidationFailed({field: [f"The account has no {field}; add one to the profile first."]})
    return field, value


def request_verification(session: Session, settings: Mapping[str, Any], user: User, channel: str) -> tuple[str, str]:
    """``(destination, code)`` to verify the user's email or phone."""
    field, destination = contact(user, channel)
    if getattr(user, f"{field}_verified"):
        raise Conflict(f"The {field} is already verified.", {field: ["Already verified."]})
    purpose = VERIFY_EMAIL if channel == EMAIL else VERIFY_PHONE
    return destination, issue(session, settings, purpose=purpose, channel=channel, destination=destination,
                              user_id=user.id)


def confirm_verification(session: Session, settings: Mapping[str, Any], user: User, channel: str,
                         code: str) -> User:
    """Mark the email or phone verified with the code sent to it."""
    field, destination = contact(user, channel)
    purpose = VERIFY_EMAIL if channel == EMAIL else VERIFY_PHONE
    row = consume(session, settings, purposes=[purpose], destination=destination, code=code)
    if row.user_id != user.id:
        raise CodeRejected(WRONG)
    setattr(user, f"{field}_verified", True)
    return user


# --- SMS sign-in and registration ------------------------------------------------------

def request_sms_code(session: Session, settings: Mapping[str, Any], *, phone: str,
                     purpose: str) -> tuple[str, str | None]:
    """``(phone, code)`` for signing in (``login``: only to a phone of an
    active account; code None otherwise) or registering (``register``)."""
    phone = services.normalise_phone(phone)
    user = _live_user(session, User.phone == phone)
    if purpose == "login" and user is None:
        return phone, None
    return phone, issue(session, settings, purpose=SMS_LOGIN if purpose == "login" else SMS_REGISTER,
                        channel=SMS, destination=phone, user_id=user.id if user else None)


def _new_username(session: Session) -> str:
    while True:
        name = f"user_{secrets.token_hex(5)}"
        if session.scalar(sa.select(User.id).where(User.username == name)) is None:
            return name


def sms_login(session: Session, settings: Mapping[str, Any], pm: Any, *, phone: str, code: str,
              ip: str, user_agent: str) -> User:
    """Sign in with a code sent to ``phone``.  A code requested with
    purpose ``register`` creates a student account on first use (a
    generated username, no usable password, the phone verified).

    Every attempt is written to the login log (method ``sms``), failures
    included: the caller must commit even when this raises
    (:class:`SmsLoginFailed`).
    """
    phone = services.normalise_phone(phone)
    user = session.scalar(sa.select(User).where(User.phone == phone, User.deleted_at.is_(None)))

    def fail(reason: str, message: str, details: dict | None = None) -> SmsLoginFailed:
        services.record_login(session, user=user, identifier=phone, ip=ip, user_agent=user_agent,
                              method="sms", success=False, reason=reason)
        return SmsLoginFailed(message, details)

    now = tokens.now()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        raise fail("locked", "Too many failed sign-ins: the account is locked for a while.",
                   {"retry_after": int((user.locked_until - now).total_seconds()) + 1})
    try:
        row = consume(session, settings, purposes=[SMS_LOGIN, SMS_REGISTER], destination=phone, code=code)
    except CodeRejected as exc:
        raise fail("bad_code", "The phone number or code is wrong, or the code has expired.",
                   exc.details) from None
    if user is None:
        if row.purpose != SMS_REGISTER:
            raise fail("unknown_account", "The phone number or code is wrong, or the code has expired.")
        user = services.create_user(session, username=_new_username(session), password=secrets.token_urlsafe(32),
                                    role="student", phone=phone, pm=pm)
        user.password = passwords.UNUSABLE_PASSWORD
    elif not user.is_active:
        raise fail("disabled", "The phone number or code is wrong, or the code has expired.")
    user.phone_verified = True
    services.signed_in(session, pm, user, identifier=phone, ip=ip, user_agent=user_agent, method="sms")
    session.flush()
    return user
