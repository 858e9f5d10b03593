"""The cache: Redis when ``learnsail.cache_url`` is set, in-memory otherwise.

    cache = request.cache                  # or registry["learnsail.cache"]
    cache.set("courses:hot:10", rows, ttl=300)
    cache.get("courses:hot:10")            # -> rows, or None on a miss
    cache.delete_prefix("courses:")

    @cached("courses:hot:{limit}", ttl=300)
    def hot_courses(session, limit=10):
        ...                                # runs on a miss only
    hot_courses(request.db, limit=10)
    hot_courses.invalidate(request.db, limit=10)   # after the commit

Values are stored as JSON: cache what an API returns (dicts, lists,
strings, numbers), not ORM objects.  The strategy is cache-aside (001):
read through the cache, write the database, then delete the key -- the
delete is queued after the commit, so a reader never refills the cache with
the row the writer is about to replace.

A cache outage never fails a request: every operation falls back to a miss
(so the caller reads the database), the error is logged once per
``learnsail.cache_error_log_interval`` and Redis is left alone for a few
seconds before it is tried again.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator

from learnsail.aftercommit import on_commit, registry_of
from learnsail.settings import Setting, as_int

log = logging.getLogger("learnsail.cache")

SETTINGS: tuple[Setting, ...] = (
    Setting("learnsail.cache_url", "",
            "Cache server, e.g. `redis://localhost:6379/0`. Empty: an in-memory cache in each process "
            "(embedded; several app processes then each keep their own)."),
    Setting("learnsail.cache_default_ttl", 300, "Seconds a cached value lives when the caller gives no ttl.",
            as_int),
    Setting("learnsail.cache_memory_entries", 10000,
            "In-memory cache: most values kept; the least recently used go first.", as_int),
    Setting("learnsail.cache_error_log_interval", 60,
            "Seconds between two log lines about a failing cache server (it fails open meanwhile).", as_int),
)

PERMISSIONS: dict[str, list[str]] = {
    "core:cache:view": ["admin"],
    "core:cache:manage": ["admin"],
}

_MISSING = object()


def _encode(value: Any) -> str:
    from learnsail.app import json_dumps

    return json_dumps(value)


class MemoryBackend:
    """A thread-safe LRU dict with expiry times."""

    name = "memory"

    def __init__(self, max_entries: int = 10000) -> None:
        self.max_entries = max(1, max_entries)
        self._data: OrderedDict[str, tuple[float | None, str]] = OrderedDict()
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, raw = item
        if expires is not None and expires <= now:
            del self._data[key]
            return None
        return raw

    def get_many(self, keys: list[str]) -> list[str | None]:
        now = time.monotonic()
        with self._lock:
            found = []
            for key in keys:
                raw = self._live(key, now)
                if raw is not None:
                    self._data.move_to_end(key)
                found.append(raw)
            return found

    def set(self, key: str, raw: str, ttl: float | None) -> None:
        expires = time.monotonic() + ttl if ttl else None
        with self._lock:
            self._data[key] = (expires, raw)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def add(self, key: str, raw: str, ttl: float | None) -> bool:
        with self._lock:
            if self._live(key, time.monotonic()) is not None:
                return False
        self.set(key, raw, ttl)
        return True

    def delete(self, keys: list[str]) -> int:
        with self._lock:
            return sum(self._data.pop(key, None) is not None for key in keys)

    def keys(self, prefix: str) -> Iterator[str]:
        now = time.monotonic()
        with self._lock:
            return iter([k for k in list(self._data) if k.startswith(prefix) and self._live(k, now) is not None])

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for key in doomed:
                del self._data[key]
            return len(doomed)

    def ttl(self, key: str) -> float | None:
        with self._lock:
            item = self._data.get(key)
        if item is None or item[0] is None:
            return None
        return max(0.0, item[0] - time.monotonic())

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {"entries": len(self._data), "max_entries": self.max_entries}

    def ping(self) -> None:
        return None


class RedisBackend:
    """Keys live under ``learnsail:cache:`` in the configured Redis database."""

    name = "redis"
    namespace = "learnsail:cache:"

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5,
                                           health_check_interval=30)

    def get_many(self, keys: list[str]) -> list[str | None]:
        values = self.client.mget([self.namespace + k for k in keys])
        return [v.decode() if v is not None else None for v in values]

    def set(self, key: str, raw: str, ttl: float | None) -> None:
        self.client.set(self.namespace + key, raw, px=int(ttl * 1000) if ttl else None)

    def add(self, key: str, raw: str, ttl: float | None) -> bool:
        return bool(self.client.set(self.namespace + key, raw, px=int(ttl * 1000) if ttl else None, nx=True))

    def delete(self, keys: list[str]) -> int:
        return int(self.client.unlink(*[self.namespace + k for k in keys])) if keys else 0

    def keys(self, prefix: str) -> Iterator[str]:
        strip = len(self.namespace)
        for raw in self.client.scan_iter(match=self.namespace + _glob_escape(prefix) + "*", count=500):
            yield raw.decode()[strip:]

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        for raw in self.client.scan_iter(match=self.namespace + _glob_escape(prefix) + "*", count=500):
            batch.append(raw)
            if len(batch) >= 500:
                deleted += self.client.unlink(*batch)
                batch = []
        if batch:
            deleted += self.client.unlink(*batch)
        return int(deleted)

    def ttl(self, key: str) -> float | None:
        millis = self.client.pttl(self.namespace + key)
        return millis / 1000 if millis is not None and millis >= 0 else None

    def info(self) -> dict[str, Any]:
        memory = self.client.info("memory")
        stats = self.client.info("stats")
        return {"used_memory": memory.get("used_memory"), "used_memory_human": memory.get("used_memory_human"),
                "server_keyspace_hits": stats.get("keyspace_hits"),
                "server_keyspace_misses": stats.get("keyspace_misses"),
                "evicted_keys": stats.get("evicted_keys")}

    def ping(self) -> None:
        self.client.ping()


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class Cache:
    """The app's cache: JSON values, TTLs, counters, and failing open."""

    def __init__(self, backend: Any, default_ttl: int = 300, error_log_interval: float = 60.0,
                 retry_after: float = 5.0) -> None:
        self.backend = backend
        self.default_ttl = default_ttl
        self.error_log_interval = error_log_interval
        self.retry_after = retry_after
        self.hits = self.misses = self.sets = self.deletes = self.errors = 0
        self._down_until = 0.0
        self._last_log = 0.0
        self._lock = threading.Lock()

    # -- failing open ------------------------------------------------------------
    def _call(self, what: str, fallback: Any, func: Callable[..., Any], *args: Any) -> Any:
        if self._down_until and time.monotonic() < self._down_until:
            return fallback
        try:
            return func(*args)
        except Exception as exc:  # any backend failure: the request goes on without the cache
            now = time.monotonic()
            with self._lock:
                self.errors += 1
                self._down_until = now + self.retry_after
                if now - self._last_log >= self.error_log_interval or not self._last_log:
                    self._last_log = now
                    log.warning("cache %s failed (%s: %s); serving without the cache, retrying in %.0fs",
                                what, type(exc).__name__, exc, self.retry_after)
            return fallback

    @property
    def available(self) -> bool:
        return not (self._down_until and time.monotonic() < self._down_until)

    # -- the operations --------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.get_many([key], default)[0]

    def get_many(self, keys: list[str], default: Any = None) -> list[Any]:
        raws = self._call("get", [None] * len(keys), self.backend.get_many, list(keys))
        values = []
        for raw in raws:
            if raw is None:
                self.misses += 1
                values.append(default)
            else:
                self.hits += 1
                values.append(json.loads(raw))
        return values

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` (JSON-serialisable) for ``ttl`` seconds (the
        default TTL when None; 0 keeps it until deleted or evicted)."""
        raw = _encode(value)
        self.sets += 1
        self._call("set", None, self.backend.set, key, raw, self.default_ttl if ttl is None else ttl)

    def add(self, key: str, value: Any, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent; True when stored."""
        raw = _encode(value)
        return bool(self._call("add", False, self.backend.add, key, raw,
                               self.default_ttl if ttl is None else ttl))

    def delete(self, *keys: str) -> int:
        self.deletes += len(keys)
        return int(self._call("delete", 0, self.backend.delete, list(keys)) or 0)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (which must not be empty:
        use :meth:`clear` for everything)."""
        if not prefix:
            raise ValueError("delete_prefix needs a prefix; use clear() to empty the cache")
        return int(self._call("delete_prefix", 0, self.backend.delete_prefix, prefix) or 0)

    def clear(self) -> int:
        return int(self._call("clear", 0, self.backend.delete_prefix, "") or 0)

    def get_or_set(self, key: str, producer: Callable[[], Any], ttl: float | None = None) -> Any:
        """The cached value of ``key``, or ``producer()`` stored and returned."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            value = producer()
            self.set(key, value, ttl)
        return value

    def keys(self, prefix: str = "", limit: int = 100) -> list[dict[str, Any]]:
        def collect() -> list[dict[str, Any]]:
            found = []
            for key in self.backend.keys(prefix):
                found.append({"key": key, "ttl": self.backend.ttl(key)})
                if len(found) >= limit:
                    break
            return found

        return self._call("keys", [], collect)

    def count(self, prefix: str = "", limit: int = 100000) -> int:
        def collect() -> int:
            n = 0
            for _ in self.backend.keys(prefix):
                n += 1
                if n >= limit:
                    break
            return n

        return self._call("count", 0, collect)

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {
            "backend": self.backend.name,
            "available": self.available,
            "hits": self.hits, "misses": self.misses,
            "hit_rate": round(self.hits / lookups, 4) if lookups else None,
            "sets": self.sets, "deletes": self.deletes, "errors": self.errors,
            "server": self._call("info", None, self.backend.info),
        }

    def invalidate(self, target: Any, *keys: str, prefix: str | None = None) -> None:
        """Delete ``keys`` (and every key under ``prefix``) once the
        transaction of ``target`` commits (cache-aside: write, then delete)."""
        def drop() -> None:
            if keys:
                self.delete(*keys)
            if prefix:
                self.delete_prefix(prefix)

        on_commit(target, drop, what="cache invalidation")


def cache_of(target: Any) -> Cache:
    return registry_of(target)["learnsail.cache"]


def cached(key: str, ttl: float | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Read-through caching of a function whose first argument is a request,
    a session or a registry (to find the cache) and whose other arguments
    fill the ``key`` template (``"courses:hot:{limit}"``).

    The wrapped function gains ``invalidate(target, *args, **kwargs)``
    (deletes that key after the commit) and ``invalidate_all(target)``
    (every key of the template's fixed prefix).
    """
    fixed = key.split("{", 1)[0]

    def decorate(func: Callable[..., Any]) -> Any:
        signature = inspect.signature(func)

        def key_for(args: tuple, kwargs: dict) -> str:
            bound = signature.bind(None, *args, **kwargs)
            bound.apply_defaults()
            values = dict(list(bound.arguments.items())[1:])
            return key.format(**values)

        @functools.wraps(func)
        def wrapper(target: Any, *args: Any, **kwargs: Any) -> Any:
            return cache_of(target).get_or_set(key_for(args, kwargs), lambda: func(target, *args, **kwargs), ttl)

        def invalidate(target: Any, *args: Any, **kwargs: Any) -> None:
            cache_of(target).invalidate(target, key_for(args, kwargs))

        def invalidate_all(target: Any) -> None:
            if not fixed:
                raise ValueError(f"cache key {key!r} has no fixed prefix to invalidate")
            cache_of(target).invalidate(target, prefix=fixed)

        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        wrapper.invalidate_all = invalidate_all  # type: ignore[attr-defined]
        wrapper.key_for = lambda *a, **kw: key_for(a, kw)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def build_cache(settings: Any) -> Cache:
    url = settings.get("learnsail.cache_url") or ""
    backend: Any
    if url:
        backend = RedisBackend(url)
    else:
        backend = MemoryBackend(int(settings.get("learnsail.cache_memory_entries") or 10000))
    return Cache(backend, int(settings.get("learnsail.cache_default_ttl") or 300),
                 float(settings.get("learnsail.cache_error_log_interval") or 60))


def _request_cache(request: Any) -> Cache:
    return request.registry["learnsail.cache"]


def includeme(config: Any) -> None:
    cache = build_cache(config.registry.settings)
    config.registry["learnsail.cache"] = cache
    config.add_request_method(_request_cache, "cache", reify=True)
    config.include("learnsail.cache_views")
