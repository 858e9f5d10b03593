"""Realtime: publish after commit, the WebSocket gateway (in-process bus and
Redis with two gateways), channel authorisation, tokens, slow clients and
the `learnsail realtime` / `learnsail serve` commands.

The gateways run for real on loopback ports, in a background thread of the
test process (or as subprocesses); the clients are websockets' sync clients.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import types
import uuid
from typing import Any

import pytest
import transaction
from sqlalchemy.orm import Session
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as _ws_connect

from learnsail import hookimpl, realtime
from learnsail.api import PUBLIC, Service
from learnsail.errors import Conflict
from learnsail.identity import tokens
from learnsail.plugins import Plugin, PluginInfo, discover
from learnsail.realtime.gateway import EmbeddedGateway
from learnsail.testing import isolated_environ
from learnsail.testing.services import free_port

SECRET = "realtime-test-secret-with-enough-entropy-123456"

# --- a test-only plugin: publishing endpoints and a channel rule ------------------

AUTHORIZE_CALLS: list[tuple[int, str, str, bool]] = []

_publish = Service(name="rttest.publish", path="/api/v1/rt-test/publish", description="Publish then commit")


@_publish.post(permission=PUBLIC)
def _publish_view(request):
    body = request.json_body
    for channel in body["channels"]:
        realtime.publish(request, channel, body.get("event", "test"), body.get("data", {}))
    if body.get("fail"):
        raise Conflict("Failing after publishing.")
    return {"ok": True}


@hookimpl
def learnsail_channel_authorize(user, channel, session):
    from learnsail.identity.models import User

    AUTHORIZE_CALLS.append((user.id, user.active_role, channel,
                            isinstance(session, Session) and session.get(User, user.id) is user))
    if channel == "room:open":
        return True
    if channel == "room:teachers":
        return user.active_role == "teacher"
    if channel == "room:boom":
        raise RuntimeError("a broken plugin")
    return None


@hookimpl
def learnsail_includeme(config):
    config.add_learnsail_service(_publish)


PLUGIN_MODULE = types.ModuleType("rttest_plugin")
PLUGIN_MODULE.learnsail_channel_authorize = learnsail_channel_authorize
PLUGIN_MODULE.learnsail_includeme = learnsail_includeme


def _installed() -> dict:
    installed = dict(discover())
    installed["rttest"] = Plugin(info=PluginInfo(name="rttest", version="1.0", migrations=None),
                                 module=PLUGIN_MODULE)
    return installed


def _build(settings: dict) -> Any:
    import webtest

    from learnsail.app import configure, make_wsgi_app

    config = configure(settings, environ=isolated_environ(), installed=_installed())
    return webtest.TestApp(make_wsgi_app(config), extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@pytest.fixture(scope="module")
def rt(tmp_path_factory, _database_maker):
    """The app (in-process bus), its users and one gateway in a thread."""
    from learnsail import migrations
    from learnsail.identity.services import create_user, ensure_default_roles

    settings = {
        "learnsail.data_dir": str(tmp_path_factory.mktemp("rt")),
        "learnsail.database_url": _database_maker(),
        "learnsail.plugins": "rttest",
        "learnsail.secret": SECRET,
        "learnsail.log_level": "CRITICAL",
        "learnsail.auth_cache_seconds": "0",
    }
    testapp = _build(settings)
    registry = testapp.app.registry
    migrations.upgrade(registry.settings, registry["learnsail.plugins"])
    users = {}
    with registry["learnsail.dbsession_factory"]() as session:
        ensure_default_roles(session)
        for name, role in (("alice", "student"), ("bob", "student"), ("tina", "teacher")):
            user = create_user(session, password="correct horse battery", role=role, username=f"rt_{name}",
                               email=f"rt_{name}@example.com", pm=registry["learnsail.pm"])
            session.flush()
            users[name] = types.SimpleNamespace(id=user.id, role=role)
        session.commit()
    gateway = EmbeddedGateway(registry, host="127.0.0.1", port=0).start()
    yield types.SimpleNamespace(app=testapp, registry=registry, users=users, gateway=gateway,
                                settings=settings)
    gateway.stop()
    registry["learnsail.db_engine"].dispose()


def token_for(rt, name: str, ttl: int = 600) -> str:
    user = rt.users[name]
    return tokens.issue(rt.registry.settings, user.id, "access", ttl, role=user.role)


def connect(url: str, **options: Any):
    """A sync client connection (entered: usable with or without ``with``)."""
    return _ws_connect(url, **options).__enter__()


def recv(ws, timeout: float = 5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def open_client(url: str, token: str, *, via: str = "frame", **options: Any):
    """A connected, authenticated client (the ``ready`` frame consumed)."""
    if via == "url":
        ws = connect(f"{url}?token={token}", **options)
    else:
        ws = connect(url, **options)
        ws.send(json.dumps({"type": "auth", "token": token}))
    ready = recv(ws)
    assert ready["type"] == "ready", ready
    return ws


def subscribe(ws, *channels: str) -> list[dict]:
    """Subscribe; the frames answered (errors first, then ``subscribed``)."""
    ws.send(json.dumps({"type": "subscribe", "channels": list(channels)}))
    frames = []
    while True:
        frame = recv(ws)
        frames.append(frame)
        if frame["type"] == "subscribed" or len([f for f in frames if f["type"] == "error"]) == len(channels):
            return frames


def closed_with(ws, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, f"closed without a close frame: {exc!r}"
        return exc.rcvd.code, exc.rcvd.reason
    except TimeoutError:
        pass
    raise AssertionError("the gateway did not close the connection")


def post_publish(rt, channels, *, data=None, event="test", fail=False, status=200):
    return rt.app.post_json("/api/v1/rt-test/publish",
                            {"channels": list(channels), "event": event, "data": data or {}, "fail": fail},
                            status=status)


# --- publish --------------------------------------------------------------------------

def test_publish_validates_channel_event_and_data(rt):
    bus = rt.registry[realtime.BUS_KEY]
    seen = []
    listener = lambda channel, message: seen.append(channel)
    bus.add_listener(listener)
    try:
        bad_calls = [
            ("User:1", "e", {}), ("user:", "e", {}), ("nocolon", "e", {}), ("user:1 2", "e", {}),
            ("user:" + "1" * 101, "e", {}), ("user:1\n", "e", {}), (42, "e", {}),
            ("user:1", "", {}), ("user:1", "bad event", {}), ("user:1", "e", [1, 2]),
            ("user:1", "e", {"x": object()}), ("user:1", "e", {"x": "y" * (realtime.MAX_DATA_BYTES + 1)}),
        ]
        with transaction.manager:
            for channel, event, data in bad_calls:
                with pytest.raises(realtime.InvalidEvent):
                    realtime.publish(rt.registry, channel, event, data)
        assert seen == []
        # a good one, with a datetime, goes out at commit and only then
        import datetime as dt

        txn = transaction.manager.begin()
        realtime.publish(rt.registry, "course:7", "started", {"at": dt.datetime(2024, 5, 1, 8, 0)})
        assert seen == []
        txn.commit()
        assert seen == ["course:7"]
    finally:
        bus.remove_listener(listener)


def test_a_committed_request_publishes_and_a_failed_one_does_not(rt):
    alice = rt.users["alice"]
    channel = f"user:{alice.id}"
    with open_client(rt.gateway.url, token_for(rt, "alice")) as ws:
        assert subscribe(ws, channel) == [{"type": "subscribed", "channels": [channel]}]
        post_publish(rt, [channel], event="note", data={"n": 1, "text": "héllo"})
        event = recv(ws)
        assert event["type"] == "event" and event["channel"] == channel and event["event"] == "note"
        assert event["data"] == {"n": 1, "text": "héllo"}
        assert len(event["id"]) == 32 and abs(event["ts"] - time.time()) < 10
        # the request fails after publishing: its transaction aborts, nothing is sent
        post_publish(rt, [channel], data={"n": 2}, fail=True, status=409)
        post_publish(rt, [channel], data={"n": 3})
        assert recv(ws)["data"] == {"n": 3}


def test_the_token_may_come_in_the_url(rt):
    alice = rt.users["alice"]
    with open_client(rt.gateway.url, token_for(rt, "alice"), via="url") as ws:
        subscribe(ws, f"user:{alice.id}")
        post_publish(rt, [f"user:{alice.id}"], data={"via": "url"})
        assert recv(ws)["data"] == {"via": "url"}


# --- authorisation --------------------------------------------------------------------

def test_another_users_channel_is_refused_and_delivers_nothing(rt):
    alice, bob = rt.users["alice"], rt.users["bob"]
    with open_client(rt.gateway.url, token_for(rt, "bob")) as ws:
        frames = subscribe(ws, f"user:{alice.id}", f"user:0{bob.id}")
        errors = {f["channel"]: f["code"] for f in frames if f["type"] == "error"}
        assert errors == {f"user:{alice.id}": "CHANNEL_FORBIDDEN", f"user:0{bob.id}": "CHANNEL_FORBIDDEN"}
        assert not any(f["type"] == "subscribed" for f in frames)
        assert subscribe(ws, f"user:{bob.id}")[-1] == {"type": "subscribed", "channels": [f"user:{bob.id}"]}
        post_publish(rt, [f"user:{alice.id}"], data={"secret": "for alice"})
        post_publish(rt, [f"user:{bob.id}"], data={"marker": True})
        assert recv(ws)["data"] == {"marker": True}  # alice's event never came before it


def test_the_channel_authorize_hook_decides_other_channels(rt):
    tina, bob = rt.users["tina"], rt.users["bob"]
    AUTHORIZE_CALLS.clear()
    with open_client(rt.gateway.url, token_for(rt, "bob")) as student, \
            open_client(rt.gateway.url, token_for(rt, "tina")) as teacher:
        frames = subscribe(student, "room:open", "room:teachers", "nobody:1", "room:boom")
        assert [f["channel"] for f in frames if f["type"] == "error"] == ["room:teachers", "nobody:1", "room:boom"]
        assert {f["code"] for f in frames if f["type"] == "error"} == {"CHANNEL_FORBIDDEN"}
        assert frames[-1] == {"type": "subscribed", "channels": ["room:open"]}
        assert subscribe(teacher, "room:teachers", "room:open")[-1]["channels"] == ["room:teachers", "room:open"]
        # the hook saw each user (with the active role) and a usable session; user:<id> never reaches it
        subscribe(teacher, f"user:{tina.id}")
        assert (bob.id, "student", "room:teachers", True) in AUTHORIZE_CALLS
        assert (tina.id, "teacher", "room:teachers", True) in AUTHORIZE_CALLS
        assert not any(call[2].startswith("user:") for call in AUTHORIZE_CALLS)

        post_publish(rt, ["room:teachers"], data={"for": "teachers"})
        post_publish(rt, ["room:open"], data={"for": "all"})
        assert recv(teacher)["data"] == {"for": "teachers"}
        assert recv(teacher)["data"] == {"for": "all"}
        assert recv(student)["data"] == {"for": "all"}

        # unsubscribing stops delivery
        student.send(json.dumps({"type": "unsubscribe", "channels": ["room:open"]}))
        assert recv(student) == {"type": "unsubscribed", "channels": ["room:open"]}
        post_publish(rt, ["room:open"], data={"after": "unsubscribe"})
        assert recv(teacher)["data"] == {"after": "unsubscribe"}
        student.send(json.dumps({"type": "ping", "id": 7}))
        assert recv(student) == {"type": "pong", "id": 7}  # and no event before it


# --- tokens ---------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["url", "frame"])
def test_a_bad_token_is_closed_with_a_reason(rt, how):
    url = rt.gateway.url
    forged = tokens.issue({**rt.registry.settings, "learnsail.secret": "another-secret-entirely-0123456789"},
                          rt.users["alice"].id, "access", 600, role="student")
    refresh = tokens.issue(rt.registry.settings, rt.users["alice"].id, "refresh", 600, role="student")
    expired = tokens.issue(rt.registry.settings, rt.users["alice"].id, "access", -5, role="student")
    cases = [("garbage", 4001, "invalid token"), (forged, 4001, "invalid token"),
             (refresh, 4001, "invalid token"), (expired, 4002, "token expired")]
    for token, code, reason in cases:
        if how == "url":
            ws = connect(f"{url}?token={token}")
        else:
            ws = connect(url)
            ws.send(json.dumps({"type": "auth", "token": token}))
        with ws:
            assert closed_with(ws) == (code, reason)


def test_a_connection_must_authenticate_first(rt):
    url = rt.gateway.url
    for first in (json.dumps({"type": "subscribe", "channels": ["user:1"]}), "not json", b"\x00binary"):
        with connect(url) as ws:
            ws.send(first)
            code, reason = closed_with(ws)
            assert code == 4001 and reason.startswith("authenticate first")
    quick = EmbeddedGateway(rt.registry, host="127.0.0.1", port=0, auth_timeout=0.3).start()
    try:
        with connect(quick.url) as ws:
            assert closed_with(ws) == (4001, "authentication timeout")
    finally:
        quick.stop()


def test_a_revoked_token_or_disabled_user_is_refused(rt):
    from learnsail.identity.models import User

    alice = rt.users["alice"]
    factory = rt.registry["learnsail.dbsession_factory"]
    token = token_for(rt, "alice")
    # connected, then the token is revoked (logout): the next subscribe closes it
    with open_client(rt.gateway.url, token) as ws:
        with factory() as session:
            tokens.revoke_access(session, tokens.decode(rt.registry.settings, token, "access"))
            session.commit()
        ws.send(json.dumps({"type": "subscribe", "channels": [f"user:{alice.id}"]}))
        assert closed_with(ws) == (4001, "token revoked")
    with connect(f"{rt.gateway.url}?token={token}") as ws:
        assert closed_with(ws) == (4001, "token revoked")
    # a disabled account: refused at connect
    token = token_for(rt, "alice")
    with factory() as session:
        session.get(User, alice.id).is_active = False
        session.commit()
    try:
        with connect(f"{rt.gateway.url}?token={token}") as ws:
            assert closed_with(ws) == (4001, "token revoked")
    finally:
        with factory() as session:
            session.get(User, alice.id).is_active = True
            session.commit()


def test_the_periodic_recheck_closes_revoked_connections(rt):
    from learnsail.identity.models import User

    bob = rt.users["bob"]
    factory = rt.registry["learnsail.dbsession_factory"]
    checking = EmbeddedGateway(rt.registry, host="127.0.0.1", port=0, recheck_seconds=0.2).start()
    try:
        with open_client(checking.url, token_for(rt, "bob")) as ws, \
                open_client(checking.url, token_for(rt, "alice")) as other:
            subscribe(ws, f"user:{bob.id}")
            with factory() as session:
                tokens.revoke_all(session, session.get(User, bob.id))  # "sign out everywhere"
                session.commit()
            assert closed_with(ws) == (4001, "token revoked")
            other.send(json.dumps({"type": "ping"}))
            assert recv(other) == {"type": "pong"}
    finally:
        checking.stop()


def test_an_expiring_token_closes_the_connection_unless_renewed(rt):
    with open_client(rt.gateway.url, token_for(rt, "alice", ttl=1)) as ws:
        assert closed_with(ws, timeout=4) == (4002, "token expired")
    # a fresh token sent on the open connection keeps it open
    with open_client(rt.gateway.url, token_for(rt, "alice", ttl=1)) as ws:
        ws.send(json.dumps({"type": "auth", "token": token_for(rt, "alice")}))
        assert recv(ws)["type"] == "ready"
        time.sleep(1.5)
        ws.send(json.dumps({"type": "ping"}))
        assert recv(ws) == {"type": "pong"}
        # a token of another user is refused
        ws.send(json.dumps({"type": "auth", "token": token_for(rt, "bob")}))
        assert closed_with(ws) == (4001, "token of another user")


# --- bad frames and limits ------------------------------------------------------------------

def test_bad_frames_get_error_frames_and_limits_hold(rt):
    limited = EmbeddedGateway(rt.registry, host="127.0.0.1", port=0, max_channels=2, max_frame=1024).start()
    alice = rt.users["alice"]
    try:
        with open_client(limited.url, token_for(rt, "alice")) as ws:
            for frame, code in [("not json", "BAD_FRAME"), (b"binary", "BAD_FRAME"), ("[1]", "BAD_FRAME"),
                                (json.dumps({"type": "dance"}), "UNKNOWN_TYPE"),
                                (json.dumps({"type": "subscribe"}), "BAD_FRAME"),
                                (json.dumps({"type": "subscribe", "channels": []}), "BAD_FRAME"),
                                (json.dumps({"type": "subscribe", "channels": [1]}), "BAD_FRAME"),
                                (json.dumps({"type": "subscribe", "channels": ["a:1", "a:2", "a:3"]}),
                                 "BAD_FRAME")]:
                ws.send(frame)
                reply = recv(ws)
                assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
            frames = subscribe(ws, "bad channel")
            assert frames == [{"type": "error", "code": "INVALID_CHANNEL", "channel": "bad channel",
                               "message": frames[0]["message"]}]
            assert subscribe(ws, f"user:{alice.id}", "room:open")[-1]["type"] == "subscribed"
            frames = subscribe(ws, "room:teachers")
            assert frames[0]["code"] == "TOO_MANY_CHANNELS"
            # still usable, and a frame beyond learnsail.realtime_max_frame closes with 1009
            ws.send(json.dumps({"type": "ping"}))
            assert recv(ws) == {"type": "pong"}
            ws.send(json.dumps({"type": "ping", "pad": "x" * 2000}))
            assert closed_with(ws)[0] == 1009
    finally:
        limited.stop()


def test_http_side_of_the_gateway(rt):
    import urllib.error
    import urllib.request

    base = rt.gateway.url.replace("ws://", "http://").removesuffix("/ws")
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "/elsewhere", timeout=5)
    assert info.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "/ws", timeout=5)
    assert info.value.code == 426


# --- slow clients ------------------------------------------------------------------------------

def _small_buffer_socket(url: str) -> socket.socket:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect((parts.hostname, parts.port))
    return sock


def test_a_slow_client_is_disconnected_while_a_fast_one_keeps_receiving(rt):
    alice = rt.users["alice"]
    channel = f"user:{alice.id}"
    gateway = EmbeddedGateway(rt.registry, host="127.0.0.1", port=0, queue_size=20).start()
    token = token_for(rt, "alice")
    received: list[int] = []
    try:
        slow = open_client(gateway.url, token, sock=_small_buffer_socket(gateway.url), max_queue=1)
        fast = open_client(gateway.url, token)
        subscribe(slow, channel)
        subscribe(fast, channel)

        def read_fast() -> None:
            try:
                while True:
                    received.append(recv(fast, timeout=30)["data"]["n"])
            except (ConnectionClosed, TimeoutError):
                pass

        reader = threading.Thread(target=read_fast, daemon=True)
        reader.start()
        blob = "x" * 30_000
        sent = 0
        while gateway.gateway.stats["too_slow"] == 0 and sent < 3000:
            with transaction.manager:
                for _ in range(10):  # a burst well within the queue of a client that keeps up
                    realtime.publish(rt.registry, channel, "bulk", {"n": sent, "blob": blob})
                    sent += 1
            deadline = time.monotonic() + 10
            while len(received) < sent and time.monotonic() < deadline:
                time.sleep(0.002)
            assert len(received) == sent, f"the fast client fell behind: {len(received)} of {sent}"
        assert gateway.gateway.stats["too_slow"] == 1, f"the slow client was never dropped after {sent} events"
        # the slow client still finds the reason once it reads what was on its way
        with slow:
            assert closed_with(slow, timeout=15) == (4008, "too slow")
        # the fast one keeps receiving
        with transaction.manager:
            realtime.publish(rt.registry, channel, "bulk", {"n": sent})
        sent += 1
        deadline = time.monotonic() + 5
        while len(received) < sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert received == list(range(sent))
        fast.close()
    finally:
        gateway.stop()


# --- Redis: two gateways, each delivering every event to its own clients ------------------------

@pytest.fixture(scope="module")
def redis_rt(rt, redis_server):
    """A second app on the same database whose bus is Redis, and two gateways."""
    settings = {**rt.settings, "learnsail.realtime_bus_url": redis_server.url,
                "learnsail.realtime_redis_prefix": f"rttest-{uuid.uuid4().hex[:8]}:"}
    testapp = _build(settings)
    registry = testapp.app.registry
    gateways = [EmbeddedGateway(registry, host="127.0.0.1", port=0).start() for _ in range(2)]
    yield types.SimpleNamespace(app=testapp, registry=registry, users=rt.users, gateways=gateways,
                                settings=settings, redis=redis_server)
    for gateway in gateways:
        gateway.stop()
    registry["learnsail.db_engine"].dispose()


def test_two_gateways_on_redis_each_deliver_every_event_to_their_own_clients(redis_rt):
    alice, bob = redis_rt.users["alice"], redis_rt.users["bob"]
    one, two = redis_rt.gateways
    clients = [open_client(one.url, token_for(redis_rt, "alice")), open_client(two.url, token_for(redis_rt, "alice")),
               open_client(one.url, token_for(redis_rt, "bob")), open_client(two.url, token_for(redis_rt, "bob"))]
    try:
        for ws, user in zip(clients, (alice, alice, bob, bob)):
            subscribe(ws, f"user:{user.id}", "room:open")
        post_publish(redis_rt, [f"user:{alice.id}"], data={"to": "alice"})
        post_publish(redis_rt, [f"user:{alice.id}"], data={"never": True}, fail=True, status=409)
        post_publish(redis_rt, ["room:open"], data={"to": "everyone"})
        first = [recv(ws) for ws in clients[:2]]
        assert [e["data"] for e in first] == [{"to": "alice"}] * 2
        assert first[0]["id"] == first[1]["id"]  # the same event, delivered by each gateway
        for ws in clients:
            assert recv(ws)["data"] == {"to": "everyone"}
        # each gateway holds one Redis listener task (not one per client)
        for gateway in (one, two):
            task = gateway.gateway.listener_task
            assert task is not None and not task.done()
    finally:
        for ws in clients:
            ws.close()


def test_the_redis_bus_has_a_health_check(redis_rt):
    assert "realtime_bus" in redis_rt.registry["learnsail.health_checks"]
    body = redis_rt.app.get("/healthz").json
    assert body["checks"]["realtime_bus"] == {"status": "ok"}
    from learnsail.realtime.bus import make_bus

    unreachable = make_bus(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(Exception):
        unreachable.health()


# --- the commands ------------------------------------------------------------------------------

def _env(settings: dict, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNSAIL_")
           or k in ("LEARNSAIL_TEST_DB", "LEARNSAIL_REQUIRE_SERVICES")}
    env.update({
        "LEARNSAIL_DATABASE_URL": settings["learnsail.database_url"],
        "LEARNSAIL_DATA_DIR": settings["learnsail.data_dir"],
        "LEARNSAIL_SECRET": SECRET,
        "LEARNSAIL_PLUGINS": "",
        "LEARNSAIL_LOG_LEVEL": "WARNING",
        **extra,
    })
    return env


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 30) -> str:
    """The first output line of ``proc`` containing ``needle``."""
    lines: list[str] = []
    result: list[str] = []

    def read() -> None:
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            if needle in line:
                result.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not result:
        proc.kill()
        raise AssertionError(f"no {needle!r} in the output:\n{''.join(lines)}")
    return result[0]


def test_learnsail_realtime_command_delivers_events_from_redis(redis_rt):
    port = free_port()
    env = _env(redis_rt.settings, LEARNSAIL_REALTIME_BUS_URL=redis_rt.redis.url,
               LEARNSAIL_REALTIME_REDIS_PREFIX=redis_rt.settings["learnsail.realtime_redis_prefix"])
    proc = subprocess.Popen([sys.executable, "-m", "learnsail.cli", "realtime", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = _wait_for_line(proc, "realtime gateway on")
        assert f"ws://127.0.0.1:{port}/ws" in line
        alice = redis_rt.users["alice"]
        with open_client(f"ws://127.0.0.1:{port}/ws", token_for(redis_rt, "alice")) as ws:
            subscribe(ws, f"user:{alice.id}")
            post_publish(redis_rt, [f"user:{alice.id}"], data={"from": "another process"})
            assert recv(ws)["data"] == {"from": "another process"}
            proc.terminate()  # SIGTERM: clients are told the gateway is going away
            assert closed_with(ws, timeout=10)[0] == 1001
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_learnsail_serve_embeds_a_gateway(rt):
    port, ws_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "learnsail.cli", "serve", "--port", str(port),
                             "--realtime-port", str(ws_port), "--no-scheduler"],
                            env=_env(rt.settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = _wait_for_line(proc, "realtime WebSocket gateway on")
        assert f"ws://127.0.0.1:{ws_port}/ws" in line
        with open_client(f"ws://127.0.0.1:{ws_port}/ws", token_for(rt, "bob")) as ws:
            assert subscribe(ws, f"user:{rt.users['bob'].id}")[-1]["type"] == "subscribed"
        with connect(f"ws://127.0.0.1:{ws_port}/ws?token=nope") as ws:
            assert closed_with(ws) == (4001, "invalid token")
    finally:
        proc.terminate()
        proc.wait(10)


def test_learnsail_realtime_command_fails_clearly_without_its_bus(rt):
    dead = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = subprocess.run([sys.executable, "-m", "learnsail.cli", "realtime", "--port", str(free_port())],
                            env=_env(rt.settings, LEARNSAIL_REALTIME_BUS_URL=dead),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "the realtime gateway could not start: the realtime bus at redis://:***@127.0.0.1" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_switching_identity_on_an_open_connection_asks_for_the_channels_again(rt):
    import sqlalchemy as sa

    from learnsail.identity.models import Role, UserRole

    tina = rt.users["tina"]
    factory = rt.registry["learnsail.dbsession_factory"]
    with factory() as session:
        student = session.scalar(sa.select(Role.id).where(Role.name == "student"))
        session.add(UserRole(user_id=tina.id, role_id=student))
        session.commit()
    try:
        with open_client(rt.gateway.url, token_for(rt, "tina")) as ws:
            subscribe(ws, "room:teachers", f"user:{tina.id}")
            as_student = tokens.issue(rt.registry.settings, tina.id, "access", 600, role="student")
            ws.send(json.dumps({"type": "auth", "token": as_student}))
            assert recv(ws) == {"type": "error", "code": "CHANNEL_FORBIDDEN", "channel": "room:teachers",
                                "message": "You may not subscribe to this channel."}
            assert recv(ws)["role"] == "student"
            post_publish(rt, ["room:teachers"], data={"for": "teachers"})
            post_publish(rt, [f"user:{tina.id}"], data={"marker": True})
            assert recv(ws)["data"] == {"marker": True}
    finally:
        with factory() as session:
            session.execute(sa.delete(UserRole).where(UserRole.user_id == tina.id))
            session.commit()


def test_a_gateway_whose_redis_goes_away_reports_unhealthy(rt, redis_server, tmp_path):
    import urllib.error
    import urllib.request

    from learnsail.realtime.bus import make_bus
    from learnsail.testing.services import start_redis

    private = start_redis(tmp_path / "redis")
    gateway = EmbeddedGateway(rt.registry, host="127.0.0.1", port=0, bus=make_bus(private.url)).start()
    health = gateway.url.replace("ws://", "http://").replace("/ws", "/healthz")
    try:
        with urllib.request.urlopen(health, timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
        private.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(health, timeout=5).close()
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                break
            assert time.monotonic() < deadline, "the gateway still reports healthy"
            time.sleep(0.1)
    finally:
        gateway.stop()
        private.stop()
