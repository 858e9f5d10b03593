"""The HTTP calls of the platform adapters: one pooled, thread-safe client
with timeouts and no automatic retries (a retried refund or prepay is the
service's decision, under its own idempotency keys).

Network failures become ``GatewayError(transient=True)`` whose message says
which platform could not be reached and why in one word, never the request
(which carries signatures) or the response.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Mapping

import urllib3

from .base import GatewayError

log = logging.getLogger("learnsail.payments.gateways")


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  #: lower-cased names
    body: bytes


class HttpClient:
    """``request(method, url, headers, body) -> Response``.  Tests may pass
    any object with that method to a gateway instead."""

    def __init__(self, platform: str, timeout: float = 10.0) -> None:
        self.platform = platform
        self.timeout = timeout
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(5.0, timeout), read=timeout),
            retries=False,
            maxsize=8,
        )

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                body: bytes | None = None) -> Response:
        try:
            r = self._pool.request(method, url, headers=dict(headers or {}), body=body,
                                   redirect=False, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            reason = type(getattr(exc, "reason", None) or exc).__name__
            log.warning("%s %s %s: network error %s", self.platform, method, _path(url), reason)
            raise GatewayError(f"{self.platform} could not be reached ({reason})", transient=True,
                               code="NETWORK_ERROR") from None
        log.info("%s %s %s -> %s", self.platform, method, _path(url), r.status)
        return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.data or b"")


def _path(url: str) -> str:
    """The URL without its query string (which, for Alipay, carries a signature)."""
    return url.split("?", 1)[0]
