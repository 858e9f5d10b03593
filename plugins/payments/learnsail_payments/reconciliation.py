"""Reconciliation: the gateways' books against ours.

:func:`reconcile` (the periodic task ``payments.reconcile``) asks the
gateway about

- orders still pending some minutes after a payment was started: those
  the platform says are paid are settled through the same
  :func:`~learnsail_payments.callbacks.settle_payment` as a notification
  (the cure for "paid but not enrolled" when a notification was lost);
- orders that expired or were cancelled after a payment was started: paid
  there means money to give back (a finding ``paid_at_gateway_only``);
- recently paid orders, once each: unknown or unpaid there is a finding
  ``paid_here_only``; another amount ``amount_mismatch``.

Findings (:class:`~learnsail_payments.models.Discrepancy`) are listed for
administrators (``GET /api/v1/admin/payments/discrepancies``) until they
resolve them.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail.errors import Conflict, NotFound
from learnsail_payments.money import cents
from learnsail_payments.models import (AMOUNT_MISMATCH, CANCELLED, EXPIRED, PAID_AT_GATEWAY_ONLY, PAID_HERE_ONLY,
                                       PAID_STATUSES, PENDING, Discrepancy, Order, PaymentAttempt)
from learnsail_payments.settings import RECONCILE_AFTER_MINUTES, RECONCILE_LOOKBACK_HOURS

log = logging.getLogger("learnsail_payments.reconciliation")

BATCH = 200


def record(session: Session, order: Order | None, platform: str, kind: str, *, source: str,
           order_no: str | None = None, gateway_status: str | None = None, gateway_amount: Decimal | None = None,
           transaction_id: str | None = None, detail: str | None = None) -> bool:
    """Keep a finding (once per order, platform and kind; a repeat updates
    an unresolved one).  True when a new finding was written."""
    number = order.order_no if order is not None else order_no
    existing = session.scalar(sa.select(Discrepancy).where(Discrepancy.order_no == number,
                                                           Discrepancy.platform == platform,
                                                           Discrepancy.kind == kind))
    if existing is not None:
        if existing.resolved_at is None:
            existing.gateway_status, existing.detail = gateway_status, detail
            existing.order_status = order.status if order is not None else None
        return False
    try:
        with session.begin_nested():
            session.add(Discrepancy(
                order_id=order.id if order is not None else None, order_no=number, platform=platform, kind=kind,
                order_status=order.status if order is not None else None, gateway_status=gateway_status,
                amount=order.amount if order is not None else None, gateway_amount=gateway_amount,
                transaction_id=transaction_id, detail=(detail or "")[:500] or None, source=source,
                detected_at=utcnow()))
            session.flush()
    except IntegrityError:  # recorded by a racing request
        return False
    return True


def reconcile(session: Session, hook: Any, gateways: Mapping[str, Any], settings: Mapping[str, Any],
              now: dt.datetime | None = None) -> dict[str, int]:
    """One pass over the orders to check; returns what it did."""
    from learnsail_payments import callbacks, orders, states
    from learnsail_payments.gateways.base import GatewayError

    now = now or utcnow()
    quiet = now - dt.timedelta(minutes=int(settings.get(RECONCILE_AFTER_MINUTES, 5)))
    since = now - dt.timedelta(hours=int(settings.get(RECONCILE_LOOKBACK_HOURS, 48)))
    summary = {"checked": 0, "settled": 0, "findings": 0, "errors": 0}

    def ask(platform: str, order_no: str) -> Any:
        gateway = gateways.get(platform)
        if gateway is None:
            return None
        try:
            summary["checked"] += 1
            return gateway.query(order_no)
        except GatewayError as exc:
            summary["errors"] += 1
            log.warning("reconciliation: %s could not be asked about %s: %s", platform, order_no, exc)
            return None

    # 1. pending after a payment started: settle what the platform says is paid
    pending = session.execute(
        sa.select(Order.id, PaymentAttempt.platform).join(PaymentAttempt, PaymentAttempt.order_id == Order.id)
        .where(Order.status == PENDING, PaymentAttempt.last_started_at <= quiet, Order.created_at >= since)
        .order_by(Order.id).limit(BATCH)).all()
    for order_id, platform in pending:
        order = session.get(Order, order_id)
        result = ask(platform, order.order_no)
        if result is None or result.status != "paid":
            continue
        order = orders.lock(session, order_id)
        if order.status != PENDING:
            continue
        if result.amount is not None and cents(result.amount) != order.amount or \
                (result.currency and result.currency != order.currency):
            summary["findings"] += record(session, order, platform, AMOUNT_MISMATCH, source="reconciliation",
                                          gateway_status=result.status, gateway_amount=result.amount,
                                          transaction_id=result.transaction_id,
                                          detail="paid at the platform with another amount or currency")
            continue
        try:
            # one order whose fulfilment fails must not hold back the others
            with session.begin_nested():
                callbacks.settle_payment(session, hook, order, platform=platform,
                                         transaction_id=result.transaction_id, paid_at=result.paid_at,
                                         actor_type=states.SYSTEM,
                                         reason=f"reconciliation: {platform} says it was paid")
        except Exception:
            summary["errors"] += 1
            log.exception("reconciliation could not settle %s (paid at %s); it is retried next time",
                          order.order_no, platform)
            session.expire(order)
            continue
        summary["settled"] += 1
        log.info("reconciliation settled %s, paid at %s", order.order_no, platform)

    # 2. closed here after a payment started: was it paid there?
    closed = session.execute(
        sa.select(Order.id, PaymentAttempt.platform).join(PaymentAttempt, PaymentAttempt.order_id == Order.id)
        .where(Order.status.in_((EXPIRED, CANCELLED)), Order.reconciled_at.is_(None), Order.closed_at >= since,
               Order.closed_at <= quiet)
        .order_by(Order.id).limit(BATCH)).all()
    checked_closed: set[int] = set()
    for order_id, platform in closed:
        order = session.get(Order, order_id)
        result = ask(platform, order.order_no)
        if result is None:
            continue
        checked_closed.add(order_id)
        if result.status in ("paid", "refunded"):
            summary["findings"] += record(session, order, platform, PAID_AT_GATEWAY_ONLY, source="reconciliation",
                                          gateway_status=result.status, gateway_amount=result.amount,
                                          transaction_id=result.transaction_id,
                                          detail=f"paid at {platform}, {order.status} here")
    for order_id in checked_closed:
        session.get(Order, order_id).reconciled_at = now

    # 3. paid here, once each: is the platform of the same opinion?
    paid = session.scalars(
        sa.select(Order).where(Order.status.in_(PAID_STATUSES), Order.platform.is_not(None),
                               Order.reconciled_at.is_(None), Order.paid_at >= since, Order.paid_at <= quiet)
        .order_by(Order.id).limit(BATCH)).all()
    for order in paid:
        result = ask(order.platform, order.order_no)
        if result is None:
            continue
        order.reconciled_at = now
        if result.status not in ("paid", "refunded"):
            summary["findings"] += record(session, order, order.platform, PAID_HERE_ONLY, source="reconciliation",
                                          gateway_status=result.status, transaction_id=order.transaction_id,
                                          detail=f"paid here, {result.status} at {order.platform}")
        elif result.amount is not None and cents(result.amount) != order.amount:
            summary["findings"] += record(session, order, order.platform, AMOUNT_MISMATCH, source="reconciliation",
                                          gateway_status=result.status, gateway_amount=result.amount,
                                          transaction_id=result.transaction_id,
                                          detail=f"paid {order.amount} here, {result.amount} at {order.platform}")
    return summary


def findings(resolved: bool | None = None, kind: str | None = None) -> sa.Select:
    stmt = sa.select(Discrepancy)
    if resolved is not None:
        stmt = stmt.where(Discrepancy.resolved_at.is_not(None) if resolved else Discrepancy.resolved_at.is_(None))
    if kind:
        stmt = stmt.where(Discrepancy.kind == kind)
    return stmt.order_by(Discrepancy.detected_at.desc(), Discrepancy.id.desc())


def resolve(session: Session, discrepancy_id: int, admin_id: int, note: str) -> Discrepancy:
    found = session.get(Discrepancy, discrepancy_id)
    if found is None:
        raise NotFound(f"No discrepancy with id {discrepancy_id}.")
    if found.resolved_at is not None:
        raise Conflict("This discrepancy is resolved already.", {"resolved_at": found.resolved_at.isoformat()})
    found.resolved_at, found.resolved_by, found.resolution_note = utcnow(), admin_id, note
    return found
