"""What the security policy remembers between requests, so an
authenticated request usually needs no database round trip.

- Verified token claims, by token (a signature stays valid; expiry and
  not-before are checked again at every use).
- Each user's sign-in state (active, deleted, tokens-valid-after, the roles
  held) and each token's revocation, for ``learnsail.auth_cache_seconds``
  (default 1 s): a change made by another process is seen within that time,
  one made in this process at once (the functions below drop the entry).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa

from learnsail.identity import tokens

MAX_CLAIMS = 10_000
REGISTRY_KEY = "learnsail.auth_cache"


@dataclass(frozen=True)
class UserState:
    active: bool
    valid_after: Any  # aware datetime or None
    roles: frozenset[str]


class AuthCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self._claims: OrderedDict[str, dict] = OrderedDict()
        self._users: dict[int, tuple[float, UserState | None]] = {}
        self._revoked: dict[str, tuple[float, bool]] = {}

    def claims(self, settings: Mapping[str, Any], token: str) -> dict:
        """Verified access-token claims; raises :class:`tokens.TokenError`."""
        claims = self._claims.get(token)
        if claims is None:
            claims = tokens.decode(settings, token, "access")
            self._claims[token] = claims
            if len(self._claims) > MAX_CLAIMS:
                self._claims.popitem(last=False)
        else:
            now = time.time()
            if claims["exp"] <= now or claims["nbf"] > now + 5:
                self._claims.pop(token, None)
                raise tokens.TokenError("expired")
        return claims

    def user_state(self, session_factory: Any, user_id: int) -> UserState | None:
        now = time.monotonic()
        entry = self._users.get(user_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        state = load_user_state(session_factory(), user_id)
        if self.seconds > 0:
            self._users[user_id] = (now + self.seconds, state)
        return state

    def is_revoked(self, session_factory: Any, jti: str) -> bool:
        from learnsail.identity.models import RevokedToken

        now = time.monotonic()
        entry = self._revoked.get(jti)
        if entry is not None and entry[0] > now:
            return entry[1]
        revoked = session_factory().get(RevokedToken, jti) is not None
        if self.seconds > 0:
            self._revoked[jti] = (now + self.seconds, revoked)
            if len(self._revoked) > MAX_CLAIMS:
                self._revoked.clear()
        return revoked

    def state_and_revocation(self, session_factory: Any, user_id: int, jti: str) -> tuple[UserState | None, bool]:
        """:meth:`user_state` and :meth:`is_revoked` together: when neither
        is remembered (the usual case for a caller seen less often than
        every ``seconds``), one query answers both."""
        now = time.monotonic()
        user, revoked = self._users.get(user_id), self._revoked.get(jti)
        if user is not None and user[0] > now or revoked is not None and revoked[0] > now:
            return self.user_state(session_factory, user_id), self.is_revoked(session_factory, jti)
        state, is_revoked = load_state_and_revocation(session_factory(), user_id, jti)
        if self.seconds > 0:
            self._users[user_id] = (now + self.seconds, state)
            self._revoked[jti] = (now + self.seconds, is_revoked)
            if len(self._revoked) > MAX_CLAIMS:
                self._revoked.clear()
        return state, is_revoked

    def forget_user(self, user_id: int) -> None:
        self._users.pop(user_id, None)

    def forget_token(self, jti: str) -> None:
        self._revoked.pop(jti, None)

    def clear(self) -> None:
        self._claims.clear()
        self._users.clear()
        self._revoked.clear()


def load_user_state(session: Any, user_id: int) -> UserState | None:
    from learnsail.identity.models import Role, User, UserRole

    row = session.execute(sa.select(User.is_active, User.deleted_at, User.tokens_valid_after, Role.name)
                          .join(Role, Role.id == User.role_id).where(User.id == user_id)).first()
    if row is None:
        return None
    extra = session.scalars(sa.select(Role.name).join(UserRole, UserRole.role_id == Role.id)
                            .where(UserRole.user_id == user_id)).all()
    return UserState(active=bool(row.is_active) and row.deleted_at is None, valid_after=row.tokens_valid_after,
                     roles=frozenset([row.name, *extra]))


_STATE_AND_REVOCATION: Any = None


def _state_and_revocation_stmt() -> Any:
    """The statement of :func:`load_state_and_revocation`, built once:
    constructing it is most of its cost, and it runs on most requests of
    callers seen less often than the cache time.  One row per extra
    identity the user holds (one row when none)."""
    global _STATE_AND_REVOCATION
    if _STATE_AND_REVOCATION is None:
        from learnsail.identity.models import RevokedToken, Role, User, UserRole

        extra_role = sa.orm.aliased(Role)
        revoked = sa.exists().where(RevokedToken.jti == sa.bindparam("jti"))
        _STATE_AND_REVOCATION = (
            sa.select(User.is_active, User.deleted_at, User.tokens_valid_after, Role.name,
                      extra_role.name.label("extra"), revoked.label("revoked"))
            .join(Role, Role.id == User.role_id)
            .outerjoin(UserRole, UserRole.user_id == User.id)
            .outerjoin(extra_role, extra_role.id == UserRole.role_id)
            .where(User.id == sa.bindparam("user_id")))
    return _STATE_AND_REVOCATION


def load_state_and_revocation(session: Any, user_id: int, jti: str) -> tuple[UserState | None, bool]:
    """The user's sign-in state and whether the token ``jti`` is revoked,
    in one statement."""
    from learnsail.identity.models import RevokedToken

    rows = session.execute(_state_and_revocation_stmt(), {"user_id": user_id, "jti": jti}).all()
    if not rows:
        return None, session.get(RevokedToken, jti) is not None
    row = rows[0]
    roles = [row.name, *(r.extra for r in rows if r.extra)]
    return (UserState(active=bool(row.is_active) and row.deleted_at is None, valid_after=row.tokens_valid_after,
                      roles=frozenset(roles)), bool(row.revoked))


def _cache_of(session: Any) -> AuthCache | None:
    registry = session.info.get("learnsail.registry") if session is not None else None
    return registry.get(REGISTRY_KEY) if registry is not None else None


def forget_user(session: Any, user_id: int) -> None:
    """Drop what this process remembers about ``user_id`` (their state changed)."""
    cache = _cache_of(session)
    if cache is not None:
        cache.forget_user(user_id)


def forget_token(session: Any, jti: str) -> None:
    cache = _cache_of(session)
    if cache is not None:
        cache.forget_token(jti)


def _forget_flushed(session: Any, flush_context: Any) -> None:
    """Drop cached sign-in state of users whose rows this flush changed, so
    a change made through the ORM in this process applies at once."""
    from learnsail.identity.models import Role, User, UserRole

    cache = _cache_of(session)
    if cache is None:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, User) and obj.id is not None:
            cache.forget_user(obj.id)
        elif isinstance(obj, UserRole):
            cache.forget_user(obj.user_id)
        elif isinstance(obj, Role):
            cache._users.clear()  # a renamed or deleted role: every holder


_listening = False


def includeme(config: Any) -> None:
    global _listening
    if not _listening:
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        event.listen(Session, "after_flush", _forget_flushed)
        _listening = True
    seconds = config.get_settings().get("learnsail.auth_cache_seconds", 1.0)
    config.registry[REGISTRY_KEY] = AuthCache(seconds)
