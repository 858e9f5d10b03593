"""Notifications from the platforms, and settling a payment.

:func:`handle_notification` is the one path every payment and refund
notification takes -- WeChat Pay's and Alipay's POSTed to
``/api/v1/pay/callback/{platform}``, and the sandbox's, made when a buyer
confirms a sandbox payment:

1. the adapter verifies, then reads, the notification
   (``parse_notification``: signature, certificate serial, timestamp
   window, decryption);
2. the merchant and app it names must be the ones configured;
3. its nonce is recorded in ``payments_notification_nonces`` (unique per
   platform, in this transaction): a replay is refused -- except on a
   platform that resends an unacknowledged notification unchanged (Alipay,
   ``Gateway.resends_same_nonce``), where the repeat of an applied
   notification is acknowledged and changes nothing;
4. the order is locked (``SELECT ... FOR UPDATE``); amount and currency
   must be the order's;
5. pending → paid, exactly once (:func:`settle_payment`), which spends the
   coupon and fulfils the order through ``learnsail_order_paid`` -- all in
   this transaction.  A notification for an order already paid is a
   duplicate: success, nothing changes.  One for an order that expired or
   was cancelled is recorded for reconciliation (paid at the gateway, not
   here).

Any refusal raises :class:`NotificationRejected` with a reason word; the
view answers the platform's failure form (the platform retries) and the
transaction is rolled back, so a refused notification changes nothing.
Success is acknowledged only once the transaction has committed (see
``views/callbacks.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from typing import Any, Mapping

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail_payments import coupons, notices, orders, reconciliation, states
from learnsail_payments.gateways.base import Gateway, Notification, VerificationFailed
from learnsail_payments.money import cents
from learnsail_payments.models import PAID, PAID_AT_GATEWAY_ONLY, PAID_STATUSES, PENDING, NotificationNonce, Order

log = logging.getLogger("learnsail_payments.callbacks")


class NotificationRejected(Exception):
    """A notification was refused.  ``reason`` is a short word safe to
    answer (``bad_signature``, ``stale_timestamp``, ``replayed_nonce``,
    ``wrong_amount``, ``unknown_order``...); the message never holds a
    secret."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclasses.dataclass
class Outcome:
    """What a notification did: ``changed`` when it moved an order or a
    refund, ``duplicate`` when it repeated what was known, ``recorded``
    when it was kept for reconciliation."""

    kind: str
    order: Order | None
    changed: bool = False
    duplicate: bool = False
    recorded: bool = False


def handle_notification(session: Session, hook: Any, gateway: Gateway, headers: Mapping[str, str],
                        body: bytes) -> Outcome:
    try:
        note = gateway.parse_notification(headers, body)
    except VerificationFailed as exc:
        raise NotificationRejected(exc.reason, str(exc)) from None
    if gateway.merchant_id and note.merchant_id != gateway.merchant_id:
        raise NotificationRejected("wrong_merchant", "The notification names another merchant.")
    if gateway.app_id and note.app_id != gateway.app_id:
        raise NotificationRejected("wrong_app", "The notification names another app.")
    try:
        record_nonce(session, gateway.name, note.nonce or "sha256:" + hashlib.sha256(body).hexdigest())
    except NotificationRejected:
        if not gateway.resends_same_nonce:
            raise
        # the platform resending what it was told too late was applied: its
        # nonce is recorded only with the change it made
        log.info("%s resent notification %s for order %s: already applied", gateway.name, note.nonce,
                 note.order_no)
        return Outcome(note.kind, orders.find_by_no(session, note.order_no), duplicate=True)
    if note.kind == "payment":
        return _payment(session, hook, gateway, note)
    if note.kind == "refund":
        from learnsail_payments import refunds

        return refunds.apply_notification(session, hook, gateway, note)
    raise NotificationRejected("malformed", f"Unknown notification kind {note.kind!r}.")


def record_nonce(session: Session, platform: str, nonce: str) -> None:
    """Accept ``nonce`` once per platform; a second time is a replay."""
    try:
        with session.begin_nested():
            session.add(NotificationNonce(platform=platform, nonce=nonce[:128], created_at=utcnow()))
            session.flush()
    except IntegrityError:
        raise NotificationRejected("replayed_nonce", "This notification was received before.") from None


def _payment(session: Session, hook: Any, gateway: Gateway, note: Notification) -> Outcome:
    order = orders.lock_by_no(session, note.order_no)
    if order is None:
        raise NotificationRejected("unknown_order", "No order has this number.")
    if note.currency != order.currency:
        raise NotificationRejected("wrong_currency", "The currency is not the order's.")
    if cents(note.amount) != order.amount:
        raise NotificationRejected("wrong_amount", "The amount is not the order's.")
    if note.status != "paid":  # a closed or still pending payment: nothing to settle
        return Outcome("payment", order)
    if order.status == PENDING:
        settle_payment(session, hook, order, platform=gateway.name, transaction_id=note.transaction_id,
                       paid_at=note.paid_at, actor_type=states.GATEWAY,
                       reason=f"{gateway.name} notification")
        return Outcome("payment", order, changed=True)
    if order.status in PAID_STATUSES:
        if (order.platform, order.transaction_id) != (gateway.name, note.transaction_id) and note.transaction_id:
            # paid a second time (another platform, another transaction): the money must go back
            recorded = reconciliation.record(
                session, order, gateway.name, PAID_AT_GATEWAY_ONLY, source="notification",
                gateway_status="paid", gateway_amount=cents(note.amount), transaction_id=note.transaction_id,
                detail=f"a second payment of an order already paid through {order.platform}")
            return Outcome("payment", order, recorded=recorded)
        return Outcome("payment", order, duplicate=True)
    # expired or cancelled here, paid at the platform: keep it for the administrators
    reconciliation.record(session, order, gateway.name, PAID_AT_GATEWAY_ONLY, source="notification",
                          gateway_status="paid", gateway_amount=cents(note.amount),
                          transaction_id=note.transaction_id,
                          detail=f"paid at {gateway.name} after the order was {order.status}")
    log.warning("order %s is %s but %s says it was paid (%s): recorded for reconciliation", order.order_no,
                order.status, gateway.name, note.transaction_id)
    return Outcome("payment", order, recorded=True)


def settle_payment(session: Session, hook: Any, order: Order, *, platform: str, transaction_id: str | None,
                   paid_at: dt.datetime | None, actor_type: str, reason: str) -> Order:
    """pending → paid for a locked order (a notification or
    reconciliation): spend the coupon, fulfil through
    ``learnsail_order_paid`` in this transaction, notify the buyer."""
    now = utcnow()
    states.transition(session, order, PAID, actor_type=actor_type, reason=reason)
    order.platform = platform
    order.transaction_id = transaction_id
    order.paid_at = paid_at or now
    order.pending_key = None
    if actor_type != states.GATEWAY:
        order.reconciled_at = now
    coupons.spend(session, order, now)
    session.flush()
    hook.learnsail_order_paid(order=order, session=session)
    notices.order_paid(session, order)
    return order

