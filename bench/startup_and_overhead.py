"""Start-up time and per-request overhead of the learnsail core, measured
(printed, never asserted).

1. Start-up: ``learnsail.app.make_app`` with every installed plugin
   (``learnsail.plugins = *``) in a fresh interpreter, several runs.
   Goal: < 2 s (Python imports included).
2. Per-request overhead: one empty PUBLIC Cornice service registered
   through the core's ``Service`` class, against a bare Pyramid app that
   answers ``{}`` with the ``json`` renderer; both WSGI apps called directly.
   Goal: full / bare <= 1.3x (access log at WARNING, i.e. off).  A second
   ratio shows what INFO access logging (JSON lines to /dev/null) adds.

    .venv/bin/python bench/startup_and_overhead.py [--runs 5] [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

STARTUP_GOAL_S = 2.0
RATIO_GOAL = 1.3
SECRET = "bench-secret-bench-secret-bench-secret-0123456789"


def isolated_environ() -> dict[str, str]:
    """The process environment without the developer's LEARNSAIL_* variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LEARNSAIL_")}


def bench_settings(tmp: Path, log_level: str = "WARNING") -> dict[str, Any]:
    return {
        "learnsail.plugins": "*",
        "learnsail.data_dir": str(tmp),
        "learnsail.database_url": f"sqlite:///{tmp / 'bench.sqlite'}",
        "learnsail.secret": SECRET,
        "learnsail.log_level": log_level,
    }


# --- 1. start-up ----------------------------------------------------------------

# Runs in a fresh interpreter: t0 is taken before any import beyond `time`.
STARTUP_CODE = r"""
import time
t0 = time.perf_counter()
import json, os, sys
settings = json.loads(sys.argv[1])
environ = {k: v for k, v in os.environ.items() if not k.startswith("LEARNSAIL_")}
import learnsail.app
t1 = time.perf_counter()
app = learnsail.app.make_app(settings, environ=environ)
t2 = time.perf_counter()
n_plugins = len(app.registry["learnsail.plugins"].order)
n_routes = len(app.routes_mapper.get_routes())
app.registry["learnsail.db_engine"].dispose()
print(json.dumps({"import": t1 - t0, "make_app": t2 - t1, "total": t2 - t0,
                  "plugins": n_plugins, "routes": n_routes}))
"""


def measure_startup(runs: int) -> None:
    print(f"== 1. start-up: make_app with every installed plugin, {runs} fresh interpreters")
    rows = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="learnsail-bench-") as tmp:
            settings = bench_settings(Path(tmp))
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", STARTUP_CODE, json.dumps(settings)],
                                  env=isolated_environ(), capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"start-up subprocess failed (exit {proc.returncode})")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["wall"] = wall
            rows.append(row)
    print(f"   plugins enabled: {rows[0]['plugins']}   routes: {rows[0]['routes']}")
    print(f"   {'':34}{'median':>9}{'min':>9}")
    labels = (("import learnsail.app", "import"), ("make_app()", "make_app"),
              ("import + make_app (in process)", "total"),
              ("subprocess wall (interpreter too)", "wall"))
    for label, key in labels:
        values = [r[key] for r in rows]
        print(f"   {label:34}{statistics.median(values):8.3f}s{min(values):8.3f}s")
    worst = statistics.median(r["wall"] for r in rows)
    verdict = "within" if worst < STARTUP_GOAL_S else "OVER"
    print(f"   goal: < {STARTUP_GOAL_S:.0f} s  -> median wall {worst:.3f} s, {verdict} goal")


# --- 2. per-request overhead ----------------------------------------------------

def build_bare() -> Callable:
    from pyramid.config import Configurator

    config = Configurator()
    config.add_route("bench.empty", "/api/v1/bench-empty")
    config.add_view(lambda request: {}, route_name="bench.empty", renderer="json", request_method="GET")
    return config.make_wsgi_app()


def build_full(tmp: Path) -> Any:
    import learnsail.app
    from learnsail.api import PUBLIC, Service

    config = learnsail.app.configure(bench_settings(tmp, "WARNING"), environ=isolated_environ())
    svc = Service(name="bench.empty", path="/api/v1/bench-empty")

    @svc.get(permission=PUBLIC)
    def empty(request: Any) -> dict:
        return {}

    config.add_learnsail_service(svc)
    return learnsail.app.make_wsgi_app(config)


def environs(path: str, n: int) -> list[dict]:
    from webob import Request

    template = Request.blank(path).environ
    return [dict(template) for _ in range(n)]


def run_requests(app: Callable, envs: list[dict]) -> float:
    """Seconds for len(envs) requests; checks every answer is a 200."""
    bad = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        if not status.startswith("200"):
            bad.append(status)

    start = time.perf_counter()
    for environ in envs:
        body = app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - start
    if bad:
        raise SystemExit(f"unexpected status {bad[0]} ({len(bad)} non-200 answers)")
    return elapsed


def best_us(apps: dict[str, Callable], n: int, rounds: int, path: str,
            setups: dict[str, Callable[[], None]] | None = None) -> dict[str, float]:
    """Best-round microseconds per request for each app, rounds interleaved;
    ``setups[name]()`` runs (untimed) before each of that app's rounds."""
    setups = setups or {}
    noop = lambda: None  # noqa: E731
    for name, app in apps.items():  # warm-up
        setups.get(name, noop)()
        run_requests(app, environs(path, min(n, 500)))
    best = {name: float("inf") for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            envs = environs(path, n)
            setups.get(name, noop)()
            best[name] = min(best[name], run_requests(app, envs) / n * 1e6)
    return best


def set_access_logging(info: bool, devnull: Any) -> None:
    """WARNING: access log off.  INFO: the core's JSON handler, written to /dev/null."""
    root = logging.getLogger("learnsail")
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)
    root.setLevel(logging.INFO if info else logging.WARNING)


def tween_breakdown(full: Any, n: int, rounds: int, path: str) -> None:
    """Cost of each tween: the chain rebuilt without it, compared to the whole chain."""
    from pyramid.interfaces import ITweens

    registry = full.registry
    tweens = registry.queryUtility(ITweens)
    use = list(tweens.explicit or tweens.implicit())

    def chain(skip: str | None) -> Callable:
        handler = full.orig_handle_request
        for name, factory in use[::-1]:
            if name != skip:
                handler = factory(handler, registry)
        return handler

    variants = {"all tweens": chain(None)}
    variants.update({f"without {name}": chain(name) for name, _ in use})
    apps = {}
    for label, handler in variants.items():
        router = copy.copy(full)  # same registry, its own tween chain
        router.handle_request = handler
        apps[label] = router
    results = best_us(apps, n, rounds, path)
    base = results["all tweens"]
    print("   tweens (cost = full chain minus chain without it):")
    for label, value in results.items():
        if label == "all tweens":
            print(f"     {label:58}{value:8.1f} us")
        else:
            print(f"     {label:58}{value:8.1f} us   cost {base - value:6.1f} us")


def core_tween_parts(full: Any, n: int) -> None:
    """Micro-timings of the core tween's main steps (learnsail/ops.py)."""
    import uuid

    from learnsail import ops

    metrics = full.registry["learnsail.metrics"]
    counter = metrics.requests
    latency = metrics.latency

    def timeit(fn: Callable[[], Any]) -> float:
        for _ in range(200):
            fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    parts = {
        "uuid.uuid4().hex (request id)": lambda: uuid.uuid4().hex,
        "requests counter .labels().inc()": lambda: counter.labels("GET", "bench.empty", "200").inc(),
        "latency histogram .labels().observe()": lambda: latency.labels("GET", "bench.empty").observe(0.001),
        "request_id_var set+reset": lambda: ops.request_id_var.reset(ops.request_id_var.set("x")),
    }
    print("   core tween steps (micro-timed in isolation):")
    for label, fn in parts.items():
        print(f"     {label:58}{timeit(fn):8.2f} us")


def measure_overhead(n: int, rounds: int, breakdown: bool) -> None:
    path = "/api/v1/bench-empty"
    print(f"\n== 2. per-request overhead: GET {path}, best of {rounds} interleaved rounds of {n}")
    with tempfile.TemporaryDirectory(prefix="learnsail-bench-") as tmp, open(os.devnull, "w") as devnull:
        bare = build_bare()
        full = build_full(Path(tmp))
        names = [route.name for route in full.routes_mapper.get_routes()]
        print(f"   full app: bench route is route {names.index('bench.empty') + 1} of {len(names)} "
              f"(URL dispatch is linear); bare app: 1 route")
        try:
            quiet_log = lambda: set_access_logging(False, devnull)  # noqa: E731
            info_log = lambda: set_access_logging(True, devnull)  # noqa: E731
            us = best_us({"bare": bare, "full": full, "full+info": full}, n, rounds, path,
                         setups={"bare": quiet_log, "full": quiet_log, "full+info": info_log})
            set_access_logging(False, devnull)
            quiet = {"bare": us["bare"], "full": us["full"]}
            loud = {"bare": us["bare"], "full": us["full+info"]}

            ratio = quiet["full"] / quiet["bare"]
            verdict = "within" if ratio <= RATIO_GOAL else "OVER"
            print(f"   bare Pyramid (route + json view)             {quiet['bare']:8.1f} us/request")
            print(f"   learnsail core, access log off (WARNING)     {quiet['full']:8.1f} us/request")
            print(f"   ratio full/bare, access log off:  {ratio:.2f}x   "
                  f"(goal <= {RATIO_GOAL}x -> {verdict} goal)")
            loud_ratio = loud["full"] / loud["bare"]
            print(f"   learnsail core, INFO access log to /dev/null {loud['full']:8.1f} us/request")
            print(f"   ratio full/bare, INFO access log: {loud_ratio:.2f}x   "
                  f"(logging costs {loud['full'] - quiet['full']:.1f} us/request; informational)")
            if breakdown:
                print()
                tween_breakdown(full, n, rounds, path)
                core_tween_parts(full, n)
        finally:
            full.registry["learnsail.db_engine"].dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="start-up subprocesses (default 5)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per app (default 5)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-tween breakdown")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {sys.executable}")
    if args.runs > 0:
        measure_startup(args.runs)
    if args.requests > 0:
        measure_overhead(args.requests, args.rounds, not args.no_breakdown)


if __name__ == "__main__":
    main()
