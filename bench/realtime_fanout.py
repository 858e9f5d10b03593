"""Realtime fan-out, measured (not asserted).

One event to 1,000 subscribed WebSocket clients spread over two gateway
processes: p50 and p99 delivery latency.  Goal: p99 < 100 ms on this machine.

    .venv/bin/python bench/realtime_fanout.py [--clients 1000] [--gateways 2] [--events 50]
                                              [--interval 0.2] [--client-procs 1]

What runs:

- a private redis-server (learnsail.testing.services.start_redis), the bus;
- a temporary SQLite database with ``--clients`` users (one per client);
- ``--gateways`` gateway processes (multiprocessing, spawn), each running
  :func:`learnsail.realtime.gateway.run` -- what ``learnsail realtime`` runs --
  with a bench plugin whose ``learnsail_channel_authorize`` lets every user
  join ``bench:all`` (a "course channel": the hook runs for every subscribe);
- the clients: asyncio websockets clients (``--client-procs`` processes,
  default one), client i on gateway i % gateways, each authenticated with its
  own access token (the ``auth`` frame) and subscribed to ``bench:all``;
- this process publishes ``--events`` events with
  :func:`learnsail.realtime.publish` in a committed transaction (the code path
  of any app process), one every ``--interval`` seconds.  Each carries its
  publish time (``time.time()`` just before the commit); a client stamps
  ``time.time()`` as soon as the frame is received, so a latency covers the
  commit hook, Redis, the gateway's fan-out, the WebSocket write and the
  client's read.  The first ``--warmup`` events are left out.

All processes share this machine's cores: the clients' own event loop is
part of what is measured (the last of 1,000 clients in one process reads the
event after the 999 others).  ``--client-procs 2`` spreads them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL_P99 = 0.100
CHANNEL = "bench:all"
SECRET = "bench-realtime-secret-bench-realtime-secret"


# --- the bench plugin (loaded in the gateway processes) ------------------------------

def _plugin_module():
    import types

    from learnsail import hookimpl

    @hookimpl
    def learnsail_channel_authorize(user, channel, session):
        return True if channel == CHANNEL else None

    module = types.ModuleType("bench_realtime_plugin")
    module.learnsail_channel_authorize = learnsail_channel_authorize
    return module


def _installed():
    from learnsail.plugins import Plugin, PluginInfo, discover

    installed = dict(discover())
    installed["benchrt"] = Plugin(info=PluginInfo(name="benchrt", version="1", migrations=None),
                                  module=_plugin_module())
    return installed


def _configure(settings):
    from learnsail.app import configure

    config = configure(settings, environ={}, installed=_installed())
    config.commit()
    return config.registry


def _gateway_process(settings, port):
    from learnsail.realtime.gateway import run

    registry = _configure(settings)
    run(registry, host="127.0.0.1", port=port,
        announce=lambda gateway: print(f"  gateway pid {os.getpid()} on {gateway.url}", flush=True))


# --- set-up -------------------------------------------------------------------------

def _prepare(tmp: Path, redis_url: str, clients: int):
    import sqlalchemy as sa

    from learnsail import migrations
    from learnsail.identity import tokens
    from learnsail.identity.models import User
    from learnsail.identity.passwords import hash_password
    from learnsail.identity.services import ensure_default_roles

    settings = {
        "learnsail.data_dir": str(tmp),
        "learnsail.database_url": f"sqlite:///{tmp / 'bench.sqlite'}",
        "learnsail.plugins": "benchrt",
        "learnsail.secret": SECRET,
        "learnsail.log_level": "WARNING",
        "learnsail.realtime_bus_url": redis_url,
    }
    registry = _configure(settings)
    migrations.upgrade(registry.settings, registry["learnsail.plugins"])
    password = hash_password("bench password bench")
    with registry["learnsail.dbsession_factory"]() as session:
        roles = ensure_default_roles(session)
        session.add_all([User(username=f"bench{i}", email=f"bench{i}@example.com", password=password,
                              role=roles["student"]) for i in range(clients)])
        session.commit()
        ids = session.scalars(sa.select(User.id).where(User.username.like("bench%")).order_by(User.id)).all()
    ttl = 3600
    toks = [tokens.issue(registry.settings, uid, "access", ttl, role="student") for uid in ids]
    return settings, registry, toks


# --- clients ------------------------------------------------------------------------

async def _client(url, token, ready, connections, received, failures):
    from websockets.asyncio.client import connect

    try:
        async with connect(url, max_size=2 ** 20, compression=None, open_timeout=60,
                           ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            frame = json.loads(await ws.recv())
            if frame.get("type") != "ready":
                raise RuntimeError(f"not ready: {frame}")
            await ws.send(json.dumps({"type": "subscribe", "channels": [CHANNEL]}))
            frame = json.loads(await ws.recv())
            if frame.get("type") != "subscribed":
                raise RuntimeError(f"not subscribed: {frame}")
            connections.append(ws)
            ready()
            clock = time.time
            append = received.append
            async for raw in ws:  # until the bench closes the connection
                append((clock(), raw))  # stamped first, parsed after the run
    except Exception as exc:  # reported, and the run goes on
        failures.append(repr(exc))


def _client_process(urls, token_slice, offset, conn):
    """Connect the clients of ``token_slice``; report readiness; collect the
    latencies until told to stop; send them back."""
    from learnsail.realtime.gateway import raise_fd_limit

    raise_fd_limit()

    async def main():
        received: list[tuple[float, str]] = []
        failures: list[str] = []
        connections: list = []
        count = [0]
        all_ready = asyncio.Event()

        def ready():
            count[0] += 1
            if count[0] == len(token_slice):
                all_ready.set()

        started = time.perf_counter()
        tasks = []
        for i, token in enumerate(token_slice):
            url = urls[(offset + i) % len(urls)]
            tasks.append(asyncio.create_task(_client(url, token, ready, connections, received, failures)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # do not open every handshake at the same instant
        while not all_ready.is_set():
            if failures and count[0] + len(failures) >= len(token_slice):
                break
            await asyncio.sleep(0.05)
        conn.send(("ready", count[0], failures[:5], time.perf_counter() - started))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        latencies = []
        for stamp, raw in received:
            event = json.loads(raw)
            if event.get("type") == "event":
                latencies.append((event["data"]["seq"], stamp - event["data"]["sent"]))
        conn.send(("latencies", latencies, failures[:5]))

    asyncio.run(main())


# --- the run ------------------------------------------------------------------------

def _percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--client-procs", type=int, default=1)
    args = parser.parse_args()

    import transaction

    from learnsail import realtime
    from learnsail.testing.services import free_port, start_redis

    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-rt-") as tmpdir:
        tmp = Path(tmpdir)
        redis = start_redis(tmp / "redis")
        gateways, clients = [], []
        try:
            t0 = time.perf_counter()
            settings, registry, toks = _prepare(tmp, redis.url, args.clients)
            print(f"realtime fan-out: {args.clients} clients, {args.gateways} gateway processes, "
                  f"{args.events} events (+{args.warmup} warm-up), Redis bus, {os.cpu_count()} CPUs")
            print(f"  set-up (database, {args.clients} users and tokens): {time.perf_counter() - t0:.1f}s")
            ports = [free_port() for _ in range(args.gateways)]
            for port in ports:
                proc = ctx.Process(target=_gateway_process, args=(settings, port), daemon=True)
                proc.start()
                gateways.append(proc)
            urls = [f"ws://127.0.0.1:{port}/ws" for port in ports]
            _wait_listening(ports, gateways)

            per = -(-len(toks) // args.client_procs)
            for k in range(args.client_procs):
                parent, child = ctx.Pipe()
                chunk = toks[k * per:(k + 1) * per]
                proc = ctx.Process(target=_client_process, args=(urls, chunk, k * per, child), daemon=True)
                proc.start()
                clients.append((proc, parent, len(chunk)))
            connected = 0
            for proc, conn, size in clients:
                kind, count, failures, seconds = conn.recv()
                connected += count
                print(f"  client process {proc.pid}: {count}/{size} connected and subscribed in {seconds:.1f}s"
                      + (f"; failures: {failures}" if failures else ""))
            if connected == 0:
                print("  no client connected; giving up")
                return 1

            sent_at = []
            for seq in range(args.warmup + args.events):
                txn = transaction.manager.begin()
                stamp = time.time()
                realtime.publish(registry, CHANNEL, "tick", {"seq": seq, "sent": stamp})
                txn.commit()
                sent_at.append(stamp)
                time.sleep(args.interval)
            time.sleep(1.0)  # let the last event arrive everywhere

            samples: list[tuple[int, float]] = []
            for proc, conn, _ in clients:
                conn.send("stop")
            for proc, conn, _ in clients:
                kind, latencies, failures = conn.recv()
                samples.extend(latencies)
                if failures:
                    print(f"  client process {proc.pid} failures: {failures}")
                proc.join(30)
        finally:
            for proc in gateways:
                proc.terminate()
            for proc in gateways:
                proc.join(10)
            for proc, _, _ in clients:
                if proc.is_alive():
                    proc.kill()
            redis.stop()

    measured = [lat for seq, lat in samples if seq >= args.warmup]
    expected = args.events * connected
    per_event: dict[int, float] = {}
    for seq, lat in samples:
        if seq >= args.warmup:
            per_event[seq] = max(per_event.get(seq, 0.0), lat)
    p50, p99 = _percentile(measured, 0.50), _percentile(measured, 0.99)
    print(f"  deliveries: {len(measured)} of {expected} expected ({connected} clients x {args.events} events)")
    print(f"  delivery latency: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {max(measured) * 1000:.1f} ms, mean {statistics.fmean(measured) * 1000:.1f} ms")
    print(f"  slowest client per event (time for one event to reach all {connected}): "
          f"median {statistics.median(per_event.values()) * 1000:.1f} ms")
    print(f"  p99 / goal (100 ms): {p99 / GOAL_P99:.2f}x  -> {'met' if p99 < GOAL_P99 else 'MISSED'}")
    return 0


def _wait_listening(ports, procs, timeout=60.0):
    import socket

    deadline = time.monotonic() + timeout
    for port, proc in zip(ports, procs):
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if not proc.is_alive() or time.monotonic() > deadline:
                    raise SystemExit(f"the gateway on port {port} did not start")
                time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
