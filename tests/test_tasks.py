"""Background tasks: sent after commit, one transaction per run, retries,
queues by name, periodic tasks -- eagerly in-process (the embedded default)
and on a real Celery worker over a real Redis broker."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
import transaction

from learnsail import tasks
from learnsail.identity.models import AuditEntry
from learnsail.tasks import Periodic, enqueue
from tests.support import tasks_plugin

ROOT = pathlib.Path(__file__).resolve().parents[1]


def build(tmp_path_factory: Any, database_url: str, extra_plugins: dict | None = None, **extra: Any) -> Any:
    import webtest

    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app
    from learnsail.plugins import Plugin, discover
    from learnsail.testing import isolated_environ

    installed = dict(discover())
    installed["tasktest"] = Plugin(info=tasks_plugin.PLUGIN, module=tasks_plugin)
    installed.update(extra_plugins or {})
    settings = {
        "learnsail.data_dir": str(tmp_path_factory.mktemp("tasks")),
        "learnsail.database_url": database_url,
        "learnsail.plugins": " ".join(["tasktest", *(extra_plugins or {})]),
        "learnsail.secret": "tasks-secret-tasks-secret-tasks-secret-1",
        "learnsail.log_level": "CRITICAL",
        **extra,
    }
    config = configure(settings, environ=isolated_environ(), installed=installed)
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    app = make_wsgi_app(config)
    app.registry["learnsail.test_settings"] = settings
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


def actions(app: Any) -> list[str]:
    engine = app.app.registry["learnsail.db_engine"]
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(AuditEntry.action).where(AuditEntry.target_type == "tasktest")
                                 .order_by(AuditEntry.id)))


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture(scope="module")
def eager(tmp_path_factory: Any, _database_maker: Any) -> Iterator[Any]:
    app = build(tmp_path_factory, _database_maker())
    yield app
    app.app.registry["learnsail.db_engine"].dispose()


# --- declaring ------------------------------------------------------------------

def test_task_names_give_the_queue_and_must_be_dotted():
    assert tasks.DECLARED["tasktest.record"].queue == "tasktest"
    assert tasks.DECLARED["slowq.slow"].queue == "slowq"
    assert tasks.DECLARED["core.purge_expired"].queue == "core"
    with pytest.raises(ValueError, match="must look like"):
        tasks.task("NoDots")(lambda ctx: None)


def test_a_second_function_cannot_take_a_declared_name():
    def impostor(ctx):
        return None

    with pytest.raises(ValueError, match="declared twice"):
        tasks.task("tasktest.record")(impostor)


def test_periodic_needs_exactly_one_schedule():
    with pytest.raises(ValueError, match="exactly one"):
        Periodic("x", "tasktest.record")
    with pytest.raises(ValueError, match="five fields"):
        Periodic("x", "tasktest.record", cron="* *")


def test_the_celery_app_routes_each_task_to_its_queue(eager):
    celery = eager.app.registry["learnsail.celery"]
    assert celery.conf.task_always_eager is True  # no broker: embedded
    assert celery.conf.task_acks_late is True and celery.conf.worker_prefetch_multiplier == 1
    assert celery.amqp.router.route({}, "slowq.slow")["queue"].name == "slowq"
    assert "tasktest" in tasks.queues_of(celery) and "core" in tasks.queues_of(celery)


# --- sending after commit (eager) ------------------------------------------------------

def test_a_task_runs_after_the_request_commits(eager):
    response = eager.post_json("/api/v1/tasktest/jobs", {"action": "after-commit"}, status=202)
    assert response.json == {"queued": "after-commit"}
    assert "after-commit" in actions(eager)


def test_a_failed_request_sends_nothing(eager):
    eager.post_json("/api/v1/tasktest/jobs", {"action": "never", "fail": True}, status=500)
    assert "never" not in actions(eager)


def test_enqueue_checks_the_name_and_the_arguments_at_once(eager):
    registry = eager.app.registry
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        with pytest.raises(LookupError, match="no task named"):
            enqueue(registry, "tasktest.missing", tm=tm)
        with pytest.raises(TypeError, match="JSON-serialisable"):
            enqueue(registry, "tasktest.record", object(), tm=tm)


def test_an_aborted_transaction_sends_nothing(eager):
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    enqueue(eager.app.registry, "tasktest.record", "aborted", tm=tm)
    tm.abort()
    assert "aborted" not in actions(eager)


def test_a_task_that_raises_rolls_back_its_own_work(eager):
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        enqueue(eager.app.registry, "tasktest.record_then_fail", "rolled-back", tm=tm)
    assert "rolled-back" not in actions(eager)


def test_transient_errors_are_retried(eager):
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        enqueue(eager.app.registry, "tasktest.flaky", "flaky-ok", 2, tm=tm)
    assert tasks_plugin.ATTEMPTS["flaky-ok"] == 3
    assert actions(eager).count("flaky-ok") == 1


def test_retries_stop_at_the_limit(eager):
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        enqueue(eager.app.registry, "tasktest.flaky", "flaky-never", 10, tm=tm)
    assert tasks_plugin.ATTEMPTS["flaky-never"] == 4  # the first run and max_retries=3
    assert "flaky-never" not in actions(eager)


def test_a_background_task_runs_in_learnsail_serves_thread_not_in_the_sender(tmp_path_factory, _database_maker):
    app = build(tmp_path_factory, _database_maker())
    registry = app.app.registry
    tasks_plugin.GATE.clear()
    # without learnsail serve's runner (commands, tests) it runs inline, as every task
    tasks_plugin.GATE.set()
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        enqueue(registry, "tasktest.long", "inline", tm=tm)
    assert "inline:MainThread" in actions(app)
    # with it, the commit returns at once and the task runs in the background thread
    tasks_plugin.GATE.clear()
    runner = tasks.start_background_runner(registry)
    try:
        assert tasks.start_background_runner(registry) is runner  # one per app
        with tm:
            enqueue(registry, "tasktest.long", "later", tm=tm)
            enqueue(registry, "tasktest.record", "at-once", tm=tm)  # not background: inline
        assert "at-once" in actions(app) and not any(a.startswith("later") for a in actions(app))
        tasks_plugin.GATE.set()
        assert wait_for(lambda: "later:learnsail-background" in actions(app))
    finally:
        tasks_plugin.GATE.set()
        runner.shutdown(wait=True)
        registry["learnsail.db_engine"].dispose()


def test_a_task_can_send_a_task_after_its_own_commit(eager):
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        enqueue(eager.app.registry, "tasktest.chain", "chained", tm=tm)
    found = actions(eager)
    assert found.index("chained:first") < found.index("chained:second")


def test_backoff_doubles_and_is_capped():
    for retries in range(12):
        assert 0 <= tasks.backoff(retries, 600) <= min(600, 2 ** retries)


# --- periodic tasks -------------------------------------------------------------------

def test_periodic_tasks_come_from_the_hook(eager):
    schedule = eager.app.registry["learnsail.periodic"]
    assert schedule["tasktest.tick"]["task"] == "tasktest.record"
    assert schedule["core.purge_expired"]["schedule"] == 3600
    assert eager.app.registry["learnsail.celery"].conf.beat_schedule == schedule


def test_the_embedded_scheduler_runs_due_tasks(eager):
    scheduler = tasks.EmbeddedScheduler(eager.app.registry)
    assert scheduler.run_due() == []  # the first pass starts the clocks
    time.sleep(0.25)
    assert scheduler.run_due() == ["tasktest.tick"]
    assert "tick" in actions(eager)


def test_a_periodic_task_must_name_a_declared_task(tmp_path_factory, _database_maker):
    import types

    from pyramid.exceptions import ConfigurationError

    from learnsail import hookimpl
    from learnsail.plugins import Plugin, PluginInfo

    @hookimpl
    def learnsail_periodic_tasks(settings):
        return [Periodic("badperiodic.tick", "badperiodic.undeclared", every=5)]

    module = types.ModuleType("badperiodic_plugin")
    module.learnsail_periodic_tasks = learnsail_periodic_tasks
    bad = Plugin(info=PluginInfo(name="badperiodic", version="1.0", migrations=None), module=module)
    with pytest.raises(ConfigurationError, match="badperiodic.undeclared"):
        build(tmp_path_factory, _database_maker(), extra_plugins={"badperiodic": bad})


def test_purge_expired_deletes_old_tokens_and_codes(eager):
    import datetime as dt

    from learnsail.identity.models import RevokedToken

    engine = eager.app.registry["learnsail.db_engine"]
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(sa.insert(RevokedToken).values(jti="old-jti", expires_at=past))
    tasks.send_now(eager.app.registry, "core.purge_expired")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(RevokedToken)
                           .where(RevokedToken.jti == "old-jti")) == 0


# --- a real worker on a real Redis broker ---------------------------------------------------

@pytest.fixture(scope="module")
def brokered(tmp_path_factory, _database_maker, redis_server) -> Iterator[Any]:
    app = build(tmp_path_factory, _database_maker(), **{
        "learnsail.broker_url": f"redis://{redis_server.host}:{redis_server.port}/5",
        "learnsail.task_visibility_timeout": "2",
    })
    yield app
    app.app.registry["learnsail.db_engine"].dispose()


@pytest.fixture(scope="module")
def worker(brokered) -> Iterator[Any]:
    from celery.contrib.testing.worker import start_worker

    celery = brokered.app.registry["learnsail.celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10,
                      queues=[q for q in tasks.queues_of(celery) if q != "slowq"]) as running:
        # slowq is left to the worker processes of the killed-worker test
        yield running


def test_with_a_broker_the_request_only_queues(brokered):
    celery = brokered.app.registry["learnsail.celery"]
    assert celery.conf.task_always_eager is False
    # no worker consumes the "parked" queue: the message waits in Redis
    with celery.connection_for_write() as conn:
        before = conn.default_channel.client.llen("tasktest")
    brokered.post_json("/api/v1/tasktest/jobs", {"action": "queued-only"}, status=202)
    with celery.connection_for_write() as conn:
        assert conn.default_channel.client.llen("tasktest") == before + 1
        conn.default_channel.client.delete("tasktest")
    assert "queued-only" not in actions(brokered)


def test_a_worker_runs_what_a_request_sent(brokered, worker):
    brokered.post_json("/api/v1/tasktest/jobs", {"action": "by-worker"}, status=202)
    assert wait_for(lambda: "by-worker" in actions(brokered))


def test_a_failed_request_sends_nothing_to_the_worker(brokered, worker):
    brokered.post_json("/api/v1/tasktest/jobs", {"action": "worker-never", "fail": True}, status=500)
    brokered.post_json("/api/v1/tasktest/jobs", {"action": "worker-after"}, status=202)
    assert wait_for(lambda: "worker-after" in actions(brokered))
    assert "worker-never" not in actions(brokered)


def test_the_worker_retries_transient_errors_with_backoff(brokered, worker):
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        enqueue(brokered.app.registry, "tasktest.flaky", "worker-flaky", 1, tm=tm)
    assert wait_for(lambda: "worker-flaky" in actions(brokered))
    assert tasks_plugin.ATTEMPTS["worker-flaky"] == 2


WORKER_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from learnsail.app import configure, make_wsgi_app
    from learnsail.plugins import Plugin, discover
    from learnsail.testing import isolated_environ
    from learnsail.tasks import run_worker
    from tests.support import tasks_plugin

    installed = dict(discover())
    installed["tasktest"] = Plugin(info=tasks_plugin.PLUGIN, module=tasks_plugin)
    config = configure({settings!r}, environ=isolated_environ(), installed=installed)
    app = make_wsgi_app(config)
    run_worker(app.registry, queues="slowq", pool="solo", loglevel="WARNING")
""")


def _start_worker_process(settings: dict, log: pathlib.Path) -> subprocess.Popen:
    script = WORKER_SCRIPT.format(root=str(ROOT), settings=settings)
    return subprocess.Popen([sys.executable, "-c", script], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_a_task_of_a_killed_worker_is_delivered_again(brokered, tmp_path):
    settings = dict(brokered.app.registry["learnsail.test_settings"])
    marker = tmp_path / "started"
    log = tmp_path / "worker.log"
    first = _start_worker_process(settings, log)
    try:
        tm = transaction.TransactionManager(explicit=True)
        with tm:
            enqueue(brokered.app.registry, "slowq.slow", str(marker), "redelivered", tm=tm)
        assert wait_for(marker.exists, 30), log.read_text()
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # mid-task: the message was never acknowledged
        first.wait()
    assert "redelivered" not in actions(brokered)
    second = _start_worker_process(settings, log)
    try:
        assert wait_for(lambda: "redelivered" in actions(brokered), 40), log.read_text()
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=20)


def test_learnsail_worker_refuses_to_start_without_a_broker(eager):
    from pyramid.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="learnsail.broker_url"):
        tasks.run_worker(eager.app.registry)
