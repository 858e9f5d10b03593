"""Background tasks: one Celery app per learnsail app, configured from settings.

Declare a task in a module the plugin imports (its ``tasks.py``)::

    from learnsail.tasks import task

    @task("video.transcode", soft_time_limit=3600, time_limit=3900)
    def transcode(ctx, video_id):
        video = ctx.session.get(Video, video_id)
        ...

and send it from a view, a hook or another task::

    from learnsail.tasks import enqueue

    enqueue(request, "video.transcode", video.id)

- The task is sent only once the caller's transaction commits; a request
  that fails sends nothing.
- In the worker each run has its own transaction (``ctx.session``):
  committed when the function returns, rolled back when it raises.
- Transient errors (:class:`TransientError`, database disconnects and
  deadlocks, Redis and network errors) are retried with exponential backoff
  up to ``learnsail.task_max_retries``.
- Tasks are acknowledged late and prefetched one at a time: a worker killed
  mid-task has its task delivered again to another worker.
- The queue is the first segment of the name (``video.transcode`` ->
  ``video``), so heavy plugins get their own workers: ``learnsail worker -Q video``.
- With no ``learnsail.broker_url`` (the embedded default) tasks run
  in-process right after the commit, with the same code path.  A task
  declared ``background=True`` (a long one: a video transcode) then runs in
  a background thread of ``learnsail serve`` instead, so the request that
  sent it answers at once; elsewhere (commands, tests) it runs inline too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import transaction
from pyramid.exceptions import ConfigurationError

from learnsail.aftercommit import manager_of, on_commit, registry_of
from learnsail.settings import Setting, as_int

log = logging.getLogger("learnsail.tasks")

SETTINGS: tuple[Setting, ...] = (
    Setting("learnsail.broker_url", "",
            "Celery broker, e.g. `redis://localhost:6379/2`. Empty: tasks run in-process right after "
            "the commit that sent them (embedded; no worker needed)."),
    Setting("learnsail.task_soft_time_limit", 300,
            "Seconds after which a running task is asked to stop (SoftTimeLimitExceeded); a task may "
            "declare its own.", as_int),
    Setting("learnsail.task_time_limit", 360,
            "Seconds after which a running task's worker process is killed; a task may declare its own.",
            as_int),
    Setting("learnsail.task_max_retries", 5, "Retries of a task failing with a transient error.", as_int),
    Setting("learnsail.task_retry_backoff_max", 600,
            "Longest wait, in seconds, between two retries (the wait doubles from 1 s, with jitter).",
            as_int),
    Setting("learnsail.task_visibility_timeout", 3600,
            "Redis broker: seconds after which a task a worker took but never acknowledged (the worker "
            "died) is delivered again. Keep it above the longest task's time limit.", as_int),
)

PERMISSIONS: dict[str, list[str]] = {}

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class TransientError(Exception):
    """Raise from a task for a failure worth retrying later (a remote
    service is down, a resource is not ready yet)."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    func: Callable[..., Any]
    queue: str
    max_retries: int | None
    soft_time_limit: int | None
    time_limit: int | None
    retry_for: tuple[type[BaseException], ...]
    background: bool = False


@dataclasses.dataclass(frozen=True)
class Periodic:
    """A periodic task (see the ``learnsail_periodic_tasks`` hook).

    ``every`` is an interval in seconds; ``cron`` a five-field crontab
    expression (minute hour day-of-month month day-of-week, UTC).
    """

    name: str
    task: str
    every: float | None = None
    cron: str | None = None
    args: tuple = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"periodic task {self.name!r}: give exactly one of every= or cron=")
        if self.every is not None and self.every <= 0:
            raise ValueError(f"periodic task {self.name!r}: every= must be positive")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"periodic task {self.name!r}: cron= needs five fields, got {self.cron!r}")


#: every task declared with :func:`task`, by name
DECLARED: dict[str, TaskSpec] = {}


def task(name: str, *, queue: str | None = None, max_retries: int | None = None,
         soft_time_limit: int | None = None, time_limit: int | None = None,
         retry_for: Iterable[type[BaseException]] = (),
         background: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the decorated function as the task ``name``.

    The function receives a :class:`TaskContext` and the arguments given to
    :func:`enqueue`.  ``name`` is ``<plugin>.<what>``; the queue defaults to
    its first segment.  ``retry_for`` adds exception classes to retry.
    ``background`` marks a long task: without a broker, ``learnsail serve``
    runs it in its background thread rather than in the sending request.
    """
    if not _NAME.match(name):
        raise ValueError(f"task name {name!r} must look like 'plugin.what' (lower case, dots)")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        known = DECLARED.get(name)
        if known is not None and (known.func.__module__, known.func.__qualname__) != (
                func.__module__, func.__qualname__):
            raise ValueError(f"task {name!r} is declared twice: {known.func.__module__} and {func.__module__}")
        DECLARED[name] = TaskSpec(name, func, queue or name.split(".", 1)[0], max_retries,
                                  soft_time_limit, time_limit, tuple(retry_for), background)
        func.task_name = name  # type: ignore[attr-defined]
        return func

    return decorate


@dataclasses.dataclass
class TaskContext:
    """What a task function receives: its own session and transaction."""

    registry: Any
    session: Any
    tm: Any
    name: str
    retries: int = 0

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.registry.settings


# --- transient errors ---------------------------------------------------------

def _transient_classes() -> tuple[type[BaseException], ...]:
    classes: list[type[BaseException]] = [TransientError, ConnectionError, TimeoutError,
                                          transaction.interfaces.TransientError]
    try:
        import redis.exceptions

        classes += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # redis is optional for the embedded setup
        pass
    return tuple(classes)


def is_transient(exc: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    import sqlalchemy.exc

    if isinstance(exc, _transient_classes() + extra):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        from zope.sqlalchemy import datamanager

        orig = exc.orig
        return any(isinstance(orig, err) and check(orig) for err, check in datamanager._retryable_errors)
    return False


def backoff(retries: int, maximum: int) -> float:
    """Seconds before retry number ``retries + 1``: doubling from 1 s, with
    full jitter, capped at ``maximum``."""
    import random

    return random.uniform(0, min(maximum, 2 ** retries))


# --- the Celery app -----------------------------------------------------------

def _runner(registry: Any, spec: TaskSpec) -> Callable[..., Any]:
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        from learnsail.db import get_session

        tm = transaction.TransactionManager(explicit=True)
        session = get_session(registry["learnsail.dbsession_factory"], tm)
        session.info["learnsail.registry"] = registry
        session.info["learnsail.tm"] = tm
        ctx = TaskContext(registry, session, tm, spec.name, self.request.retries or 0)
        try:
            tm.begin()
            try:
                result = spec.func(ctx, *args, **kwargs)
            except BaseException:
                tm.abort()
                raise
            tm.commit()
            return result
        except Exception as exc:
            if is_transient(exc, spec.retry_for):
                limit = spec.max_retries if spec.max_retries is not None else \
                    int(registry.settings["learnsail.task_max_retries"])
                if self.request.retries < limit:
                    delay = backoff(self.request.retries, int(registry.settings["learnsail.task_retry_backoff_max"]))
                    log.warning("task %s failed (%s: %s); retry %d of %d in %.1fs", spec.name,
                                type(exc).__name__, exc, self.request.retries + 1, limit, delay)
                    raise self.retry(exc=exc, countdown=delay, max_retries=limit)
            log.exception("task %s failed", spec.name)
            raise
        finally:
            session.close()

    run.__name__ = spec.name.replace(".", "_")
    run.__doc__ = spec.func.__doc__
    return run


def _route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str]:
    spec = DECLARED.get(name)
    return {"queue": spec.queue if spec is not None else name.split(".", 1)[0]}


def build_celery(registry: Any) -> Any:
    """The app's Celery application, with every declared task registered."""
    from celery import Celery
    from celery.schedules import crontab

    from learnsail.app import call_in_order

    settings = registry.settings
    broker = settings.get("learnsail.broker_url") or ""
    visibility = int(settings["learnsail.task_visibility_timeout"])
    app = Celery("learnsail", set_as_current=False)
    app.conf.update(
        broker_url=broker or "memory://",
        task_always_eager=not broker,
        task_eager_propagates=False,
        task_store_eager_result=False,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=int(settings["learnsail.task_soft_time_limit"]),
        task_time_limit=int(settings["learnsail.task_time_limit"]),
        task_routes=(_route,),
        task_default_queue="core",
        task_create_missing_queues=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={
            "visibility_timeout": visibility,
            # sweep for the tasks of dead workers often enough for the timeout chosen
            "unacked_restore_interval": min(10, max(1, visibility // 2)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
    )
    for spec in DECLARED.values():
        options: dict[str, Any] = {"name": spec.name, "bind": True, "acks_late": True,
                                   "typing": False, "shared": False}
        if spec.soft_time_limit is not None:
            options["soft_time_limit"] = spec.soft_time_limit
        if spec.time_limit is not None:
            options["time_limit"] = spec.time_limit
        app.task(**options)(_runner(registry, spec))

    schedule: dict[str, dict[str, Any]] = {}
    plugin_set = registry["learnsail.plugins"]
    for owner, periodic in call_in_order(plugin_set.manager, "learnsail_periodic_tasks", plugin_set.order,
                                         settings=settings):
        for item in periodic or ():
            if item.task not in DECLARED:
                raise ConfigurationError(f"{owner}: periodic task {item.name!r} runs {item.task!r}, "
                                         f"which no loaded module declares with @learnsail.tasks.task")
            if item.name in schedule:
                raise ConfigurationError(f"{owner}: periodic task name {item.name!r} is already used")
            when = item.every if item.every is not None else crontab(*item.cron.split())
            schedule[item.name] = {"task": item.task, "schedule": when, "args": tuple(item.args),
                                   "kwargs": dict(item.kwargs)}
    app.conf.beat_schedule = schedule
    registry["learnsail.periodic"] = schedule
    return app


def celery_of(target: Any) -> Any:
    return registry_of(target)["learnsail.celery"]


def queues_of(celery_app: Any) -> list[str]:
    """Every queue a declared task routes to (what a default worker consumes)."""
    return sorted({DECLARED[name].queue for name in celery_app.tasks if name in DECLARED} | {"core"})


# --- sending --------------------------------------------------------------------

def _check(celery_app: Any, name: str, args: tuple, kwargs: Mapping[str, Any]) -> None:
    if name not in celery_app.tasks or name not in DECLARED:
        raise LookupError(f"no task named {name!r} is declared (is its module imported by the plugin?)")
    try:
        json.dumps([args, kwargs])
    except TypeError as exc:
        raise TypeError(f"arguments of task {name!r} must be JSON-serialisable: {exc}") from None


def _send(celery_app: Any, name: str, args: tuple, kwargs: dict, options: dict) -> None:
    runner = getattr(celery_app, "learnsail_background", None)
    spec = DECLARED.get(name)
    if runner is not None and spec is not None and spec.background and celery_app.conf.task_always_eager:
        runner.submit(_run_in_background, celery_app, name, args, kwargs)
        return
    celery_app.tasks[name].apply_async(args, kwargs, **options)


def _run_in_background(celery_app: Any, name: str, args: tuple, kwargs: dict) -> None:
    try:
        celery_app.tasks[name].apply(args, kwargs)
    except Exception:  # the task logged its own failure; the thread goes on with the next
        log.exception("background task %s failed", name)


def start_background_runner(registry: Any) -> Any:
    """Run the ``background=True`` tasks of an embedded app (no broker) one
    at a time in a thread of this process (``learnsail serve`` calls it).
    Returns the executor.  A task cut short by a restart is lost like a
    killed worker's; a plugin's own sweeper requeues it."""
    from concurrent.futures import ThreadPoolExecutor

    celery_app = registry["learnsail.celery"]
    runner = getattr(celery_app, "learnsail_background", None)
    if runner is None:
        runner = celery_app.learnsail_background = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="learnsail-background")
    return runner


def enqueue(target: Any, name: str, *args: Any, countdown: float | None = None, tm: Any = None,
            **kwargs: Any) -> None:
    """Send the task ``name`` once the transaction of ``target`` commits.

    ``target`` is the request, a request's or task's session, a
    :class:`TaskContext`, or the registry (then ``tm`` or the thread's
    transaction).  The arguments are checked now: an unknown task or an
    argument that is not JSON-serialisable fails the caller, not the worker.
    """
    celery_app = celery_of(target)
    _check(celery_app, name, args, kwargs)
    options: dict[str, Any] = {}
    if countdown is not None:
        options["countdown"] = countdown
    on_commit(target, _send, celery_app, name, args, dict(kwargs), options, tm=tm, what=f"task {name}")


def send_now(registry: Any, name: str, *args: Any, **kwargs: Any) -> None:
    """Send the task ``name`` at once, outside any transaction (commands,
    the embedded scheduler).  Eager mode runs it before returning."""
    celery_app = registry["learnsail.celery"]
    _check(celery_app, name, args, kwargs)
    _send(celery_app, name, args, dict(kwargs), {})


# --- the embedded scheduler -----------------------------------------------------

class EmbeddedScheduler:
    """Runs the periodic tasks in-process when there is no broker (``make
    run``); with a broker, ``learnsail beat`` does it."""

    def __init__(self, registry: Any, tick: float = 1.0) -> None:
        from celery.schedules import schedule as interval

        self.registry = registry
        self.tick = tick
        self.entries = []
        for name, entry in registry["learnsail.periodic"].items():
            when = entry["schedule"]
            if not hasattr(when, "is_due"):
                when = interval(when)
            self.entries.append([name, entry, when, None])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> list[str]:
        """Run every entry that is due now; returns their names."""
        import datetime as dt

        ran = []
        now = dt.datetime.now(dt.timezone.utc)
        for item in self.entries:
            name, entry, when, last = item
            if last is None:  # first pass: start the clock, as celery beat does
                item[3] = now
                continue
            due, _ = when.is_due(last)
            if due:
                item[3] = now
                try:
                    send_now(self.registry, entry["task"], *entry["args"], **entry["kwargs"])
                except Exception:  # one failing entry must not stop the others
                    log.exception("periodic task %s failed", name)
                ran.append(name)
        return ran

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self.run_due()

    def start(self) -> "EmbeddedScheduler":
        self.run_due()
        self._thread = threading.Thread(target=self._loop, name="learnsail-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def is_embedded(registry: Any) -> bool:
    return not registry.settings.get("learnsail.broker_url")


# --- the commands ---------------------------------------------------------------

def run_worker(registry: Any, *, queues: str = "", concurrency: int = 0, pool: str = "prefork",
               loglevel: str = "INFO") -> int:
    """``learnsail worker``: consume ``queues`` (default: all) until stopped."""
    if is_embedded(registry):
        raise ConfigurationError("learnsail worker needs a broker: set learnsail.broker_url "
                                 "(LEARNSAIL_BROKER_URL), e.g. redis://localhost:6379/2. Without one, "
                                 "tasks already run inside the app process.")
    celery_app = registry["learnsail.celery"]
    chosen = [q.strip() for q in queues.split(",") if q.strip()] or queues_of(celery_app)
    argv = ["worker", f"--loglevel={loglevel}", f"--queues={','.join(chosen)}", f"--pool={pool}",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    celery_app.worker_main(argv)
    return 0


def run_beat(registry: Any, *, loglevel: str = "INFO") -> int:
    """``learnsail beat``: send the periodic tasks when they are due.  With
    no broker, run them in this process (the embedded scheduler)."""
    from learnsail.settings import data_dir

    if is_embedded(registry):
        log.info("no broker: running %d periodic task(s) in this process", len(registry["learnsail.periodic"]))
        scheduler = EmbeddedScheduler(registry).start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            scheduler.stop()
        return 0
    celery_app = registry["learnsail.celery"]
    schedule_file = data_dir(registry.settings) / "celerybeat-schedule"
    celery_app.Beat(loglevel=loglevel, schedule=str(schedule_file)).run()
    return 0


# --- core tasks ---------------------------------------------------------------

@task("core.purge_expired")
def purge_expired(ctx: TaskContext) -> dict[str, int]:
    """Delete expired refresh tokens, revocations and verification codes."""
    from learnsail.identity import codes, tokens

    result = {"tokens": tokens.purge_expired(ctx.session), "codes": codes.purge_expired(ctx.session)}
    log.info("purged expired rows: %s", result)
    return result


def periodic_tasks(settings: Mapping[str, Any]) -> list[Periodic]:
    return [Periodic("core.purge_expired", "core.purge_expired", every=3600)]


def includeme(config: Any) -> None:
    def register() -> None:
        # at commit: after every plugin's includeme imported its tasks
        config.registry["learnsail.celery"] = build_celery(config.registry)

    config.action("learnsail.tasks", register, order=10)
