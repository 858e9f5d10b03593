"""The ``learnsail`` command: init, serve, worker, beat, realtime, db, plugins.

Settings come from an optional ini file (``-c``/``LEARNSAIL_CONFIG``) and
``LEARNSAIL_*`` environment variables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

from learnsail import __version__
from learnsail.plugins import PluginError
from learnsail.settings import SettingError


def _read_ini(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    import plaster

    loader = plaster.get_loader(path, protocols=["wsgi"])
    return dict(loader.get_settings("app:main"))


def _step(message: str) -> float:
    print(f"==> {message}", flush=True)
    return time.perf_counter()


def _done(start: float, detail: str = "") -> None:
    print(f"    done in {time.perf_counter() - start:.1f}s{(': ' + detail) if detail else ''}", flush=True)


def _context(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    from learnsail.app import load_settings

    return load_settings(_read_ini(args.config))


def cmd_init(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from learnsail import migrations
    from learnsail.app import call_in_order
    from learnsail.db import make_engine
    from learnsail.identity.services import ensure_admin, ensure_default_roles

    settings, plugins = _context(args)
    started = _step("upgrading the database")
    branches = migrations.upgrade(settings, plugins)
    _done(started, ", ".join(branches))
    engine = make_engine(settings)
    with Session(engine) as session, session.begin():
        started = _step("ensuring an administrator")
        ensure_default_roles(session)
        chosen = os.environ.get("LEARNSAIL_ADMIN_PASSWORD")
        if chosen:
            from learnsail.identity.services import validate_password

            reasons = validate_password(chosen, settings, username=os.environ.get("LEARNSAIL_ADMIN_USERNAME"))
            if reasons:
                raise SettingError(f"LEARNSAIL_ADMIN_PASSWORD is refused: {' '.join(reasons)}")
        user, generated = ensure_admin(session, os.environ.get("LEARNSAIL_ADMIN_USERNAME"),
                                       os.environ.get("LEARNSAIL_ADMIN_PASSWORD"), pm=plugins.manager)
        if user is None:
            _done(started, "an administrator already exists")
        elif generated:
            _done(started, f"created {user.username!r} with password {generated!r} "
                           f"(shown once: write it down, then change it)")
        else:
            _done(started, f"created {user.username!r} with the password from LEARNSAIL_ADMIN_PASSWORD")
    with Session(engine) as session, session.begin():
        started = _step("loading demo data")
        summaries = [f"{name}: {text}" for name, text in
                     call_in_order(plugins.manager, "learnsail_demo_data", plugins.order,
                                   session=session, settings=settings) if text]
        _done(started, "; ".join(summaries) or "up to date")
    engine.dispose()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import waitress

    from learnsail.app import make_app

    app = make_app(_read_ini(args.config))
    from learnsail.tasks import EmbeddedScheduler, is_embedded, start_background_runner

    if is_embedded(app.registry):
        # no worker: long tasks run in a thread of this process, not in the request that sent them
        start_background_runner(app.registry)
        if not args.no_scheduler:
            # no broker, so no `learnsail beat`: the periodic tasks run in this process
            EmbeddedScheduler(app.registry).start()
    proxy = app.registry.settings.get("learnsail.trusted_proxy") or None
    print(f"learnsail {__version__} serving on http://{args.host}:{args.port} "
          f"(API docs at http://{args.host}:{args.port}/api/docs)"
          + (f", trusting the proxy at {proxy}" if proxy else ""), flush=True)
    _embedded_realtime(args, app.registry)
    options: dict = {}
    if proxy:
        options = {"trusted_proxy": proxy, "trusted_proxy_count": 1,
                   "trusted_proxy_headers": "x-forwarded-for x-forwarded-proto x-forwarded-host",
                   "clear_untrusted_proxy_headers": True}
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="learnsail", **options)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from learnsail.app import make_app
    from learnsail.tasks import run_worker

    app = make_app(_read_ini(args.config))
    return run_worker(app.registry, queues=args.queues, concurrency=args.concurrency, pool=args.pool,
                      loglevel=args.loglevel)


def cmd_beat(args: argparse.Namespace) -> int:
    from learnsail.app import make_app
    from learnsail.tasks import run_beat

    app = make_app(_read_ini(args.config))
    return run_beat(app.registry, loglevel=args.loglevel)


def _embedded_realtime(args: argparse.Namespace, registry: Any) -> Any:
    """The WebSocket gateway beside the web app, in a background thread:
    always with the in-process bus (only a gateway of this process sees its
    events), with Redis only when --realtime-port is given; never with
    --no-realtime."""
    from learnsail.realtime.bus import MemoryBus
    from learnsail.realtime.gateway import start_in_thread

    if args.no_realtime:
        return None
    if args.realtime_port is None and not isinstance(registry["learnsail.realtime.bus"], MemoryBus):
        print("realtime: events go through learnsail.realtime_bus_url; run `learnsail realtime` "
              "for the WebSocket gateway", flush=True)
        return None
    try:
        gateway = start_in_thread(registry, host=args.realtime_host, port=args.realtime_port)
    except (OSError, RuntimeError) as exc:  # the port is taken, Redis is down: the web app still serves
        print(f"realtime: warning: the WebSocket gateway could not start ({exc}); serving without it "
              f"(choose --realtime-port, or --no-realtime)", file=sys.stderr, flush=True)
        return None
    print(f"realtime WebSocket gateway on {gateway.url}", flush=True)
    return gateway


def cmd_realtime(args: argparse.Namespace) -> int:
    from learnsail.realtime.bus import MemoryBus, safe_url
    from learnsail.realtime.gateway import build_registry, run

    registry = build_registry(_read_ini(args.config))
    bus = registry["learnsail.realtime.bus"]
    if isinstance(bus, MemoryBus):
        print("realtime: warning: learnsail.realtime_bus_url is empty, so this gateway sees only events "
              "published in its own process; set it to redis://... or use the gateway that "
              "`learnsail serve` embeds", file=sys.stderr, flush=True)

    def announce(gateway: Any) -> None:
        print(f"learnsail {__version__} realtime gateway on {gateway.url} (bus: {safe_url(bus.url)})", flush=True)

    try:
        run(registry, host=args.host, port=args.port, announce=announce)
    except (OSError, RuntimeError) as exc:  # the port is taken, the bus does not answer
        print(f"learnsail: error: the realtime gateway could not start: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from learnsail.inventory import describe_plugins

    settings, plugins = _context(args)
    rows = describe_plugins(plugins, settings)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("name", "version", "enabled", "requires", "migration head", "hooks")
    table = [header] + [(r["name"], r["version"], "yes" if r["enabled"] else "no",
                         ",".join(r["requires"]) or "-", r["migration_head"] or "-",
                         ",".join(h.removeprefix("learnsail_") for h in r["hooks"]) or "-") for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)) + "  " + str(row[-1]))
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from alembic import command
    from alembic.util import AutogenerateDiffsDetected

    from learnsail import migrations

    settings, plugins = _context(args)
    action = args.db_command
    if action == "upgrade":
        started = _step("upgrading the core and the enabled plugins")
        _done(started, ", ".join(migrations.upgrade(settings, plugins)))
        return 0
    if action == "remove-plugin":
        started = _step(f"removing plugin {args.name!r}'s tables")
        migrations.remove_plugin(settings, plugins, args.name)
        _done(started)
        return 0
    if action == "revision":
        return _revision(args, settings, plugins)
    cfg = migrations.make_config(settings, plugins)
    if action == "downgrade":
        command.downgrade(cfg, args.revision)
    elif action == "current":
        command.current(cfg, verbose=args.verbose)
    elif action == "history":
        command.history(cfg, verbose=args.verbose)
    elif action == "check":
        try:
            migrations.check(settings, plugins)
        except (migrations.NotUpToDate, AutogenerateDiffsDetected) as exc:
            print(f"learnsail: error: {exc}", file=sys.stderr)
            return 1
        print("models and migrations agree")
    return 0


def _revision(args: argparse.Namespace, settings: dict, plugins: Any) -> int:
    from alembic import command

    from learnsail import migrations
    from learnsail.plugins import CORE_NAME

    name = args.plugin
    if name == CORE_NAME:
        version_path, requires = migrations.CORE_VERSIONS, ()
    else:
        plugin = plugins.get(name)
        if plugin is None:
            raise PluginError(f"plugin {name!r} is not installed.")
        if not plugin.enabled:
            raise PluginError(f"plugin {name!r} is disabled: enable it to write its migrations.")
        version_path = plugin.migrations_dir
        if version_path is None:
            raise PluginError(f"plugin {name!r} has no migrations directory: create "
                              f"{plugin.info.migrations!r} in its package (or set PluginInfo.migrations).")
        requires = plugin.info.requires
    cfg = migrations.make_config(settings, plugins, only={name})
    known = migrations.branches(cfg)
    kwargs: dict[str, Any] = {"message": args.message, "autogenerate": args.autogenerate,
                              "version_path": str(version_path), "rev_id": args.rev_id}
    if name in known:
        kwargs["head"] = f"{name}@head"
    else:
        needed = [CORE_NAME] + [req for req in requires if req in known]
        kwargs.update(head="base", branch_label=name,
                      depends_on=[migrations.branch_head(cfg, b) for b in needed if b in known])
    if args.autogenerate:
        # autogenerate compares against a database at the current heads
        migrations.upgrade(settings, plugins)
    script = command.revision(cfg, **kwargs)
    print(f"wrote {script.path if script is not None else version_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="learnsail", description="learnsail platform command")
    parser.add_argument("-c", "--config", default=os.environ.get("LEARNSAIL_CONFIG"),
                        help="ini file with an [app:main] section (default: $LEARNSAIL_CONFIG; "
                             "settings also come from LEARNSAIL_* variables)")
    parser.add_argument("--version", action="version", version=f"learnsail {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("init", help="upgrade the database, create an admin if none, load demo data")

    serve = sub.add_parser("serve", help="serve the app with waitress")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=6543)
    serve.add_argument("--threads", type=int, default=8)
    serve.add_argument("--no-scheduler", action="store_true",
                       help="without a broker, do not run the periodic tasks in this process")

    worker = sub.add_parser("worker", help="run a Celery worker for the background tasks "
                                           "(needs learnsail.broker_url)")
    worker.add_argument("-Q", "--queues", default="",
                        help="queues to consume, comma separated (default: every declared queue)")
    worker.add_argument("-c", "--concurrency", type=int, default=0,
                        help="worker processes (default: the number of CPUs)")
    worker.add_argument("--pool", default="prefork", choices=("prefork", "threads", "solo"))
    worker.add_argument("--loglevel", default="INFO")

    beat = sub.add_parser("beat", help="run the scheduler of the periodic tasks (celery beat; "
                                       "without a broker, runs them in this process)")
    beat.add_argument("--loglevel", default="INFO")

    serve.add_argument("--realtime-host", default=None,
                       help="address of the embedded WebSocket gateway (default: learnsail.realtime_host)")
    serve.add_argument("--realtime-port", type=int, default=None,
                       help="port of the embedded WebSocket gateway (default: learnsail.realtime_port); "
                            "given, it starts even with a Redis bus")
    serve.add_argument("--no-realtime", action="store_true", help="do not start the embedded WebSocket gateway")
    realtime = sub.add_parser("realtime", help="run a WebSocket gateway (with a Redis bus, any number of them)")
    realtime.add_argument("--host", default=None, help="listen address (default: learnsail.realtime_host)")
    realtime.add_argument("--port", type=int, default=None, help="port (default: learnsail.realtime_port)")

    plugins = sub.add_parser("plugins", help="list installed plugins")
    plugins.add_argument("--json", action="store_true")

    db = sub.add_parser("db", help="database migrations")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="upgrade the core and every enabled plugin to its head")
    down = dbsub.add_parser("downgrade", help="downgrade to a revision (e.g. 'example@base', 'core@-1')")
    down.add_argument("revision")
    for name in ("current", "history"):
        p = dbsub.add_parser(name, help=f"alembic {name}")
        p.add_argument("-v", "--verbose", action="store_true")
    dbsub.add_parser("check", help="fail when models and migrations disagree")
    rev = dbsub.add_parser("revision", help="write a new migration for one plugin (or 'core')")
    rev.add_argument("--plugin", required=True)
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true",
                     help="compare that plugin's models with the database")
    rev.add_argument("--rev-id", default=None, help="revision id (default: generated)")
    rm = dbsub.add_parser("remove-plugin", help="drop exactly one plugin's tables")
    rm.add_argument("name")
    return parser


COMMANDS = {"init": cmd_init, "serve": cmd_serve, "plugins": cmd_plugins, "db": cmd_db,
            "worker": cmd_worker, "beat": cmd_beat}
COMMANDS["realtime"] = cmd_realtime


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (PluginError, SettingError) as exc:
        print(f"learnsail: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from alembic.util import CommandError
        from pyramid.exceptions import ConfigurationError

        if isinstance(exc, (CommandError, ConfigurationError)):
            print(f"learnsail: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
