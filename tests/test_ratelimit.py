"""Rate limits on a real Redis (as in production) and in memory, and
failing open when the counter store is down."""

from __future__ import annotations

import logging

import pytest

from learnsail.errors import RateLimited
from learnsail.ratelimit import RateLimiter
from learnsail.testing.services import free_port


def exhaust(limiter, key):
    limiter.hit("login-ip", key, "3/minute")
    limiter.hit("login-ip", key, "3/minute")
    limiter.hit("login-ip", key, "3/minute")
    with pytest.raises(RateLimited) as info:
        limiter.hit("login-ip", key, "3/minute")
    return info.value


def test_memory_limits():
    limiter = RateLimiter("memory://")
    error = exhaust(limiter, "10.0.0.1")
    assert error.status == 429 and 1 <= int(error.headers["Retry-After"]) <= 61
    limiter.hit("login-ip", "10.0.0.2", "3/minute")  # another key has its own budget
    limiter.reset()
    limiter.hit("login-ip", "10.0.0.1", "3/minute")


def test_redis_limits_are_shared_between_processes(redis_server):
    first, second = RateLimiter(redis_server.url), RateLimiter(redis_server.url)
    first.hit("login-ip", "10.1.1.1", "3/minute")
    first.hit("login-ip", "10.1.1.1", "3/minute")
    second.hit("login-ip", "10.1.1.1", "3/minute")
    with pytest.raises(RateLimited):
        second.hit("login-ip", "10.1.1.1", "3/minute")  # counted across both "processes"
    first.reset()


def test_an_unreachable_store_fails_open_and_logs_once(caplog):
    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.WARNING, logger="learnsail.ratelimit"):
        for _ in range(5):
            limiter.hit("login-ip", "10.2.2.2", "1/minute")  # never raises
    warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(warnings) == 1
