"""Rate limits with the ``limits`` library: Redis in production
(``learnsail.ratelimit_storage_url = redis://...``), memory embedded.

A storage outage never fails a request: the limiter fails open and logs it
at most once a minute.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from learnsail.errors import RateLimited

log = logging.getLogger("learnsail.ratelimit")


class RateLimiter:
    def __init__(self, storage_url: str) -> None:
        self.storage_url = storage_url or "memory://"
        self.storage = storage_from_string(self.storage_url)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self._last_warning = 0.0

    def hit(self, scope: str, key: str, limit: str) -> None:
        """Count one request of ``scope`` for ``key``; raise
        :class:`RateLimited` (429, Retry-After) past ``limit`` ("10/minute")."""
        if not limit:
            return
        item = parse(limit)
        try:
            if self.limiter.hit(item, scope, key):
                return
            reset_at, _ = self.limiter.get_window_stats(item, scope, key)
        except Exception as exc:  # fail open: a limiter outage must not lock users out
            now = time.monotonic()
            if now - self._last_warning > 60:
                self._last_warning = now
                log.warning("rate limiter storage %s unavailable, failing open: %s", self.storage_url, exc)
            return
        raise RateLimited(max(1, int(reset_at - time.time()) + 1))

    def reset(self) -> None:
        try:
            self.storage.reset()
        except Exception as exc:  # storage down: nothing to reset
            log.warning("could not reset rate limits: %s", exc)


def _rate_limit(request: Any, scope: str, key: str, limit: str) -> None:
    request.registry["learnsail.ratelimiter"].hit(scope, key, limit)


def includeme(config: Any) -> None:
    settings = config.get_settings()
    config.registry["learnsail.ratelimiter"] = RateLimiter(settings.get("learnsail.ratelimit_storage_url", ""))
    config.add_request_method(_rate_limit, "rate_limit")
