"""Orders: pricing through ``learnsail_product_quote``, creation (with a
coupon), cancellation, expiry, and the queries the views and tasks use.

The payments plugin knows no product: whoever answers the quote hook for
a ``product_type`` sells it (courses sells ``course``; this plugin itself
sells ``membership``).

At most one pending order exists per buyer and product (a unique
``pending_key``, cleared when the order leaves pending).  Ordering a
product again while one is pending returns that order, unchanged (200):
its price holds until it expires.  A coupon asked for then is applied to
it if it has none and no payment has started (the amount is fixed then);
to change its coupon, cancel it and order again.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from decimal import Decimal
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from learnsail.aftercommit import on_commit
from learnsail.db import utcnow
from learnsail.errors import Conflict, NotFound, ValidationFailed
from learnsail_payments import coupons, states
from learnsail_payments.money import MINIMUM, cents
from learnsail_payments.models import (CANCELLED, EXPIRED, PENDING, Order, OrderItem, PaymentAttempt)

log = logging.getLogger("learnsail_payments")


class NotPurchasable(Conflict):
    """The product exists but this buyer may not buy it (already enrolled,
    not on sale...): 409 with the seller's reason."""


def new_order_no(now: dt.datetime | None = None) -> str:
    """``YYYYmmddHHMMSS`` + 16 hex digits (64 random bits): unique, not
    guessable, and within WeChat's 32 characters."""
    return f"{(now or utcnow()):%Y%m%d%H%M%S}{secrets.token_hex(8)}"


def pending_key(user_id: int, product_type: str, product_id: int) -> str:
    return f"{user_id}:{product_type}:{product_id}"


def quote(hook: Any, session: Session, user: Any, product_type: str, product_id: int) -> dict:
    """The seller's quote, checked: 400 when nobody sells ``product_type``,
    404 when there is no such product."""
    answer = hook.learnsail_product_quote(kind=product_type, ref_id=int(product_id), user=user, session=session)
    if answer is None:
        raise ValidationFailed({"product_type": [f"Nothing is sold as {product_type!r} here."]})
    if answer.get("found") is False:
        raise NotFound(answer.get("reason") or f"No {product_type} with id {product_id}.")
    price = answer.get("price")
    if not isinstance(price, (Decimal, int, str)) or isinstance(price, bool):
        raise TypeError(f"the {product_type} quote must give its price as a Decimal, not {price!r}")
    return {**answer, "price": cents(price)}


def lock(session: Session, order_id: int) -> Order | None:
    """The order, its row locked until the transaction ends (SELECT ... FOR
    UPDATE; SQLite serialises writers instead), read afresh."""
    return session.scalar(sa.select(Order).where(Order.id == order_id).with_for_update()
                          .execution_options(populate_existing=True))


def find_by_no(session: Session, order_no: str) -> Order | None:
    return session.scalar(sa.select(Order).where(Order.order_no == order_no))


def lock_by_no(session: Session, order_no: str) -> Order | None:
    return session.scalar(sa.select(Order).where(Order.order_no == order_no).with_for_update()
                          .execution_options(populate_existing=True))


def get(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"No order with id {order_id}.")
    return order


def create_order(session: Session, hook: Any, user: Any, *, product_type: str, product_id: int,
                 coupon_id: int | None, ttl_minutes: int, default_currency: str = "CNY") -> tuple[Order, bool]:
    """A pending order for one product (and its item and first event), or
    the buyer's pending order for it: ``(order, created)``."""
    now = utcnow()
    existing = _pending_for(session, user.id, product_type, product_id)
    if existing is not None:
        return _reuse(session, hook, existing, user, coupon_id, ttl_minutes, default_currency, now)
    answer = quote(hook, session, user, product_type, product_id)
    if not answer.get("purchasable"):
        raise NotPurchasable(answer.get("reason") or "This product cannot be bought.",
                             {"product_type": product_type, "product_id": product_id})
    price = answer["price"]
    if price < MINIMUM:
        raise NotPurchasable("This product costs nothing: it cannot be ordered.",
                             {"product_type": product_type, "product_id": product_id})
    order = Order(order_no=new_order_no(now), user_id=user.id, product_type=product_type,
                  product_id=int(product_id), title=str(answer.get("title") or product_type)[:200],
                  image_url=(answer.get("image_url") or None), currency=answer.get("currency") or default_currency,
                  original_amount=price, discount_amount=Decimal("0.00"), amount=price, status=PENDING,
                  expires_at=now + dt.timedelta(minutes=ttl_minutes),
                  pending_key=pending_key(user.id, product_type, product_id), created_at=now, updated_at=now)
    order.items.append(OrderItem(product_type=product_type, product_id=int(product_id), title=order.title,
                                 unit_price=price, quantity=1, amount=price))
    try:
        with session.begin_nested():
            session.add(order)
            session.flush()
    except IntegrityError:
        # a concurrent request of the same buyer created it first
        existing = _pending_for(session, user.id, product_type, product_id)
        if existing is None:
            raise
        return _reuse(session, hook, existing, user, coupon_id, ttl_minutes, default_currency, now)
    states.created(session, order, actor_id=user.id)
    if coupon_id is not None:
        coupons.apply_to_order(session, order, coupon_id, user.id, now)
    session.flush()
    return order, True


def _pending_for(session: Session, user_id: int, product_type: str, product_id: int) -> Order | None:
    return session.scalar(sa.select(Order).where(
        Order.pending_key == pending_key(user_id, product_type, product_id)))


def _reuse(session: Session, hook: Any, existing: Order, user: Any, coupon_id: int | None, ttl_minutes: int,
           default_currency: str, now: dt.datetime) -> tuple[Order, bool]:
    order = lock(session, existing.id)
    if order is None or order.status != PENDING:  # it left pending meanwhile
        return create_order(session, hook, user, product_type=existing.product_type,
                            product_id=existing.product_id, coupon_id=coupon_id, ttl_minutes=ttl_minutes,
                            default_currency=default_currency)
    if order.expires_at <= now:
        expire(session, order, reason="expired (found when the product was ordered again)")
        session.flush()
        return create_order(session, hook, user, product_type=order.product_type, product_id=order.product_id,
                            coupon_id=coupon_id, ttl_minutes=ttl_minutes, default_currency=default_currency)
    if coupon_id is not None and order.coupon_id != coupon_id:
        if order.coupon_id is not None:
            raise Conflict(f"Your pending order {order.order_no} for this product already has another coupon; "
                           f"cancel it to order with this one.", {"order_id": order.id, "coupon_id": coupon_id})
        # as POST /coupons/{id}/use: not once a payment has started (its amount is fixed)
        coupons.use_on_order(session, order, coupon_id, user.id)
    return order, False


def started(session: Session, order: Order) -> bool:
    """Has a payment been started for the order (its amount is then fixed)?"""
    return session.scalar(sa.select(PaymentAttempt.id).where(PaymentAttempt.order_id == order.id).limit(1)) \
        is not None


def attempted_platforms(session: Session, order_ids: Iterable[int]) -> dict[int, list[str]]:
    ids = list(order_ids)
    found: dict[int, list[str]] = {}
    if ids:
        for order_id, platform in session.execute(sa.select(PaymentAttempt.order_id, PaymentAttempt.platform)
                                                  .where(PaymentAttempt.order_id.in_(ids))
                                                  .order_by(PaymentAttempt.id)):
            found.setdefault(order_id, []).append(platform)
    return found


def _leave_pending(session: Session, order: Order, to_status: str, actor_type: str, actor_id: int | None,
                   reason: str) -> None:
    states.transition(session, order, to_status, actor_type=actor_type, actor_id=actor_id, reason=reason)
    order.pending_key = None
    order.closed_at = utcnow()
    coupons.release(session, order)
    platforms = attempted_platforms(session, [order.id]).get(order.id, [])
    if platforms:
        on_commit(session, close_at_gateways, session.info.get("learnsail.registry"), order.order_no, platforms,
                  what=f"close {order.order_no} at {platforms}")


def cancel(session: Session, order: Order, *, actor_type: str, actor_id: int | None,
           reason: str | None = None) -> Order:
    """pending → cancelled; its coupon is released and the payments started
    are closed at their platforms after the commit.  409 otherwise."""
    locked = lock(session, order.id)
    if locked.status == PENDING and locked.expires_at <= utcnow():
        raise Conflict(f"Order {locked.order_no} has expired.", {"status": EXPIRED})
    if locked.status != PENDING:
        raise Conflict(f"Order {locked.order_no} is {locked.status}: only a pending order can be cancelled.",
                       {"status": locked.status})
    _leave_pending(session, locked, CANCELLED, actor_type, actor_id, reason or "cancelled")
    return locked


def expire(session: Session, order: Order, *, reason: str = "not paid in time") -> None:
    """pending → expired (the order is locked by the caller)."""
    _leave_pending(session, order, EXPIRED, states.SYSTEM, None, reason)


def expire_due(session: Session, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Expire the pending orders past their time (the periodic task)."""
    now = now or utcnow()
    ids = session.scalars(sa.select(Order.id).where(Order.status == PENDING, Order.expires_at <= now)
                          .order_by(Order.expires_at).limit(limit)).all()
    done = 0
    for order_id in ids:
        order = lock(session, order_id)
        if order is not None and order.status == PENDING and order.expires_at <= now:
            expire(session, order)
            done += 1
    return done


def close_at_gateways(registry: Any, order_no: str, platforms: list[str]) -> None:
    """After the commit: tell the platforms to close the unpaid payment
    (best effort; a late payment is still caught by the notification or
    reconciliation)."""
    from learnsail_payments.gateways import gateways_of
    from learnsail_payments.gateways.base import GatewayError

    gateways = gateways_of(registry) if registry is not None else {}
    for platform in platforms:
        gateway = gateways.get(platform)
        if gateway is None:
            continue
        try:
            gateway.close(order_no)
        except GatewayError as exc:
            log.warning("closing %s at %s failed: %s", order_no, platform, exc)


# --- queries ------------------------------------------------------------------------

def status_filter(stmt: sa.Select, status: str | None, now: dt.datetime | None = None) -> sa.Select:
    """Filter by the status a client sees: a pending order past its expiry
    is ``expired`` even before the periodic task sweeps it."""
    if not status:
        return stmt
    now = now or utcnow()
    if status == PENDING:
        return stmt.where(Order.status == PENDING, Order.expires_at > now)
    if status == EXPIRED:
        return stmt.where(sa.or_(Order.status == EXPIRED, sa.and_(Order.status == PENDING, Order.expires_at <= now)))
    return stmt.where(Order.status == status)


def of_user(user_id: int, status: str | None = None, product_type: str | None = None) -> sa.Select:
    stmt = sa.select(Order).where(Order.user_id == user_id)
    if product_type:
        stmt = stmt.where(Order.product_type == product_type)
    return status_filter(stmt, status).order_by(Order.created_at.desc(), Order.id.desc())


def search(*, status: str | None = None, user_id: int | None = None, product_type: str | None = None,
           product_id: int | None = None, platform: str | None = None, order_no: str | None = None,
           since: dt.datetime | None = None, until: dt.datetime | None = None) -> sa.Select:
    """Every order, filtered (the administrators' list)."""
    stmt = sa.select(Order)
    for column, value in ((Order.user_id, user_id), (Order.product_type, product_type),
                          (Order.product_id, product_id), (Order.platform, platform), (Order.order_no, order_no)):
        if value is not None and value != "":
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(Order.created_at >= since)
    if until is not None:
        stmt = stmt.where(Order.created_at < until)
    return status_filter(stmt, status).order_by(Order.created_at.desc(), Order.id.desc())
