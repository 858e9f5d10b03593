"""The realtime service of the core (see docs/realtime.md).

Code publishes events with :func:`publish`; they leave once the current
transaction commits, travel over the event bus (:mod:`learnsail.realtime.bus`)
and reach the WebSocket clients subscribed to the channel through the
gateway (:mod:`learnsail.realtime.gateway`).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from learnsail import hookimpl
from learnsail.aftercommit import on_commit, registry_of
from learnsail.settings import Setting, as_bool, as_int

#: a channel: a lower-case prefix naming its owner, a colon, then an id
CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]*:[A-Za-z0-9_.:-]{1,100}$")
#: an event name (what happened on the channel)
EVENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
#: the largest ``data`` of one event, as JSON
MAX_DATA_BYTES = 64 * 1024

BUS_KEY = "learnsail.realtime.bus"

#: the settings this service declares (listed by core_plugin.learnsail_settings)
SETTINGS: tuple[Setting, ...] = (
    Setting("learnsail.realtime_bus_url", "",
            "Event bus between the app and the WebSocket gateways. Empty: in-process (the gateway runs "
            "inside `learnsail serve`). `redis://host:6379/0`: Redis pub/sub, for separate "
            "`learnsail realtime` processes (any number, behind a load balancer)."),
    Setting("learnsail.realtime_redis_prefix", "learnsail:rt:",
            "Prefix of the Redis pub/sub channels (pub/sub ignores the database number: give each "
            "installation sharing a Redis its own prefix)."),
    Setting("learnsail.realtime_host", "127.0.0.1",
            "Address the WebSocket gateway listens on (`learnsail realtime`, or the one embedded in "
            "`learnsail serve`)."),
    Setting("learnsail.realtime_port", 6544, "Port of the WebSocket gateway.", as_int),
    Setting("learnsail.realtime_queue_size", 1000,
            "Events waiting for one client; a client that falls this far behind is disconnected "
            "(close code 4008, \"too slow\") so it never holds up the others.", as_int),
    Setting("learnsail.realtime_max_channels", 100, "Channels one connection may subscribe to.", as_int),
    Setting("learnsail.realtime_max_frame", 65536,
            "Largest frame a client may send, in bytes (the connection is closed with 1009 beyond).",
            as_int),
    Setting("learnsail.realtime_auth_timeout", 10,
            "Seconds a new connection has to authenticate (token in the URL or an `auth` frame).",
            as_int),
    Setting("learnsail.realtime_ping_interval", 20,
            "Seconds between the gateway's WebSocket pings; a client that does not answer within the "
            "same time is dropped. 0 turns pings off.", as_int),
    Setting("learnsail.realtime_recheck_seconds", 60,
            "Seconds between the gateway's checks that the tokens of open connections still hold "
            "(signed out, disabled, revoked); a revoked one is closed with 4001. Subscribing always "
            "checks. 0 turns the periodic check off.", as_int),
    Setting("learnsail.realtime_url_token", True,
            "Accept the access token in the URL (`?token=`). Tokens in URLs can end up in proxy logs: "
            "turn this off to accept only the `auth` frame.", as_bool),
)

#: permissions and their default grants (merged by core_plugin.learnsail_permissions)
PERMISSIONS: dict[str, list[str]] = {}


class InvalidEvent(ValueError):
    """:func:`publish` was called with a bad channel, event name or payload
    (a programming error: the message says which)."""


def valid_channel(channel: Any) -> bool:
    return isinstance(channel, str) and CHANNEL_RE.fullmatch(channel) is not None


def user_channel(user_id: int) -> str:
    """The private channel of one user (only that user may subscribe)."""
    return f"user:{int(user_id)}"


def publish(target: Any, channel: str, event: str, data: Mapping[str, Any], *, tm: Any = None) -> None:
    """Send ``event`` with ``data`` to the clients subscribed to ``channel``
    once the current transaction of ``target`` (a request, a session, a task
    context, or the registry) commits; nothing is sent when it aborts.

    ``data`` must be a JSON object; it is serialised now (datetimes become
    ISO 8601 UTC strings), so later changes to it are not seen.  Raises
    :class:`InvalidEvent` at once for a bad channel, event or payload."""
    if not valid_channel(channel):
        raise InvalidEvent(f"invalid realtime channel {channel!r}: expected 'prefix:id' "
                           f"matching {CHANNEL_RE.pattern}")
    if not isinstance(event, str) or not EVENT_RE.fullmatch(event):
        raise InvalidEvent(f"invalid realtime event name {event!r}: expected {EVENT_RE.pattern}")
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"realtime event data must be a JSON object, not {type(data).__name__}")
    registry = registry_of(target)
    dumps = _dumps_of(registry)
    try:
        data_json = dumps(dict(data))
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"realtime event data is not JSON serialisable: {exc}") from None
    if len(data_json.encode("utf-8")) > MAX_DATA_BYTES:
        raise InvalidEvent(f"realtime event data is larger than {MAX_DATA_BYTES} bytes; "
                           "send an id and let the client fetch the rest")
    bus = registry[BUS_KEY]
    on_commit(target, _publish_now, bus, channel, event, data_json, tm=tm,
              what=f"realtime {event} on {channel}")


def _dumps_of(registry: Any) -> Any:
    try:
        return registry["learnsail.json_dumps"]
    except (KeyError, TypeError):
        from learnsail.app import json_dumps

        return json_dumps


def _publish_now(bus: Any, channel: str, event: str, data_json: str) -> None:
    from learnsail.realtime.bus import envelope

    bus.publish(channel, envelope(channel, event, data_json))


class _Checks:
    """The realtime service's own hook implementations."""

    @staticmethod
    @hookimpl
    def learnsail_health_checks(registry):
        bus = registry.get(BUS_KEY)
        if bus is None or not bus.url.startswith(("redis", "unix")):
            return {}
        return {"realtime_bus": bus.health}


def includeme(config: Any) -> None:
    """Wire the service into the app (called by learnsail.app.configure):
    the bus in ``registry["learnsail.realtime.bus"]`` and its health check."""
    from learnsail.realtime.bus import make_bus

    settings = config.registry.settings
    bus = make_bus(settings.get("learnsail.realtime_bus_url", ""),
                   settings.get("learnsail.realtime_redis_prefix", "learnsail:rt:"))
    config.registry[BUS_KEY] = bus
    pm = config.registry.get("learnsail.pm")
    if pm is not None and pm.get_plugin("core.realtime") is None:
        pm.register(_Checks, name="core.realtime")
