"""JWT access and refresh tokens (000 §六.3: 2 hours and 7 days).

Access tokens are stateless JWTs carrying the active identity (``role``)
and a microsecond issue time (``ts``) compared with the user's
``tokens_valid_after``, so logout-everywhere, a password change or disabling
an account invalidates them at once.  A single access token is revoked by
its ``jti`` (logout).  Refresh tokens are single use and rotate within a
family; presenting a spent one revokes the whole family.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Mapping

import jwt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.errors import AuthFailed

ALLOWED_ALGORITHMS = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512"}


class TokenError(Exception):
    pass


def _keys(settings: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(signing key, verification key, algorithm, audience)."""
    from learnsail.settings import secret_key

    algorithm = settings.get("learnsail.jwt_algorithm", "HS256")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise TokenError(f"learnsail.jwt_algorithm {algorithm!r} is not allowed")
    audience = settings.get("learnsail.jwt_audience", "learnsail")
    if algorithm.startswith("RS"):
        private = settings.get("learnsail.jwt_private_key") or ""
        public = settings.get("learnsail.jwt_public_key") or ""
        if not private or not public:
            raise TokenError("RS* algorithms need learnsail.jwt_private_key and learnsail.jwt_public_key")
        return _pem(private), _pem(public), algorithm, audience
    secret = secret_key(settings)
    return secret, secret, algorithm, audience


def _pem(value: str) -> str:
    """A PEM given inline, or the path of a file holding it."""
    if "-----BEGIN" in value:
        return value
    with open(value, encoding="ascii") as handle:
        return handle.read()


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def issue(settings: Mapping[str, Any], user_id: int, kind: str, ttl: int, **claims: Any) -> str:
    signing, _, algorithm, audience = _keys(settings)
    issued = now()
    payload = {"sub": str(user_id), "type": kind, "aud": audience, "iat": issued, "nbf": issued,
               "exp": issued + dt.timedelta(seconds=ttl), "jti": uuid.uuid4().hex,
               "ts": issued.timestamp(), **claims}
    return jwt.encode(payload, signing, algorithm=algorithm)


def decode(settings: Mapping[str, Any], token: str, kind: str) -> dict[str, Any]:
    """The claims of a valid token of ``kind``; :class:`TokenError` otherwise.

    Only the configured algorithm is accepted (never ``none``, and an
    HS-signed token is refused when RS256 is configured), and exp, nbf, iat,
    audience and type are all checked.
    """
    _, verifying, algorithm, audience = _keys(settings)
    try:
        claims = jwt.decode(token, verifying, algorithms=[algorithm], audience=audience,
                            options={"require": ["exp", "iat", "nbf", "sub", "type", "aud", "jti"]})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from None
    if claims.get("type") != kind:
        raise TokenError(f"not an {kind} token")
    return claims


def issued_before(claims: Mapping[str, Any], instant: dt.datetime | None) -> bool:
    """Was the token issued before ``instant`` (a revocation point)?"""
    if instant is None:
        return False
    return float(claims.get("ts", claims.get("iat", 0))) <= instant.timestamp()


def issue_pair(session: Session, settings: Mapping[str, Any], user: Any, role: str,
               family: str | None = None) -> dict[str, Any]:
    """A new access token and a new refresh token (recorded, single use)."""
    from learnsail.identity.models import RefreshToken

    access_ttl = int(settings["learnsail.jwt_access_ttl"])
    refresh_ttl = int(settings["learnsail.jwt_refresh_ttl"])
    family = family or uuid.uuid4().hex
    refresh = issue(settings, user.id, "refresh", refresh_ttl, role=role, fam=family)
    claims = jwt.decode(refresh, options={"verify_signature": False})
    session.add(RefreshToken(jti=claims["jti"], family=family, user_id=user.id, role=role,
                             expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc)))
    return {
        "access_token": issue(settings, user.id, "access", access_ttl, role=role, fam=family),
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": access_ttl,
    }


def rotate(session: Session, settings: Mapping[str, Any], token: str) -> tuple[Any, dict[str, Any]]:
    """Spend a refresh token and issue the next pair of its family.

    A token presented twice means it leaked: the whole family is revoked
    and the caller must sign in again.
    """
    from learnsail.identity.models import RefreshToken, User

    try:
        claims = decode(settings, token, "refresh")
    except TokenError:
        raise AuthFailed("The refresh token is invalid or expired.") from None
    row = session.scalar(sa.select(RefreshToken).where(RefreshToken.jti == claims["jti"]).with_for_update())
    if row is None or row.revoked_at is not None:
        raise AuthFailed("The refresh token is invalid or expired.")
    if row.used_at is not None:
        revoke_family(session, row.family)
        raise AuthFailed("The refresh token was already used; sign in again.")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active or user.deleted_at is not None \
            or issued_before(claims, user.tokens_valid_after):
        raise AuthFailed("The refresh token is invalid or expired.")
    from learnsail.identity.authcache import load_user_state

    state = load_user_state(session, user.id)
    if state is None or row.role not in state.roles:
        raise AuthFailed("The identity of this session was taken away; sign in again.")
    row.used_at = now()
    return user, issue_pair(session, settings, user, row.role, family=row.family)


def revoke_family(session: Session, family: str) -> None:
    from learnsail.identity.models import RefreshToken

    session.execute(sa.update(RefreshToken).where(RefreshToken.family == family,
                                                  RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now()))


def revoke_access(session: Session, claims: Mapping[str, Any]) -> None:
    """Refuse this access token from now on (until it would expire anyway)."""
    from learnsail.identity.models import RevokedToken

    from learnsail.identity.authcache import forget_token

    if session.get(RevokedToken, claims["jti"]) is None:
        session.add(RevokedToken(jti=claims["jti"],
                                 expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc)))
    forget_token(session, claims["jti"])


def revoke_all(session: Session, user: Any) -> None:
    """Every token the user holds stops working now (password change,
    disabling, erasure, logout everywhere)."""
    from learnsail.identity.authcache import forget_user
    from learnsail.identity.models import RefreshToken

    user.tokens_valid_after = now()
    forget_user(session, user.id)
    session.execute(sa.update(RefreshToken).where(RefreshToken.user_id == user.id,
                                                  RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now()))


def purge_expired(session: Session) -> int:
    """Delete revocation and refresh rows past their expiry; returns the count."""
    from learnsail.identity.models import RefreshToken, RevokedToken

    cutoff = now()
    gone = session.execute(sa.delete(RevokedToken).where(RevokedToken.expires_at < cutoff)).rowcount
    gone += session.execute(sa.delete(RefreshToken).where(RefreshToken.expires_at < cutoff)).rowcount
    return gone
