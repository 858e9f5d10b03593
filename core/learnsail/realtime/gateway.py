"""The WebSocket gateway: authenticated clients subscribe to channels and
receive the events published on them (see docs/realtime.md for the protocol).

One :class:`Gateway` runs on one asyncio loop: ``learnsail realtime`` runs it
as the process's main loop (:func:`run`); ``learnsail serve`` runs one in a
background thread beside the web app (:func:`start_in_thread`) so that the
in-memory bus reaches it.

Everything that touches the database (verifying a token's sign-in state,
asking plugins whether a user may join a channel) runs in a worker thread
(:func:`asyncio.to_thread`), so the loop never blocks on it.  Each client has
a bounded queue of outgoing frames and its own sender task: a client that
does not keep up fills only its own queue and is then disconnected with
close code 4008 ("too slow"); the others never wait for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from websockets.asyncio.server import broadcast
from websockets.exceptions import ConnectionClosed

from learnsail.realtime import CHANNEL_RE
from learnsail.realtime.bus import Bus, MemoryBus, RedisBus, safe_url, make_bus

log = logging.getLogger("learnsail.realtime")

#: the path clients connect to
WS_PATH = "/ws"

# close codes (4000-4999 are the application's own; see docs/realtime.md)
CLOSE_UNAUTHORIZED = 4001    # no token, a bad one, or one revoked (sign-out, disabled account)
CLOSE_TOKEN_EXPIRED = 4002   # refresh the access token and connect again
CLOSE_TOO_SLOW = 4008        # the client fell learnsail.realtime_queue_size events behind
CLOSE_GOING_AWAY = 1001      # the gateway is shutting down

#: bytes waiting in a connection's write buffer below which an event is
#: written at once; above, events wait in the client's queue
DIRECT_WRITE_LIMIT = 32 * 1024

#: the error codes of ``{"type": "error"}`` frames
ERROR_CODES = ("BAD_FRAME", "INVALID_CHANNEL", "CHANNEL_FORBIDDEN", "TOO_MANY_CHANNELS", "UNKNOWN_TYPE")


@dataclass(frozen=True)
class Auth:
    """Who a connection proved to be."""

    user_id: int
    role: str
    jti: str
    expires: float        # exp claim (epoch seconds)
    issued: float         # ts/iat claim (epoch seconds, with microseconds)


class Rejected(Exception):
    """Authentication failed: close with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(eq=False)
class Client:
    ws: Any
    auth: Auth
    queue: asyncio.Queue
    channels: set[str] = field(default_factory=set)
    sender: asyncio.Task | None = None
    expiry: asyncio.TimerHandle | None = None
    closing: bool = False
    idle: bool = True   # nothing queued or being sent: an event may be written at once


def gateway_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway's limits from the app settings."""
    return {
        "queue_size": max(1, int(settings.get("learnsail.realtime_queue_size", 1000))),
        "max_channels": max(1, int(settings.get("learnsail.realtime_max_channels", 100))),
        "max_frame": max(256, int(settings.get("learnsail.realtime_max_frame", 65536))),
        "auth_timeout": float(settings.get("learnsail.realtime_auth_timeout", 10)),
        "ping_interval": float(settings.get("learnsail.realtime_ping_interval", 20)),
        "recheck_seconds": float(settings.get("learnsail.realtime_recheck_seconds", 60)),
        "url_token": bool(settings.get("learnsail.realtime_url_token", True)),
    }


class Gateway:
    """A WebSocket server fanning the bus's events out to its own clients.

    ``registry`` is the app's (its settings, plugin manager, session factory,
    auth cache and bus); ``bus`` overrides the registry's."""

    def __init__(self, registry: Any, *, host: str | None = None, port: int | None = None,
                 bus: Bus | None = None, **overrides: Any) -> None:
        settings = registry.settings
        self.registry = registry
        self.settings = settings
        self.host = host if host is not None else settings.get("learnsail.realtime_host", "127.0.0.1")
        self.port = int(port if port is not None else settings.get("learnsail.realtime_port", 6544))
        self.bus = bus if bus is not None else registry["learnsail.realtime.bus"]
        self.options = {**gateway_options(settings), **overrides}
        self.clients: set[Client] = set()
        self.subscribers: dict[str, set[Client]] = {}
        self.server: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listener_task: asyncio.Task | None = None   # the Redis listener (kept referenced)
        self.recheck_task: asyncio.Task | None = None
        self._memory_listener: Any = None
        self._background: set[asyncio.Task] = set()
        self.stats = {"connections": 0, "events": 0, "delivered": 0, "too_slow": 0, "rejected": 0}
        self.bus_up = True  # the Redis subscription is live (always true in-process)

    # --- life cycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if self.host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"ws://{host}:{self.port}{WS_PATH}"

    async def start(self) -> None:
        """Listen for WebSocket connections and for the bus's events."""
        from websockets.asyncio.server import serve

        self.loop = asyncio.get_running_loop()
        if isinstance(self.bus, RedisBus):
            try:
                await asyncio.to_thread(self.bus.health)
            except Exception as exc:
                raise RuntimeError(f"the realtime bus at {safe_url(self.bus.url)} does not answer: {exc}") from None
            ready = asyncio.Event()
            self.listener_task = asyncio.create_task(self.bus.listen(self._fanout, ready, on_state=self._bus_state),
                                                     name="learnsail-realtime-bus")
            try:
                await asyncio.wait_for(ready.wait(), 10)
            except asyncio.TimeoutError:
                self.listener_task.cancel()
                raise RuntimeError(f"the realtime bus at {safe_url(self.bus.url)} did not answer") from None
        elif isinstance(self.bus, MemoryBus):
            loop = self.loop

            def listener(channel: str, message: str) -> None:
                try:
                    loop.call_soon_threadsafe(self._fanout, channel, message)
                except RuntimeError:  # the loop is closed: the gateway stopped
                    pass

            self._memory_listener = listener
            self.bus.add_listener(listener)
        ping = self.options["ping_interval"] or None
        self.server = await serve(
            self._handle, self.host, self.port,
            process_request=self._process_request,
            max_size=self.options["max_frame"],
            ping_interval=ping, ping_timeout=ping,
            close_timeout=5,
            compression=None,  # a fan-out would compress each event once per client
            server_header=None,
            logger=_websockets_logger(),
        )
        if self.port == 0:
            self.port = next(iter(self.server.sockets)).getsockname()[1]
        if self.options["recheck_seconds"] > 0:
            self.recheck_task = asyncio.create_task(self._recheck_forever(), name="learnsail-realtime-recheck")
        log.info("realtime gateway listening on %s", self.url)

    def _bus_state(self, up: bool) -> None:
        self.bus_up = up

    async def stop(self) -> None:
        """Close every connection (1001) and stop listening."""
        if self._memory_listener is not None:
            self.bus.remove_listener(self._memory_listener)
            self._memory_listener = None
        for task in (self.listener_task, self.recheck_task):
            if task is not None:
                task.cancel()
        for task in (self.listener_task, self.recheck_task):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self.server is not None:
            self.server.close(close_connections=True)
            try:
                await asyncio.wait_for(self.server.wait_closed(), 10)
            except asyncio.TimeoutError:
                for client in list(self.clients):
                    self._abort(client)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    # --- HTTP side ----------------------------------------------------------------

    def _process_request(self, connection: Any, request: Any) -> Any:
        path = urlsplit(request.path).path
        if path == "/healthz":
            # no I/O here: this runs in the loop that fans events out
            if self.bus_up:
                status, body = 200, {"status": "ok", "clients": len(self.clients)}
            else:  # events would be missed: the load balancer should look elsewhere
                status, body = 503, {"status": "error", "bus": "not subscribed (reconnecting)"}
            response = connection.respond(status, json.dumps(body) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if path != WS_PATH:
            return connection.respond(404, "Not found: connect to /ws\n")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return connection.respond(426, "Upgrade Required: this is a WebSocket endpoint\n")
        return None

    # --- connections --------------------------------------------------------------

    async def _handle(self, ws: Any) -> None:
        try:
            auth = await self._authenticate_connection(ws)
        except Rejected as exc:
            self.stats["rejected"] += 1
            await ws.close(exc.code, exc.reason)
            return
        except ConnectionClosed:  # left before authenticating
            return
        except Exception:  # the database is unreachable, or a bug
            log.exception("realtime authentication failed")
            await ws.close(1011, "internal error")
            return
        client = Client(ws=ws, auth=auth, queue=asyncio.Queue(self.options["queue_size"]))
        self.clients.add(client)
        self.stats["connections"] += 1
        client.sender = asyncio.create_task(self._send_forever(client))
        self._schedule_expiry(client)
        self._send(client, {"type": "ready", "user_id": auth.user_id, "role": auth.role,
                            "expires_at": _iso(auth.expires)})
        try:
            async for raw in ws:
                if client.closing:
                    break
                await self._on_frame(client, raw)
        except ConnectionClosed:
            pass
        finally:
            self._forget(client)
            if client.sender is not None:
                client.sender.cancel()

    async def _authenticate_connection(self, ws: Any) -> Auth:
        token = None
        if self.options["url_token"]:
            values = parse_qs(urlsplit(ws.request.path).query).get("token")
            token = values[0] if values else None
        if not token:
            try:
                raw = await asyncio.wait_for(ws.recv(), self.options["auth_timeout"])
            except asyncio.TimeoutError:
                raise Rejected(CLOSE_UNAUTHORIZED, "authentication timeout") from None
            frame = _parse(raw)
            if not isinstance(frame, dict) or frame.get("type") != "auth" \
                    or not isinstance(frame.get("token"), str):
                raise Rejected(CLOSE_UNAUTHORIZED, "authenticate first: {\"type\": \"auth\", \"token\": ...}")
            token = frame["token"]
        return await asyncio.to_thread(self.verify_token, token)

    def verify_token(self, token: str) -> Auth:
        """The identity an access token proves (in a worker thread: it may
        read the database); :class:`Rejected` when it proves nothing."""
        from learnsail.identity import tokens

        if len(token) > 8192:
            raise Rejected(CLOSE_UNAUTHORIZED, "invalid token")
        cache = self.registry["learnsail.auth_cache"]
        try:
            claims = cache.claims(self.settings, token)
            user_id = int(claims["sub"])
            role = str(claims.get("role") or "")
            auth = Auth(user_id=user_id, role=role, jti=str(claims["jti"]), expires=float(claims["exp"]),
                        issued=float(claims.get("ts", claims.get("iat", 0))))
        except tokens.TokenError as exc:
            if "expired" in str(exc).lower():
                raise Rejected(CLOSE_TOKEN_EXPIRED, "token expired") from None
            raise Rejected(CLOSE_UNAUTHORIZED, "invalid token") from None
        except (KeyError, TypeError, ValueError):
            raise Rejected(CLOSE_UNAUTHORIZED, "invalid token") from None
        with self._session() as session:
            if self._revoked(session, [auth]):
                raise Rejected(CLOSE_UNAUTHORIZED, "token revoked")
        return auth

    def _session(self) -> Any:
        """A short-lived session (read-only by convention: it is rolled back)."""
        import contextlib

        factory = self.registry["learnsail.dbsession_factory"]

        @contextlib.contextmanager
        def scope() -> Any:
            session = factory()
            session.info.setdefault("learnsail.registry", self.registry)
            try:
                yield session
            finally:
                session.rollback()
                session.close()

        return scope()

    @staticmethod
    def _revoked(session: Any, auths: Iterable[Auth]) -> set[Auth]:
        """The identities among ``auths`` that no longer hold: the user is
        disabled, deleted or signed out everywhere, lost the role, or the
        token was revoked.  Three queries whatever the number."""
        from learnsail.identity.models import RevokedToken, Role, User, UserRole

        auths = list(auths)
        if not auths:
            return set()
        user_ids = sorted({a.user_id for a in auths})
        states: dict[int, tuple[bool, Any, set[str]]] = {}
        revoked: set[str] = set()
        for chunk in _chunks(user_ids, 500):
            for row in session.execute(sa.select(User.id, User.is_active, User.deleted_at, User.tokens_valid_after,
                                                 Role.name).join(Role, Role.id == User.role_id)
                                       .where(User.id.in_(chunk))):
                states[row.id] = (bool(row.is_active) and row.deleted_at is None, row.tokens_valid_after,
                                  {row.name})
            for user_id, name in session.execute(sa.select(UserRole.user_id, Role.name)
                                                 .join(Role, Role.id == UserRole.role_id)
                                                 .where(UserRole.user_id.in_(chunk))):
                if user_id in states:
                    states[user_id][2].add(name)
        for chunk in _chunks(sorted({a.jti for a in auths}), 500):
            revoked.update(session.scalars(sa.select(RevokedToken.jti).where(RevokedToken.jti.in_(chunk))))
        bad = set()
        for auth in auths:
            state = states.get(auth.user_id)
            if state is None or not state[0] or auth.role not in state[2] or auth.jti in revoked:
                bad.add(auth)
            elif state[1] is not None and auth.issued <= _aware(state[1]).timestamp():
                bad.add(auth)
        return bad

    def _schedule_expiry(self, client: Client) -> None:
        if client.expiry is not None:
            client.expiry.cancel()
        delay = max(0.0, client.auth.expires - time.time())
        client.expiry = asyncio.get_running_loop().call_later(
            delay, self.disconnect, client, CLOSE_TOKEN_EXPIRED, "token expired")

    # --- frames -------------------------------------------------------------------

    async def _on_frame(self, client: Client, raw: Any) -> None:
        frame = _parse(raw)
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            self._error(client, "BAD_FRAME", "Send JSON objects with a \"type\".")
            return
        kind = frame["type"]
        if kind == "ping":
            self._send(client, {"type": "pong", **({"id": frame["id"]} if _simple(frame.get("id")) else {})})
        elif kind == "subscribe":
            await self._subscribe(client, frame)
        elif kind == "unsubscribe":
            self._unsubscribe(client, frame)
        elif kind == "auth":
            await self._reauthenticate(client, frame)
        else:
            self._error(client, "UNKNOWN_TYPE", "Unknown frame type (expected subscribe, unsubscribe, ping, "
                                                "auth).")

    def _channels_of(self, client: Client, frame: Mapping[str, Any]) -> list[str] | None:
        channels = frame.get("channels")
        if isinstance(channels, str):
            channels = [channels]
        if not isinstance(channels, list) or not channels or len(channels) > self.options["max_channels"] \
                or not all(isinstance(c, str) for c in channels):
            self._error(client, "BAD_FRAME", f"\"channels\" must be a list of 1 to "
                                             f"{self.options['max_channels']} strings.")
            return None
        return list(dict.fromkeys(channels))

    async def _subscribe(self, client: Client, frame: Mapping[str, Any]) -> None:
        channels = self._channels_of(client, frame)
        if channels is None:
            return
        wanted = []
        for channel in channels:
            if not CHANNEL_RE.fullmatch(channel):
                self._error(client, "INVALID_CHANNEL", "Channel names look like 'prefix:id'.", channel)
            elif channel not in client.channels:
                wanted.append(channel)
        room = self.options["max_channels"] - len(client.channels)
        for channel in wanted[max(room, 0):]:
            self._error(client, "TOO_MANY_CHANNELS",
                        f"At most {self.options['max_channels']} channels per connection.", channel)
        wanted = wanted[:max(room, 0)]
        if time.time() >= client.auth.expires:
            self.disconnect(client, CLOSE_TOKEN_EXPIRED, "token expired")
            return
        decisions = await asyncio.to_thread(self.authorize, client.auth, wanted)
        if decisions is None:
            self.disconnect(client, CLOSE_UNAUTHORIZED, "token revoked")
            return
        if client.closing:
            return
        granted = []
        for channel in wanted:
            if decisions.get(channel):
                granted.append(channel)
                client.channels.add(channel)
                self.subscribers.setdefault(channel, set()).add(client)
            else:
                self._error(client, "CHANNEL_FORBIDDEN", "You may not subscribe to this channel.", channel)
        already = [c for c in channels if c in client.channels and c not in granted]
        if granted or already:
            self._send(client, {"type": "subscribed", "channels": granted + already})

    def _unsubscribe(self, client: Client, frame: Mapping[str, Any]) -> None:
        channels = self._channels_of(client, frame)
        if channels is None:
            return
        for channel in channels:
            self._drop_subscription(client, channel)
        self._send(client, {"type": "unsubscribed", "channels": channels})

    async def _reauthenticate(self, client: Client, frame: Mapping[str, Any]) -> None:
        """A fresh access token on an open connection (before the old one
        expires) keeps it open; it must be the same user's."""
        token = frame.get("token")
        if not isinstance(token, str):
            self._error(client, "BAD_FRAME", "\"token\" must be a string.")
            return
        try:
            auth = await asyncio.to_thread(self.verify_token, token)
        except Rejected as exc:
            self.disconnect(client, exc.code, exc.reason)
            return
        if auth.user_id != client.auth.user_id:
            self.disconnect(client, CLOSE_UNAUTHORIZED, "token of another user")
            return
        previous, client.auth = client.auth, auth
        self._schedule_expiry(client)
        if auth.role != previous.role and client.channels:
            # another identity of the same user: the channels are asked again
            channels = sorted(client.channels)
            decisions = await asyncio.to_thread(self.authorize, auth, channels)
            if decisions is None:
                self.disconnect(client, CLOSE_UNAUTHORIZED, "token revoked")
                return
            for channel in channels:
                if not decisions.get(channel):
                    self._drop_subscription(client, channel)
                    self._error(client, "CHANNEL_FORBIDDEN", "You may not subscribe to this channel.", channel)
        self._send(client, {"type": "ready", "user_id": auth.user_id, "role": auth.role,
                            "expires_at": _iso(auth.expires)})

    def authorize(self, auth: Auth, channels: list[str]) -> dict[str, bool] | None:
        """May ``auth`` join each of ``channels``?  None when its token no
        longer holds.  ``user:<id>`` is decided here (only that user); other
        channels ask the ``learnsail_channel_authorize`` hook (True joins,
        anything else is a refusal).  Runs in a worker thread."""
        with self._session() as session:
            if self._revoked(session, [auth]):
                return None
            decisions: dict[str, bool] = {}
            user = None
            hook = self.registry["learnsail.pm"].hook.learnsail_channel_authorize
            for channel in channels:
                prefix, _, rest = channel.partition(":")
                if prefix == "user":
                    decisions[channel] = rest == str(auth.user_id)
                    continue
                if user is None:
                    from learnsail.identity.models import User

                    user = session.get(User, auth.user_id)
                    if user is None:
                        return None
                    user.active_role = auth.role
                try:
                    decisions[channel] = hook(user=user, channel=channel, session=session) is True
                except Exception:
                    log.exception("learnsail_channel_authorize failed for %s", channel)
                    decisions[channel] = False
            return decisions

    async def _recheck_forever(self) -> None:
        """Every ``learnsail.realtime_recheck_seconds``, drop connections
        whose token was revoked since (expiry has its own timer)."""
        while True:
            await asyncio.sleep(self.options["recheck_seconds"])
            clients = [c for c in self.clients if not c.closing]
            if not clients:
                continue
            try:
                bad = await asyncio.to_thread(self._revoked_in_thread, [c.auth for c in clients])
            except Exception:
                log.exception("realtime token re-check failed")
                continue
            for client in clients:
                if client.auth in bad:
                    self.disconnect(client, CLOSE_UNAUTHORIZED, "token revoked")

    def _revoked_in_thread(self, auths: list[Auth]) -> set[Auth]:
        with self._session() as session:
            return self._revoked(session, auths)

    # --- fan-out ------------------------------------------------------------------

    def _fanout(self, channel: str, message: str) -> None:
        """Queue one bus message for the local subscribers of ``channel``
        (runs in the loop; never waits for a client)."""
        self.stats["events"] += 1
        subscribers = self.subscribers.get(channel)
        if not subscribers:
            return
        for client in list(subscribers):
            self._enqueue(client, message)

    def _enqueue(self, client: Client, payload: str) -> None:
        if client.closing:
            return
        if client.idle:
            transport = client.ws.transport
            if transport is not None and transport.get_write_buffer_size() <= DIRECT_WRITE_LIMIT:
                # the usual case: written to the socket now, no task switch per client
                broadcast((client.ws,), payload)
                self.stats["delivered"] += 1
                return
        client.idle = False  # from now on in order, through the queue
        try:
            client.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.stats["too_slow"] += 1
            log.info("realtime client of user %s is too slow; disconnecting", client.auth.user_id)
            self.disconnect(client, CLOSE_TOO_SLOW, "too slow")

    def _send(self, client: Client, frame: Mapping[str, Any]) -> None:
        self._enqueue(client, json.dumps(frame, ensure_ascii=False))

    def _error(self, client: Client, code: str, message: str, channel: str | None = None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if channel is not None:
            frame["channel"] = channel[:200]
        self._send(client, frame)

    async def _send_forever(self, client: Client) -> None:
        ws = client.ws
        try:
            while True:
                payload = await client.queue.get()
                await ws.send(payload)  # waits while the socket's buffer is full
                self.stats["delivered"] += 1
                if client.queue.empty():
                    client.idle = True
        except ConnectionClosed:
            pass

    # --- leaving ------------------------------------------------------------------

    def disconnect(self, client: Client, code: int, reason: str) -> None:
        """Close ``client`` with ``code`` and ``reason`` without waiting (a
        client that does not read is cut off after a few seconds)."""
        if client.closing:
            return
        client.closing = True
        self._forget(client)
        if client.sender is not None:
            client.sender.cancel()
        task = asyncio.get_running_loop().create_task(self._close(client, code, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close(self, client: Client, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(client.ws.close(code, reason), 5)
        except (asyncio.TimeoutError, Exception):
            self._abort(client)

    @staticmethod
    def _abort(client: Client) -> None:
        transport = getattr(client.ws, "transport", None)
        if transport is not None:
            transport.abort()

    def _forget(self, client: Client) -> None:
        self.clients.discard(client)
        if client.expiry is not None:
            client.expiry.cancel()
            client.expiry = None
        for channel in list(client.channels):
            self._drop_subscription(client, channel)

    def _drop_subscription(self, client: Client, channel: str) -> None:
        client.channels.discard(channel)
        subscribers = self.subscribers.get(channel)
        if subscribers is not None:
            subscribers.discard(client)
            if not subscribers:
                del self.subscribers[channel]


def _websockets_logger() -> logging.Logger:
    """The websockets library's logger: its per-connection lines only when
    the learnsail loggers are at DEBUG."""
    logger = logging.getLogger("learnsail.realtime.websockets")
    if logger.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    return logger


def _parse(raw: Any) -> Any:
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _simple(value: Any) -> bool:
    return (isinstance(value, (int, str)) and not isinstance(value, bool)) and len(str(value)) <= 64


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- running it ---------------------------------------------------------------------

def run(registry: Any, *, host: str | None = None, port: int | None = None,
        announce: Any = None) -> None:
    """Run a gateway as this process's main loop until SIGINT/SIGTERM."""
    import signal

    raise_fd_limit()

    async def main() -> None:
        gateway = Gateway(registry, host=host, port=port)
        await gateway.start()
        if announce is not None:
            announce(gateway)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread / not POSIX
                pass
        try:
            await stop.wait()
        finally:
            await gateway.stop()

    asyncio.run(main())


def raise_fd_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (each
    client holds one socket); returns the limit now in force."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class EmbeddedGateway:
    """A gateway on its own event loop in a daemon thread (``learnsail
    serve``, tests).  :meth:`start` returns once it listens (or raises what
    kept it from listening, e.g. a port in use)."""

    def __init__(self, registry: Any, *, host: str | None = None, port: int | None = None,
                 bus: Bus | None = None, **overrides: Any) -> None:
        self.gateway = Gateway(registry, host=host, port=port, bus=bus, **overrides)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def port(self) -> int:
        return self.gateway.port

    def start(self, timeout: float = 15.0) -> "EmbeddedGateway":
        started = threading.Event()
        failure: list[BaseException] = []

        def target() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._stopped = asyncio.Event()
                try:
                    await self.gateway.start()
                except BaseException as exc:
                    failure.append(exc)
                    started.set()
                    return
                started.set()
                try:
                    await self._stopped.wait()
                finally:
                    await self.gateway.stop()

            try:
                loop.run_until_complete(main())
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self.thread = threading.Thread(target=target, name="learnsail-realtime", daemon=True)
        self.thread.start()
        if not started.wait(timeout):
            raise RuntimeError("the realtime gateway did not start")
        if failure:
            self.thread.join(5)
            raise failure[0]
        return self

    def call(self, func: Any, *args: Any, timeout: float = 10.0) -> Any:
        """Run ``func(*args)`` (a coroutine function or a plain one) in the
        gateway's loop and return its result (for tests and tools)."""
        async def wrapper() -> Any:
            result = func(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self.loop is None or self.thread is None or not self.thread.is_alive():
            return
        assert self._stopped is not None
        self.loop.call_soon_threadsafe(self._stopped.set)
        self.thread.join(timeout)


def start_in_thread(registry: Any, *, host: str | None = None, port: int | None = None,
                    **overrides: Any) -> EmbeddedGateway:
    """Start a gateway in a background thread; returns once it listens."""
    return EmbeddedGateway(registry, host=host, port=port, **overrides).start()


def build_registry(raw: Mapping[str, Any] | None = None) -> Any:
    """The app's registry (settings, plugins and their hooks, the session
    factory, the bus) for a standalone gateway process."""
    from learnsail.app import configure

    config = configure(raw)
    config.commit()
    return config.registry


__all__ = ["Gateway", "EmbeddedGateway", "start_in_thread", "run", "build_registry", "Auth", "Rejected",
           "CLOSE_UNAUTHORIZED", "CLOSE_TOKEN_EXPIRED", "CLOSE_TOO_SLOW", "WS_PATH", "make_bus"]
