"""What the plugin tells people (notifications, declared in plugin.py)
and other systems (webhook events): written in the transaction of the
change, delivered after it commits."""

from __future__ import annotations

from typing import Any

from learnsail.notifications import NotificationType, notify
from learnsail.webhooks import emit

ORDER_PAID = "payments.order_paid"
ORDER_REFUNDED = "payments.order_refunded"
REFUND_REJECTED = "payments.refund_rejected"

TYPES = [
    NotificationType(ORDER_PAID, "Your payment for an order was received.", ("in_app", "email")),
    NotificationType(ORDER_REFUNDED, "A refund of one of your orders was paid back.", ("in_app", "email")),
    NotificationType(REFUND_REJECTED, "A refund you asked for was not accepted.", ("in_app", "email")),
]

#: webhook event types (learnsail_webhook_events)
EVENT_PAID = "payments.order_paid"
EVENT_REFUNDED = "payments.order_refunded"
EVENTS = {
    EVENT_PAID: "An order was paid. Data: id, order_no, user_id, product_type, product_id, title, amount "
                "(string, yuan), currency, platform, paid_at.",
    EVENT_REFUNDED: "A refund of an order was completed. Data: id, order_no, user_id, product_type, product_id, "
                    "status (refunded or partially_refunded), refund_no, refund_amount and refunded_amount "
                    "(strings, yuan), currency.",
}


def _order_data(order: Any) -> dict:
    return {"id": order.id, "order_no": order.order_no, "user_id": order.user_id,
            "product_type": order.product_type, "product_id": order.product_id, "title": order.title,
            "amount": str(order.amount), "currency": order.currency}


def order_paid(target: Any, order: Any) -> None:
    notify(target, order.user_id, ORDER_PAID, f"Payment received: {order.title}"[:200],
           f"We received {order.amount} {order.currency} for order {order.order_no}.", "payments.order", order.id)
    emit(target, EVENT_PAID, {**_order_data(order), "platform": order.platform,
                              "paid_at": order.paid_at.isoformat() if order.paid_at else None})


def order_refunded(target: Any, order: Any, refund: Any) -> None:
    notify(target, order.user_id, ORDER_REFUNDED, f"Refund paid: {order.title}"[:200],
           f"{refund.amount} {order.currency} of order {order.order_no} is on its way back to you.",
           "payments.order", order.id)
    emit(target, EVENT_REFUNDED, {**_order_data(order), "status": order.status, "refund_no": refund.refund_no,
                                  "refund_amount": str(refund.amount),
                                  "refunded_amount": str(order.refunded_amount)})


def refund_rejected(target: Any, order: Any, refund: Any) -> None:
    note = f" {refund.review_note}" if refund.review_note else ""
    notify(target, order.user_id, REFUND_REJECTED, f"Refund not accepted: {order.title}"[:200],
           f"Your refund request for order {order.order_no} was not accepted.{note}", "payments.order", order.id)
