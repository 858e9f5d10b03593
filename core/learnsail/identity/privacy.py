"""The owner's rights over their personal data: a complete export (data
portability) and erasure of the account (right to erasure).

Plugins take part through two hooks: ``learnsail_user_export`` (each
returns its data, gathered under ``plugins.<name>``) and
``learnsail_user_erased`` (each deletes or anonymises its rows, in the
erasing transaction).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.errors import Conflict, AuthFailed
from learnsail.identity import audit, passwords, rbac, services, tokens
from learnsail.identity.models import (AuditEntry, LoginEvent, OAuthAccount, RefreshToken, User,
                                       VerificationCode)

#: keys of audit snapshots that identify a person; erased with the account
PERSONAL_KEYS = frozenset({"username", "email", "phone", "avatar_url", *services.PROFILE_FIELDS})
ERASED = "[erased]"


def _about(user_id: int) -> Any:
    return sa.and_(AuditEntry.target_type == "user", AuditEntry.target_id == str(user_id))


def plugin_exports(pm: Any, user_id: int, session: Session) -> dict[str, Any]:
    """``{plugin name: data}`` from every ``learnsail_user_export``
    implementation that holds something for the user."""
    arguments = {"user_id": user_id, "session": session}
    out: dict[str, Any] = {}
    for impl in pm.hook.learnsail_user_export.get_hookimpls():
        data = impl.function(**{name: arguments[name] for name in impl.argnames})
        if data is not None:
            out[impl.plugin_name] = data
    return out


def export(session: Session, pm: Any, user: User) -> dict[str, Any]:
    """Every piece of personal data the platform holds about ``user``
    (never the password hash)."""
    profile = user.profile
    logins = session.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == user.id)
                             .order_by(LoginEvent.created_at, LoginEvent.id))
    about = session.scalars(sa.select(AuditEntry).where(_about(user.id)).order_by(AuditEntry.created_at,
                                                                                  AuditEntry.id))
    # what they did to others: the action, not the other person's data
    done = session.scalars(sa.select(AuditEntry).where(AuditEntry.actor_id == user.id, sa.not_(_about(user.id)))
                           .order_by(AuditEntry.created_at, AuditEntry.id))
    bindings = session.scalars(sa.select(OAuthAccount).where(OAuthAccount.user_id == user.id)
                               .order_by(OAuthAccount.id))
    codes = session.scalars(sa.select(VerificationCode).where(VerificationCode.user_id == user.id)
                            .order_by(VerificationCode.created_at, VerificationCode.id))
    return {
        "exported_at": tokens.now(),
        "account": {
            "id": user.id, "username": user.username, "email": user.email, "phone": user.phone,
            "avatar_url": user.avatar_url, "role": user.role.name,
            "roles": [role.name for role in rbac.identities(session, user)],
            "email_verified": user.email_verified, "phone_verified": user.phone_verified,
            "is_active": user.is_active, "last_login": user.last_login,
            "created_at": user.created_at, "updated_at": user.updated_at,
        },
        "profile": {key: getattr(profile, key) for key in services.PROFILE_FIELDS} if profile else None,
        "login_events": [
            {"created_at": e.created_at, "identifier": e.identifier, "ip": e.ip, "user_agent": e.user_agent,
             "method": e.method, "success": e.success, "reason": e.reason} for e in logins],
        "audit_entries": [
            {"created_at": e.created_at, "action": e.action, "actor_id": e.actor_id, "ip": e.ip,
             "before": e.before, "after": e.after} for e in about],
        "actions": [
            {"created_at": e.created_at, "action": e.action, "target_type": e.target_type,
             "target_id": e.target_id, "ip": e.ip} for e in done],
        "oauth_accounts": [
            {"platform": b.platform, "openid": b.openid, "unionid": b.unionid, "nickname": b.nickname,
             "created_at": b.created_at} for b in bindings],
        "verification_codes": [
            {"purpose": c.purpose, "channel": c.channel, "destination": c.destination,
             "created_at": c.created_at, "expires_at": c.expires_at, "used_at": c.used_at} for c in codes],
        "plugins": plugin_exports(pm, user.id, session),
    }


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (ERASED if k in PERSONAL_KEYS and v is not None else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def erase(session: Session, pm: Any, user: User, password: str) -> None:
    """Erase the account after checking its password (:class:`AuthFailed`).

    Plugins erase their data first (``learnsail_user_erased``); then the
    account is anonymised (username ``deleted-<id>``, no email, phone,
    avatar, profile or usable password), marked deleted, its sign-in log,
    third-party bindings and codes deleted, the personal fields of audit snapshots about it
    erased, and every token it holds stops working.  The audit trail keeps
    what happened, not who it was.
    """
    ok, _ = passwords.verify_password(user.password, password)
    if not ok:
        raise AuthFailed("The password is wrong.", {"password": ["Incorrect."]})
    if services.is_last_admin(session, user):
        raise Conflict("The platform's last administrator cannot be erased; make someone else admin first.",
                       {"role": ["The last administrator."]})
    user_id = user.id
    pm.hook.learnsail_user_erased(user_id=user_id, session=session)
    destinations = [value for value in (user.email, user.phone) if value]
    session.execute(sa.delete(LoginEvent).where(LoginEvent.user_id == user_id))
    session.execute(sa.delete(OAuthAccount).where(OAuthAccount.user_id == user_id))
    session.execute(sa.delete(VerificationCode).where(sa.or_(VerificationCode.user_id == user_id,
                                                             VerificationCode.destination.in_(destinations))))
    for entry in session.scalars(sa.select(AuditEntry).where(_about(user_id))):
        entry.before, entry.after = _redact(entry.before), _redact(entry.after)
    session.execute(sa.update(AuditEntry).where(AuditEntry.actor_id == user_id).values(ip=None))
    tokens.revoke_all(session, user)
    session.execute(sa.delete(RefreshToken).where(RefreshToken.user_id == user_id))
    user.username = f"deleted-{user_id}"
    user.email = user.phone = user.avatar_url = None
    user.email_verified = user.phone_verified = False
    user.password = passwords.UNUSABLE_PASSWORD
    user.profile = None  # delete-orphan: the profile row goes
    user.is_active = False
    user.last_login = user.locked_until = None
    user.failed_logins = 0
    user.deleted_at = tokens.now()
    session.flush()
    audit.record(session, action="core:user:erase", target_type="user", target_id=user_id, actor_id=user_id)
