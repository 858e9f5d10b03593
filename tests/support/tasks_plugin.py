"""A plugin used only by the core's tests of background tasks: it declares
tasks and a periodic task, and a service that sends them from a request."""

from __future__ import annotations

import os
import pathlib
import time

from marshmallow import fields

from learnsail import hookimpl
from learnsail.api import PUBLIC, Schema, Service
from learnsail.identity.audit import record
from learnsail.plugins import PluginInfo
from learnsail.tasks import Periodic, TransientError, enqueue, task

PLUGIN = PluginInfo(name="tasktest", version="1.0", migrations=None)

#: attempts per key of tasktest.flaky (the eager and thread-worker tests run in this process)
ATTEMPTS: dict[str, int] = {}


@task("tasktest.record")
def record_action(ctx, action: str) -> None:
    """Write an audit entry ``action`` in the task's own transaction."""
    record(ctx.session, action=action, target_type="tasktest")


@task("tasktest.record_then_fail")
def record_then_fail(ctx, action: str) -> None:
    record(ctx.session, action=action, target_type="tasktest")
    ctx.session.flush()
    raise ValueError("not transient: the entry must be rolled back and the task not retried")


@task("tasktest.flaky", max_retries=3)
def flaky(ctx, key: str, failures: int) -> None:
    """Fails with a transient error ``failures`` times, then records ``key``."""
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] <= failures:
        raise TransientError(f"attempt {ATTEMPTS[key]} of {key}")
    record(ctx.session, action=key, target_type="tasktest")


@task("tasktest.chain")
def chain(ctx, action: str) -> None:
    """A task that sends another one: it runs after this one commits."""
    record(ctx.session, action=action + ":first", target_type="tasktest")
    enqueue(ctx, "tasktest.record", action + ":second")


#: released by the test of background tasks
GATE = __import__("threading").Event()


@task("tasktest.long", background=True)
def long_task(ctx, action: str) -> None:
    """A long task: waits for :data:`GATE`, then records ``action``."""
    import threading

    GATE.wait(10)
    record(ctx.session, action=f"{action}:{threading.current_thread().name.split('_')[0]}",
           target_type="tasktest")


@task("slowq.slow")
def slow(ctx, marker: str, action: str) -> None:
    """First run: leave ``marker`` and hang (the test kills the worker).
    Later runs: record ``action`` at once."""
    path = pathlib.Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(120)
    record(ctx.session, action=action, target_type="tasktest")


class JobSchema(Schema):
    action = fields.String(required=True)
    fail = fields.Boolean(load_default=False)


jobs = Service(name="tasktest.jobs", path="/api/v1/tasktest/jobs", description="Send a test task")


@jobs.post(permission=PUBLIC, schema=JobSchema)
def send_job(request):
    """Queue tasktest.record; with ``fail`` the request then fails."""
    body = request.validated["body"]
    enqueue(request, "tasktest.record", body["action"])
    if body["fail"]:
        raise RuntimeError("the request fails after queuing a task")
    request.response.status = 202
    return {"queued": body["action"]}


@hookimpl
def learnsail_includeme(config):
    config.add_learnsail_service(jobs)


@hookimpl
def learnsail_periodic_tasks(settings):
    return [Periodic("tasktest.tick", "tasktest.record", every=0.2, args=("tick",))]
