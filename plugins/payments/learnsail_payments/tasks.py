"""The plugin's background tasks (periodic: see plugin.learnsail_periodic_tasks)."""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from learnsail.db import utcnow
from learnsail.tasks import TaskContext, task

log = logging.getLogger("learnsail_payments")


@task("payments.expire_orders")
def expire_orders(ctx: TaskContext) -> int:
    """Expire the pending orders past learnsail.payments.order_ttl_minutes
    (their coupons are released, their payments closed at the platforms)."""
    from learnsail_payments.orders import expire_due

    done = expire_due(ctx.session)
    if done:
        log.info("expired %d unpaid orders", done)
    return done


@task("payments.reconcile")
def reconcile(ctx: TaskContext) -> dict:
    """Ask the gateways about unsettled and recently paid orders; settle
    what was paid, record what disagrees (see learnsail_payments.reconciliation)."""
    from learnsail_payments.gateways import gateways_of
    from learnsail_payments.reconciliation import reconcile as run

    summary = run(ctx.session, ctx.registry["learnsail.pm"].hook, gateways_of(ctx.registry), ctx.settings)
    if summary["settled"] or summary["findings"]:
        log.warning("reconciliation: %s", summary)
    return summary


@task("payments.purge_nonces")
def purge_nonces(ctx: TaskContext) -> int:
    """Delete notification nonces older than learnsail.payments.nonce_retention_days."""
    from learnsail_payments.models import NotificationNonce
    from learnsail_payments.settings import NONCE_RETENTION_DAYS

    cutoff = utcnow() - dt.timedelta(days=int(ctx.settings.get(NONCE_RETENTION_DAYS, 30)))
    return ctx.session.execute(sa.delete(NotificationNonce).where(NotificationNonce.created_at < cutoff)).rowcount
