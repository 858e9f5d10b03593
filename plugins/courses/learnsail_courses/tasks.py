"""The plugin's background tasks."""

from __future__ import annotations

import logging

from learnsail.tasks import TaskContext, task

log = logging.getLogger("learnsail_courses")


@task("courses.flush_progress")
def flush_progress(ctx: TaskContext) -> int:
    """Write the buffered progress heartbeats of the epochs that are over
    (see learnsail_courses.heartbeat); periodic while buffering is on."""
    from learnsail_courses import heartbeat
    from learnsail_courses.settings import PROGRESS_BUFFER_SECONDS

    interval = int(ctx.settings.get(PROGRESS_BUFFER_SECONDS) or 0)
    if interval <= 0:
        return 0
    written = heartbeat.flush(ctx.session, ctx.registry["learnsail.cache"], interval)
    if written:
        log.info("flushed %d buffered progress heartbeats", written)
    return written
