"""Signed download tokens for local storage (the app serves them at
``/api/v1/storage/<token>``; MinIO/S3 presigns its own URLs).

A token is ``<payload>.<signature>``: the payload is base64url JSON naming
the object key, the expiry (Unix seconds) and how to serve it (file name,
disposition, content type); the signature is HMAC-SHA256 over the payload
with a key derived from ``learnsail.secret``.  Changing any byte, or using
it after the expiry, makes it worthless.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class InvalidToken(ValueError):
    """The token was not issued by this platform, or was altered."""


class ExpiredToken(InvalidToken):
    """The token was valid but its time is up."""


def _key(secret: str) -> bytes:
    # a key of its own, so a storage token is never valid as anything else
    return hashlib.sha256(b"learnsail.storage.url\0" + secret.encode("utf-8")).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: str, key: str, expires_at: int, *, filename: str | None = None,
               disposition: str = "attachment", content_type: str | None = None) -> str:
    """A token granting a GET of ``key`` until ``expires_at`` (Unix time)."""
    payload = {"k": key, "e": int(expires_at), "d": disposition}
    if filename:
        payload["n"] = filename
    if content_type:
        payload["t"] = content_type
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode("utf-8"))
    signature = _b64(hmac.new(_key(secret), body.encode("ascii"), hashlib.sha256).digest())
    return f"{body}.{signature}"


def read_token(secret: str, token: str, now: float | None = None) -> dict[str, Any]:
    """``{"key", "expires_at", "disposition", "filename", "content_type"}``
    of a genuine, unexpired token; :class:`InvalidToken` or
    :class:`ExpiredToken` otherwise."""
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature or len(token) > 4096:
        raise InvalidToken("not a storage token")
    expected = _b64(hmac.new(_key(secret), body.encode("ascii", "replace"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise InvalidToken("the signature does not match")
    try:
        payload = json.loads(_unb64(body))
        key, expires_at = str(payload["k"]), int(payload["e"])
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("the payload is unreadable") from None
    if (time.time() if now is None else now) >= expires_at:
        raise ExpiredToken("the link has expired")
    return {"key": key, "expires_at": expires_at, "disposition": payload.get("d", "attachment"),
            "filename": payload.get("n"), "content_type": payload.get("t")}
