"""The cache: the same behaviour in memory and on a real Redis, read-through
with invalidation after commit, failing open, and the admin endpoints."""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator

import pytest
import transaction

from learnsail import cache as cache_mod
from learnsail.cache import Cache, MemoryBackend, RedisBackend, cached
from learnsail.testing import services
from learnsail.testing.authz import ADMIN_ONLY, check_matrix

URL = "/api/v1/admin/cache"


@pytest.fixture(params=["memory", "redis"])
def cache(request) -> Iterator[Cache]:
    if request.param == "memory":
        yield Cache(MemoryBackend(100))
        return
    server = request.getfixturevalue("redis_server")
    backend = RedisBackend(f"redis://{server.host}:{server.port}/7")
    backend.client.flushdb()
    yield Cache(backend)
    backend.client.flushdb()


class Registry(dict):
    """Just enough of a registry for :func:`cached`."""

    settings: dict = {}


def test_set_get_delete_and_json_values(cache):
    assert cache.get("missing") is None
    assert cache.get("missing", "default") == "default"
    value = {"title": "机器学习", "tags": ["ai", "ml"], "price": 9.5, "free": False}
    cache.set("courses:1", value, ttl=30)
    assert cache.get("courses:1") == value
    assert cache.get_many(["courses:1", "nope"]) == [value, None]
    assert cache.delete("courses:1", "nope") == 1
    assert cache.get("courses:1") is None


def test_values_expire(cache):
    cache.set("short", 1, ttl=0.2)
    cache.set("long", 2, ttl=30)
    assert cache.get("short") == 1
    time.sleep(0.35)
    assert cache.get("short") is None
    assert cache.get("long") == 2
    assert 0 < cache.keys("long")[0]["ttl"] <= 30


def test_delete_by_prefix_leaves_the_rest(cache):
    for i in range(5):
        cache.set(f"courses:{i}", i)
    cache.set("courses*odd[1]", "glob characters are literal")
    cache.set("users:1", "kept")
    assert cache.count("courses:") == 5
    assert cache.delete_prefix("courses:") == 5
    assert cache.get("courses:3") is None
    assert cache.get("users:1") == "kept"
    assert cache.get("courses*odd[1]") == "glob characters are literal"
    with pytest.raises(ValueError):
        cache.delete_prefix("")
    assert cache.clear() >= 2
    assert cache.get("users:1") is None


def test_add_stores_only_when_absent(cache):
    assert cache.add("lock", 1, ttl=5) is True
    assert cache.add("lock", 2, ttl=5) is False
    assert cache.get("lock") == 1


def test_get_or_set_reads_through_once(cache):
    calls = []

    def produce():
        calls.append(1)
        return [1, 2, 3]

    assert cache.get_or_set("hot", produce, ttl=30) == [1, 2, 3]
    assert cache.get_or_set("hot", produce, ttl=30) == [1, 2, 3]
    assert len(calls) == 1
    stats = cache.stats()
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["hit_rate"] == 0.5


def test_memory_cache_evicts_the_least_recently_used():
    cache = Cache(MemoryBackend(3))
    for key in "abc":
        cache.set(key, key)
    cache.get("a")  # a is now the most recent
    cache.set("d", "d")
    assert cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == ["a", "c", "d"]


def test_cached_decorator_invalidates_after_commit():
    registry = Registry({"learnsail.cache": Cache(MemoryBackend(100))})
    database = {"hot": ["a"]}

    @cached("courses:hot:{limit}", ttl=60)
    def hot_courses(target, limit=10):
        return database["hot"][:limit]

    assert hot_courses(registry, limit=5) == ["a"]
    database["hot"] = ["b"]
    assert hot_courses(registry, limit=5) == ["a"]  # served from the cache
    assert hot_courses.key_for(limit=5) == "courses:hot:5"

    # the registry has no transaction of its own: the thread's default one is used
    transaction.manager.begin()
    hot_courses.invalidate(registry, limit=5)
    assert hot_courses(registry, limit=5) == ["a"]  # not before the commit
    transaction.manager.commit()
    assert hot_courses(registry, limit=5) == ["b"]

    transaction.manager.begin()
    hot_courses.invalidate_all(registry)
    transaction.manager.abort()  # an aborted write keeps the cache
    database["hot"] = ["c"]
    assert hot_courses(registry, limit=5) == ["b"]
    transaction.manager.begin()
    hot_courses.invalidate_all(registry)
    transaction.manager.commit()
    assert hot_courses(registry, limit=5) == ["c"]


# --- outages -------------------------------------------------------------------------

def test_an_unreachable_redis_fails_open_and_logs_once(caplog):
    port = services.free_port()  # nothing listens there
    cache = Cache(RedisBackend(f"redis://127.0.0.1:{port}/0"), error_log_interval=60, retry_after=0)
    calls = []
    with caplog.at_level(logging.WARNING, logger="learnsail.cache"):
        for _ in range(3):
            assert cache.get_or_set("k", lambda: calls.append(1) or "from the database") == "from the database"
        cache.set("k", 1)
        assert cache.delete("k") == 0
        assert cache.delete_prefix("k") == 0
    assert len(calls) == 3
    assert cache.stats()["errors"] >= 3
    assert len([r for r in caplog.records if "serving without the cache" in r.getMessage()]) == 1


def test_a_redis_that_goes_away_and_comes_back(tmp_path):
    server = services.start_redis(tmp_path)
    cache = Cache(RedisBackend(f"redis://{server.host}:{server.port}/0"), retry_after=0.2)
    cache.set("k", "v")
    assert cache.get("k") == "v"
    server.stop()
    assert cache.get("k") is None  # a miss, not an exception
    assert cache.available is False
    assert cache.get("k") is None  # skipped without waiting for the socket
    restarted = services.start_redis(tmp_path / "again")
    try:
        cache.backend = RedisBackend(f"redis://{restarted.host}:{restarted.port}/0")
        time.sleep(0.25)
        cache.set("k", "back")
        assert cache.get("k") == "back"
        assert cache.available is True
    finally:
        restarted.stop()


# --- the app and the admin endpoints --------------------------------------------------------

def test_the_app_has_an_in_memory_cache_by_default(app):
    assert isinstance(app.registry["learnsail.cache"].backend, MemoryBackend)


def test_cache_endpoints_are_admin_only(testapp, actor_headers):
    check_matrix(testapp, actor_headers, "GET", URL, ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "GET", URL + "/keys", ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "DELETE", URL + "?prefix=nothing:", ADMIN_ONLY)


def test_admins_see_statistics_and_keys_and_clear_a_prefix(app, clients, dbsession):
    from learnsail.identity.models import AuditEntry
    import sqlalchemy as sa

    cache = app.registry["learnsail.cache"]
    cache.clear()
    cache.set("courses:1", 1, ttl=60)
    cache.set("courses:2", 2)
    cache.set("users:1", 3)
    cache.get("courses:1")
    admin = clients["admin"]
    stats = admin.get(URL).json
    assert stats["backend"] == "memory" and stats["available"] is True
    assert stats["keys"] == 3 and stats["hits"] >= 1
    assert admin.get(URL, params={"prefix": "courses:"}).json["keys"] == 2
    keys = admin.get(URL + "/keys", params={"prefix": "courses:"}).json["results"]
    assert sorted(k["key"] for k in keys) == ["courses:1", "courses:2"]
    assert admin.delete(URL + "?prefix=courses:").json == {"deleted": 2}
    assert cache.get("users:1") == 3
    entry = dbsession.scalar(sa.select(AuditEntry).where(AuditEntry.action == "core:cache:clear"))
    assert entry.target_id == "courses:" and entry.after == {"deleted": 2}
    assert admin.delete(URL + "?all=true").json == {"deleted": 1}


def test_clearing_needs_a_prefix_or_all(clients):
    admin = clients["admin"]
    for query in ("", "?prefix=x&all=true", "?prefix=", "?all=false"):
        response = admin.delete(URL + query, status=400)
        assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert admin.get(URL + "/keys", params={"limit": 0}, status=400).json["error"]["code"] == "VALIDATION_ERROR"


def test_the_app_uses_redis_when_configured(redis_server, tmp_path):
    from learnsail.app import make_app
    from learnsail.testing import isolated_environ

    app = make_app({"learnsail.data_dir": str(tmp_path), "learnsail.plugins": "",
                    "learnsail.cache_url": f"redis://{redis_server.host}:{redis_server.port}/8"},
                   environ=isolated_environ())
    cache = app.registry["learnsail.cache"]
    assert isinstance(cache.backend, RedisBackend)
    cache.set("shared", {"by": "process one"})
    other = cache_mod.build_cache(app.registry.settings)  # another process, the same Redis
    assert other.get("shared") == {"by": "process one"}
    assert other.stats()["server"]["used_memory"] > 0
    cache.clear()
