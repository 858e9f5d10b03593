"""The order state machine, enforced in one place.

::

    pending ──▶ paid ──▶ refunding ──▶ refunded
       │                   │  ▲   └──▶ partially_refunded ──▶ refunding
       │                   ▼  │
       ├──▶ cancelled      paid (refund rejected or failed, nothing refunded before)
       └──▶ expired

:func:`transition` is the only way an order's status changes: it checks
the move against :data:`TRANSITIONS`, writes the immutable
:class:`~learnsail_payments.models.OrderEvent` (who, from, to, why, when)
and sets the status.  Assigning ``order.status`` anywhere else raises
:class:`InvalidTransition` (an attribute listener guards it), so a new
code path cannot skip the log or the rules.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail.errors import Conflict
from learnsail_payments.models import (CANCELLED, EXPIRED, PAID, PARTIALLY_REFUNDED, PENDING, REFUNDED,
                                       REFUNDING, Order, OrderEvent)

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PAID, CANCELLED, EXPIRED}),
    PAID: frozenset({REFUNDING}),
    REFUNDING: frozenset({PAID, PARTIALLY_REFUNDED, REFUNDED}),
    PARTIALLY_REFUNDED: frozenset({REFUNDING}),
    REFUNDED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}

#: who moved an order
USER, ADMIN, GATEWAY, SYSTEM = "user", "admin", "gateway", "system"


class InvalidTransition(Conflict):
    """The order cannot move from its status to the one asked (409)."""


def allowed(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def transition(session: Session, order: Order, to_status: str, *, actor_type: str, actor_id: int | None = None,
               reason: str | None = None) -> OrderEvent:
    """Move ``order`` to ``to_status`` and log it; :class:`InvalidTransition` otherwise."""
    current = order.status
    if not allowed(current, to_status):
        raise InvalidTransition(f"Order {order.order_no} is {current}; it cannot become {to_status}.",
                                {"status": current, "to": to_status})
    entry = OrderEvent(order_id=order.id, from_status=current, to_status=to_status, actor_type=actor_type,
                       actor_id=actor_id, reason=(reason or None) and reason[:255], created_at=utcnow())
    session.add(entry)
    order.__dict__["_next_status"] = to_status
    try:
        order.status = to_status
    finally:
        order.__dict__.pop("_next_status", None)
    return entry


def created(session: Session, order: Order, *, actor_id: int | None, reason: str | None = None) -> OrderEvent:
    """The first event of a new (flushed) order: None → pending."""
    entry = OrderEvent(order_id=order.id, from_status=None, to_status=order.status, actor_type=USER,
                       actor_id=actor_id, reason=reason, created_at=utcnow())
    session.add(entry)
    return entry


@event.listens_for(Order.status, "set")
def _guard_status(target: Any, value: str, oldvalue: Any, initiator: Any) -> None:
    """Only :func:`transition` may change a persisted order's status."""
    from sqlalchemy.orm.base import NO_VALUE, NEVER_SET
    from sqlalchemy import inspect

    if oldvalue in (NO_VALUE, NEVER_SET) or value == oldvalue:
        if oldvalue in (NO_VALUE, NEVER_SET) and inspect(target).persistent is False and value != PENDING:
            raise InvalidTransition(f"A new order starts {PENDING}, not {value}.")
        return
    if target.__dict__.get("_next_status") != value:
        raise InvalidTransition(f"Order status changes go through learnsail_payments.states.transition "
                                f"({oldvalue} -> {value}).")
