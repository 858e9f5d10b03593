"""The notification tasks: ``notify.fanout`` (in-app rows for many
recipients, 1,000 per INSERT), ``notify.deliver`` (email and SMS) and the
periodic ``notify.purge``."""

from __future__ import annotations

import logging

from learnsail.tasks import TaskContext, task

log = logging.getLogger("learnsail.notifications")


@task("notify.fanout")
def fanout(ctx: TaskContext, type_name: str, title: str, content: str, related_type: str | None,
           related_id: int | None, user_ids: list[int]) -> int:
    """Write the in-app notifications of ``user_ids`` in batches of 1,000."""
    from learnsail.notifications.services import write_batch

    return write_batch(ctx, ctx.session, type_name, title, content, related_type, related_id,
                       [int(uid) for uid in user_ids])


@task("notify.deliver")
def deliver(ctx: TaskContext, type_name: str, title: str, content: str, targets: list) -> int:
    """Send a notification by email and SMS to the users who chose them."""
    from learnsail.notifications import services

    return services.deliver(ctx, type_name, title, content, targets)


@task("notify.purge")
def purge(ctx: TaskContext) -> int:
    """Delete read notifications older than ``learnsail.notifications_retention_days``."""
    from learnsail.notifications.services import purge_read

    days = int(ctx.settings["learnsail.notifications_retention_days"])
    if days <= 0:
        return 0
    count = purge_read(ctx.session, days)
    log.info("purged %d read notifications older than %d days", count, days)
    return count
