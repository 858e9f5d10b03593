"""The event bus between the code that publishes realtime events and the
WebSocket gateways that deliver them.

Two implementations, chosen by ``learnsail.realtime_bus_url``:

* :class:`MemoryBus` (empty URL, the embedded default): publishing calls the
  listeners of this process directly, so the gateway must run in the same
  process as the web app (``learnsail serve`` starts one in a thread).
* :class:`RedisBus` (``redis://...``): events go through Redis pub/sub; every
  gateway process listens with one pattern subscription and fans each event
  out to its own clients, so any number of gateways behind a load balancer
  all deliver every event.

A message on the bus is the JSON envelope ``{"channel", "event", "data",
"id", "ts"}`` as text; the gateway forwards it to clients unchanged (with
``"type": "event"`` added).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from typing import Any, Callable

log = logging.getLogger("learnsail.realtime")

#: a listener gets ``(channel, message)``; ``message`` is the envelope as JSON text
Listener = Callable[[str, str], None]


def envelope(channel: str, event: str, data_json: str, *, ts: float | None = None,
             event_id: str | None = None) -> str:
    """The JSON text sent for one event.  ``data_json`` is already JSON (so
    the payload is serialised once, when the caller publishes)."""
    head = json.dumps({
        "type": "event",
        "channel": channel,
        "event": event,
        "id": event_id or uuid.uuid4().hex,
        "ts": round(time.time() if ts is None else ts, 6),
    }, ensure_ascii=False)
    return head[:-1] + ', "data": ' + data_json + "}"


class Bus:
    """What publishers and gateways need from a bus."""

    url = ""

    def publish(self, channel: str, message: str) -> None:
        """Send ``message`` (the envelope as JSON text) to every gateway
        listening for ``channel``.  Thread-safe; may block on the network."""
        raise NotImplementedError

    def health(self) -> None:
        """Raise when the bus cannot be used (the ``realtime_bus`` health check)."""

    def close(self) -> None:
        """Release connections."""


class MemoryBus(Bus):
    """In-process fan-out to the listeners added by local gateways."""

    url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item is not listener)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return self._listeners

    def publish(self, channel: str, message: str) -> None:
        for listener in self._listeners:
            try:
                listener(channel, message)
            except Exception:  # one broken gateway must not stop the others
                log.exception("realtime listener failed")


class RedisBus(Bus):
    """Redis pub/sub: the Redis channel of ``channel`` is ``prefix + channel``."""

    def __init__(self, url: str, prefix: str = "learnsail:rt:") -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                            health_check_interval=30)

    def publish(self, channel: str, message: str) -> None:
        self._client.publish(self.prefix + channel, message)

    def health(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()

    async def listen(self, deliver: Listener, ready: asyncio.Event | None = None,
                     retry_delay: float = 1.0, on_state: Callable[[bool], None] | None = None) -> None:
        """Receive every event published under the prefix and hand it to
        ``deliver`` (in the running loop) until cancelled.  One pattern
        subscription per call; reconnects after a lost connection (events
        published meanwhile are lost).  ``on_state(True/False)`` is told when
        the subscription is up or down."""
        import redis.asyncio as aioredis
        import redis.exceptions

        pattern = _escape_glob(self.prefix) + "*"
        cut = len(self.prefix)
        while True:
            client = aioredis.Redis.from_url(self.url, socket_connect_timeout=5,
                                             health_check_interval=30)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                # the subscription is confirmed once its reply is read
                while True:
                    reply = await pubsub.parse_response(block=True, timeout=5)
                    if reply and _text(reply[0]) == "psubscribe":
                        break
                if ready is not None:
                    ready.set()
                if on_state is not None:
                    on_state(True)
                log.info("realtime gateway listening on %s (%s)", safe_url(self.url), pattern)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    channel = _text(message["channel"])[cut:]
                    deliver(channel, _text(message["data"]))
            except asyncio.CancelledError:
                raise
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                log.warning("realtime bus connection lost (%s); reconnecting", exc)
                if on_state is not None:
                    on_state(False)
                await asyncio.sleep(retry_delay)
            except Exception:  # anything else: keep listening rather than go deaf
                log.exception("realtime bus listener failed; reconnecting")
                if on_state is not None:
                    on_state(False)
                await asyncio.sleep(retry_delay)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:  # already broken
                    pass


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _escape_glob(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def safe_url(url: str) -> str:
    """``url`` without a password (for logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        parts = parts._replace(netloc=f"{user}:***@{netloc}" if user else f":***@{netloc}")
    return urlunsplit(parts)


def make_bus(url: str, prefix: str = "learnsail:rt:") -> Bus:
    url = (url or "").strip()
    if not url or url == "memory://":
        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, prefix)
    from learnsail.settings import SettingError

    raise SettingError(f"learnsail.realtime_bus_url: unsupported scheme in {url!r} "
                       "(empty for the in-process bus, or redis://host:6379/0)")
