"""JWT access and refresh tokens (000 §六.3: 2 hours and 7 days)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Mapping

import jwt

ALLOWED_ALGORITHMS = {"HS256", "HS384", "HS512", "RS256"}


class TokenError(Exception):
    pass


def _config(settings: Mapping[str, Any]) -> tuple[str, str, str]:
    from learnsail.settings import secret_key

    algorithm = settings.get("learnsail.jwt_algorithm", "HS256")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise TokenError(f"learnsail.jwt_algorithm {algorithm!r} is not allowed")
    return secret_key(settings), algorithm, settings.get("learnsail.jwt_audience", "learnsail")


def issue(settings: Mapping[str, Any], user_id: int, kind: str, ttl: int, **claims: Any) -> str:
    secret, algorithm, audience = _config(settings)
    now = dt.datetime.now(dt.timezone.utc)
    payload = {"sub": str(user_id), "type": kind, "aud": audience, "iat": now, "nbf": now,
               "exp": now + dt.timedelta(seconds=ttl), "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(payload, secret, algorithm=algorithm)


def decode(settings: Mapping[str, Any], token: str, kind: str) -> dict[str, Any]:
    """The claims of a valid token of ``kind``; :class:`TokenError` otherwise.

    Only the configured algorithm is accepted (never ``none``), and exp,
    nbf, iat, audience and type are all checked.
    """
    secret, algorithm, audience = _config(settings)
    try:
        claims = jwt.decode(token, secret, algorithms=[algorithm], audience=audience,
                            options={"require": ["exp", "iat", "nbf", "sub", "type", "aud"]})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from None
    if claims.get("type") != kind:
        raise TokenError(f"not an {kind} token")
    return claims
