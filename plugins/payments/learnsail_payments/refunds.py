"""Refunds (004): the buyer asks (with a reason, within the refund
window), an administrator approves or rejects; approval sends the refund
through the order's gateway.  A refund completes when the gateway says so
-- at once, or by a refund notification verified like a payment's -- and
then ``learnsail_order_refunded`` runs in that transaction (courses ends
the enrolment of a fully refunded course).

The order follows: paid → refunding while a refund is open, then refunded
(the whole amount is back), partially_refunded (some of it), or back to
where it was when the refund is rejected or fails.  ``refunded_amount``
is the sum of the completed refunds; one refund is open at a time.

Approving calls the gateway inside the transaction.  Should the commit
fail after the platform accepted, approving again is safe: the refund
number is the platforms' idempotency key.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from decimal import Decimal
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail.errors import APIError, Conflict, NotFound, SERVICE_UNAVAILABLE, ValidationFailed
from learnsail_payments import notices, orders, states
from learnsail_payments.gateways.base import GatewayError, Notification
from learnsail_payments.money import cents
from learnsail_payments.models import (FAILED, OPEN_REFUND_STATUSES, PAID, PARTIALLY_REFUNDED, PROCESSING,
                                       REFUNDED, REFUNDING, REJECTED, REQUESTED, SUCCEEDED, Order, Refund)

log = logging.getLogger("learnsail_payments.refunds")


class GatewayUnavailable(APIError):
    """The platform could not be reached or refused the call (503); nothing changed."""

    status = 503
    code = SERVICE_UNAVAILABLE
    default_message = "The payment platform is not available; try again later."


def new_refund_no(now: dt.datetime | None = None) -> str:
    return f"R{(now or utcnow()):%Y%m%d%H%M%S}{secrets.token_hex(8)}"


def get(session: Session, refund_id: int) -> Refund:
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise NotFound(f"No refund with id {refund_id}.")
    return refund


def of_order(session: Session, order_id: int) -> list[Refund]:
    return list(session.scalars(sa.select(Refund).where(Refund.order_id == order_id).order_by(Refund.id)))


def open_refund(session: Session, order: Order, *, amount: Decimal | None, reason: str | None,
                actor_type: str, actor_id: int | None, window_days: int | None) -> Refund:
    """A refund of ``amount`` (default: what is left) for a locked, paid
    order; ``window_days`` None for administrators (no window)."""
    now = utcnow()
    if order.status not in (PAID, PARTIALLY_REFUNDED):
        raise Conflict(f"Order {order.order_no} is {order.status}: only paid orders are refunded"
                       + (" (a refund is open already)." if order.status == REFUNDING else "."),
                       {"status": order.status})
    if window_days is not None and (window_days <= 0 or order.paid_at + dt.timedelta(days=window_days) < now):
        raise Conflict(f"Refunds can be asked for within {window_days} days of the payment; contact us instead.",
                       {"refund_window_days": window_days})
    left = order.amount - order.refunded_amount
    wanted = left if amount is None else cents(amount)
    if not Decimal("0") < wanted <= left:
        raise ValidationFailed({"amount": [f"Must be above 0 and at most {left} (what is left of the order)."]})
    refund = Refund(refund_no=new_refund_no(now), order_id=order.id, requested_by=actor_id, amount=wanted,
                    reason=(reason or None), status=REQUESTED, order_status_before=order.status,
                    created_at=now, updated_at=now)
    session.add(refund)
    states.transition(session, order, REFUNDING, actor_type=actor_type, actor_id=actor_id,
                      reason=f"refund of {wanted} asked" + (f": {reason}" if reason else ""))
    session.flush()
    return refund


def _locked(session: Session, refund: Refund) -> tuple[Refund, Order]:
    order = orders.lock(session, refund.order_id)
    session.refresh(refund)
    return refund, order


def approve(session: Session, hook: Any, gateways: Mapping[str, Any], refund: Refund, *, reviewer_id: int,
            note: str | None = None, notify_url: str | None = None) -> Refund:
    """Send an asked-for refund to the order's gateway (409 unless it is
    waiting for review)."""
    refund, order = _locked(session, refund)
    if refund.status != REQUESTED:
        raise Conflict(f"Refund {refund.refund_no} is {refund.status}: only requested refunds are approved.",
                       {"status": refund.status})
    gateway = gateways.get(order.platform or "")
    if gateway is None:
        raise Conflict(f"The order was paid through {order.platform}, which is not configured here: refund it "
                       f"at the platform and reject this request with a note.", {"platform": order.platform})
    try:
        result = gateway.refund(order.order_no, refund.refund_no, refund.amount, order.amount,
                                reason=refund.reason, notify_url=notify_url)
    except GatewayError as exc:
        if exc.transient:
            raise GatewayUnavailable(f"{gateway.name} could not be reached: {exc}",
                                     {"platform": gateway.name, "code": exc.code}) from None
        refund.reviewer_id, refund.review_note, refund.reviewed_at = reviewer_id, note, utcnow()
        fail(session, refund, order, f"{exc.code or 'refused'}: {exc}"[:255])
        return refund
    refund.reviewer_id, refund.review_note, refund.reviewed_at = reviewer_id, note, utcnow()
    refund.status = PROCESSING
    refund.gateway_refund_id = result.refund_id
    if result.status == SUCCEEDED:
        complete(session, hook, refund, order, actor_type=states.ADMIN, actor_id=reviewer_id)
    elif result.status == FAILED:
        fail(session, refund, order, "refused by the platform")
    return refund


def reject(session: Session, refund: Refund, *, reviewer_id: int, note: str | None) -> Refund:
    refund, order = _locked(session, refund)
    if refund.status != REQUESTED:
        raise Conflict(f"Refund {refund.refund_no} is {refund.status}: only requested refunds are rejected.",
                       {"status": refund.status})
    refund.status = REJECTED
    refund.reviewer_id, refund.review_note, refund.reviewed_at = reviewer_id, note, utcnow()
    states.transition(session, order, refund.order_status_before, actor_type=states.ADMIN, actor_id=reviewer_id,
                      reason="refund rejected" + (f": {note}" if note else ""))
    notices.refund_rejected(session, order, refund)
    return refund


def complete(session: Session, hook: Any, refund: Refund, order: Order, *, actor_type: str,
             actor_id: int | None = None) -> None:
    """The money went back: totals, the order's status, the hook."""
    refund.status = SUCCEEDED
    refund.completed_at = utcnow()
    order.refunded_amount = order.refunded_amount + refund.amount
    to = REFUNDED if order.refunded_amount >= order.amount else PARTIALLY_REFUNDED
    states.transition(session, order, to, actor_type=actor_type, actor_id=actor_id,
                      reason=f"refund {refund.refund_no} of {refund.amount} completed")
    session.flush()
    hook.learnsail_order_refunded(order=order, session=session)
    notices.order_refunded(session, order, refund)


def fail(session: Session, refund: Refund, order: Order, why: str) -> None:
    refund.status = FAILED
    refund.failure_reason = why
    states.transition(session, order, refund.order_status_before, actor_type=states.SYSTEM,
                      reason=f"refund {refund.refund_no} failed: {why}")
    log.warning("refund %s of order %s failed: %s", refund.refund_no, order.order_no, why)


def apply_notification(session: Session, hook: Any, gateway: Any, note: Notification) -> Any:
    """A verified refund notification (its nonce already recorded).  Its
    amount is the refund's, or the order's refunded total with it (Alipay's
    ``refund_fee``); a notification without our refund number is for the
    order's latest refund."""
    from learnsail_payments.callbacks import NotificationRejected, Outcome

    if note.refund_no:
        refund = session.scalar(sa.select(Refund).where(Refund.refund_no == note.refund_no))
    else:
        refund = session.scalar(sa.select(Refund).join(Order, Order.id == Refund.order_id)
                                .where(Order.order_no == note.order_no,
                                       Refund.status.in_((PROCESSING, SUCCEEDED)))
                                .order_by(Refund.id.desc()).limit(1))
    if refund is None:
        raise NotificationRejected("unknown_refund", "No refund has this number.")
    refund, order = _locked(session, refund)
    if order.order_no != note.order_no:
        raise NotificationRejected("unknown_refund", "The refund is not one of this order's.")
    before = order.refunded_amount - (refund.amount if refund.status == SUCCEEDED else Decimal("0"))
    if cents(note.amount) not in (refund.amount, before + refund.amount):
        raise NotificationRejected("wrong_amount", "The amount is not the refund's.")
    if refund.status == PROCESSING and note.status == SUCCEEDED:
        refund.gateway_refund_id = refund.gateway_refund_id or note.refund_id
        complete(session, hook, refund, order, actor_type=states.GATEWAY)
        return Outcome("refund", order, changed=True)
    if refund.status == PROCESSING and note.status == FAILED:
        fail(session, refund, order, "the platform says the refund failed")
        return Outcome("refund", order, changed=True)
    if refund.status != note.status and refund.status not in OPEN_REFUND_STATUSES:
        log.warning("refund %s is %s here but %s says %s", refund.refund_no, refund.status, gateway.name,
                    note.status)
    return Outcome("refund", order, duplicate=True)


def queue(status: str | None = None) -> sa.Select:
    """Refunds with their order's number, buyer and platform, newest first."""
    stmt = sa.select(Refund, Order.order_no, Order.user_id, Order.platform).join(Order, Order.id == Refund.order_id)
    if status:
        stmt = stmt.where(Refund.status == status)
    return stmt.order_by(Refund.created_at.desc(), Refund.id.desc())
