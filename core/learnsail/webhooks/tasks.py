"""The webhook tasks: ``webhooks.deliver`` (one attempt of one delivery),
the periodic ``webhooks.dispatch`` (due deliveries whose message is late)
and the daily ``webhooks.purge``."""

from __future__ import annotations

import logging

from learnsail.tasks import TaskContext, task

log = logging.getLogger("learnsail.webhooks")


@task("webhooks.deliver")
def deliver(ctx: TaskContext, delivery_id: int) -> str | None:
    """POST one delivery to its endpoint, log the attempt, schedule a retry."""
    from learnsail.webhooks import services

    return services.deliver(ctx, int(delivery_id))


@task("webhooks.dispatch")
def dispatch(ctx: TaskContext) -> int:
    """Send the deliveries that are due (retries in embedded mode, lost messages)."""
    from learnsail.webhooks import services

    return services.dispatch(ctx)


@task("webhooks.purge")
def purge(ctx: TaskContext) -> int:
    """Delete finished events older than ``learnsail.webhooks_retention_days``."""
    from learnsail.webhooks import services

    days = int(ctx.settings["learnsail.webhooks_retention_days"])
    if days <= 0:
        return 0
    count = services.purge(ctx.session, days)
    log.info("purged %d webhook events older than %d days", count, days)
    return count
