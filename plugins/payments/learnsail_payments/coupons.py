"""Coupons: what they take off, who may use them, and their copies'
life (available → reserved by a pending order → used when it is paid, or
released again when it expires or is cancelled).

Never spent twice, whatever the concurrency: every step is a conditional
UPDATE whose row count says whether this request won (``... WHERE status =
'available'``, ``... WHERE claimed_count < total_quantity``), and a user's
copies are numbered under a unique key, so two racing claims cannot both
take the last one.  The database's row lock serialises the racers; the
losers see the winner's committed row and get 409.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from decimal import Decimal
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from learnsail.db import utcnow
from learnsail.errors import Conflict, NotFound, ValidationFailed
from learnsail.identity.models import User
from learnsail_payments.money import MINIMUM, ZERO, cents
from learnsail_payments.models import (AVAILABLE, FIXED, PENDING, PERCENT, RESERVED, SCOPE_ALL, SCOPE_PRODUCTS,
                                       SCOPE_TYPE, THRESHOLD, USED, Coupon, CouponProduct, Order, UserCoupon)

log = logging.getLogger("learnsail_payments")


class CouponUnusable(Conflict):
    """The coupon exists but cannot be used here (409, with the reason)."""


# --- what a coupon takes off ------------------------------------------------------

def applies_to(coupon: Coupon, product_type: str, product_id: int) -> bool:
    if coupon.scope == SCOPE_ALL:
        return True
    if coupon.scope == SCOPE_TYPE:
        return coupon.scope_product_type == product_type
    return any(p.product_type == product_type and p.product_id == int(product_id) for p in coupon.products)


def discount_for(coupon: Coupon, price: Decimal) -> Decimal:
    """What ``coupon`` takes off ``price``: the fixed amount, or the
    percentage (half up to the cent) capped at max_discount; never so much
    that less than 0.01 is left to pay."""
    if coupon.type == PERCENT:
        discount = cents(price * Decimal(coupon.discount_percent or 0) / 100)
        if coupon.max_discount is not None:
            discount = min(discount, coupon.max_discount)
    else:
        discount = coupon.discount_amount or ZERO
    return max(ZERO, min(cents(discount), price - MINIMUM))


def unusable_reason(coupon: Coupon, price: Decimal | None, product_type: str | None, product_id: int | None,
                    now: dt.datetime) -> str | None:
    """Why ``coupon`` cannot be used on that product now (None: it can)."""
    if coupon.deleted_at is not None or not coupon.is_active:
        return "This coupon is no longer offered."
    if now < coupon.start_time:
        return f"This coupon is valid from {coupon.start_time:%Y-%m-%d %H:%M} UTC."
    if now >= coupon.end_time:
        return f"This coupon expired at {coupon.end_time:%Y-%m-%d %H:%M} UTC."
    if product_type is not None and not applies_to(coupon, product_type, product_id or 0):
        return "This coupon does not apply to this product."
    if price is not None and price < coupon.min_order_amount:
        return f"This coupon applies to orders of {coupon.min_order_amount} or more."
    return None


# --- a copy's life -------------------------------------------------------------------

def load(session: Session, coupon_id: int) -> Coupon | None:
    return session.scalar(sa.select(Coupon).where(Coupon.id == coupon_id).options(selectinload(Coupon.products)))


def visible_to(session: Session, coupon_id: int, user_id: int) -> Coupon:
    """The coupon if the user may know of it: public, or issued to them (404 otherwise)."""
    coupon = load(session, coupon_id)
    if coupon is not None and coupon.deleted_at is None and (coupon.is_public or session.scalar(
            sa.select(UserCoupon.id).where(UserCoupon.coupon_id == coupon.id, UserCoupon.user_id == user_id)
            .limit(1)) is not None):
        return coupon
    raise NotFound(f"No coupon with id {coupon_id}.")


def reserve(session: Session, coupon: Coupon, user_id: int, order: Order) -> int:
    """Reserve one of the user's copies for ``order`` (claiming a new copy
    of a public coupon when they hold none unused): the copy's id."""
    free = session.scalars(sa.select(UserCoupon.id).where(
        UserCoupon.coupon_id == coupon.id, UserCoupon.user_id == user_id, UserCoupon.status == AVAILABLE)
        .order_by(UserCoupon.id)).all()
    for copy_id in free:
        won = session.execute(sa.update(UserCoupon).where(UserCoupon.id == copy_id, UserCoupon.status == AVAILABLE)
                              .values(status=RESERVED, order_id=order.id)
                              .execution_options(synchronize_session=False)).rowcount
        if won == 1:
            return copy_id
    held = session.execute(sa.select(UserCoupon.status, UserCoupon.order_id).where(
        UserCoupon.coupon_id == coupon.id, UserCoupon.user_id == user_id)).all()
    waiting = [order_id for status, order_id in held if status == RESERVED]
    if not coupon.is_public or len(held) >= coupon.per_user_limit:
        if waiting:
            raise CouponUnusable("Your copy of this coupon is held by another pending order of yours; cancel that "
                                 "order to use it here.", {"coupon_id": coupon.id, "order_id": waiting[0]})
        raise CouponUnusable(f"You have used this coupon {len(held)} time(s), the most allowed.",
                             {"coupon_id": coupon.id, "per_user_limit": coupon.per_user_limit})
    try:
        with session.begin_nested():
            claimed = session.execute(
                sa.update(Coupon).where(Coupon.id == coupon.id, sa.or_(Coupon.total_quantity.is_(None),
                                                                        Coupon.claimed_count < Coupon.total_quantity))
                .values(claimed_count=Coupon.claimed_count + 1).execution_options(synchronize_session=False)).rowcount
            if claimed != 1:
                raise CouponUnusable("This coupon has run out.", {"coupon_id": coupon.id})
            copy = UserCoupon(coupon_id=coupon.id, user_id=user_id, seq=len(held) + 1, status=RESERVED,
                              order_id=order.id, created_at=utcnow())
            session.add(copy)
            session.flush()
    except IntegrityError:  # the same user claimed that copy in a racing request
        raise CouponUnusable("This coupon is being used by another of your requests.",
                             {"coupon_id": coupon.id}) from None
    finally:
        session.expire(coupon, ["claimed_count"])
    return copy.id


def apply_to_order(session: Session, order: Order, coupon_id: int, user_id: int,
                   now: dt.datetime | None = None, coupon: Coupon | None = None) -> Decimal:
    """Price ``order`` (pending, locked or new) with the coupon and reserve
    a copy for it: the discount.  404 for a coupon the user may not know
    of, 409 when it cannot be used."""
    now = now or utcnow()
    coupon = coupon or visible_to(session, coupon_id, user_id)
    reason = unusable_reason(coupon, order.original_amount, order.product_type, order.product_id, now)
    if reason:
        raise CouponUnusable(reason, {"coupon_id": coupon.id})
    discount = discount_for(coupon, order.original_amount)
    order.user_coupon_id = reserve(session, coupon, user_id, order)
    order.coupon_id = coupon.id
    order.discount_amount = discount
    order.amount = order.original_amount - discount
    return discount


def use_on_order(session: Session, order: Order, coupon_id: int, user_id: int) -> Decimal:
    """``POST /coupons/{id}/use``: the coupon on the caller's pending order
    (locked by the caller).  Using the coupon the order already has is a
    no-op; another one, or any once a payment has started, is a 409."""
    from learnsail_payments.orders import started

    coupon = visible_to(session, coupon_id, user_id)
    if order.effective_status != PENDING:
        raise CouponUnusable(f"Order {order.order_no} is {order.effective_status}: coupons apply to pending "
                             f"orders only.", {"order_id": order.id})
    if order.coupon_id == coupon_id:
        return order.discount_amount
    if order.coupon_id is not None:
        raise CouponUnusable("This order already has a coupon; one coupon per order.",
                             {"order_id": order.id, "coupon_id": order.coupon_id})
    if started(session, order):
        raise CouponUnusable("A payment has started for this order, so its amount is fixed; cancel it and order "
                             "again to use a coupon.", {"order_id": order.id})
    return apply_to_order(session, order, coupon_id, user_id, coupon=coupon)


def release(session: Session, order: Order) -> None:
    """The order left pending unpaid: its copy is available again."""
    if order.user_coupon_id is None:
        return
    session.execute(sa.update(UserCoupon).where(UserCoupon.id == order.user_coupon_id,
                                                UserCoupon.order_id == order.id, UserCoupon.status == RESERVED)
                    .values(status=AVAILABLE, order_id=None).execution_options(synchronize_session=False))


def spend(session: Session, order: Order, now: dt.datetime) -> None:
    """The order was paid: its copy is used, for good."""
    if order.user_coupon_id is None:
        return
    won = session.execute(sa.update(UserCoupon).where(UserCoupon.id == order.user_coupon_id,
                                                      UserCoupon.order_id == order.id, UserCoupon.status == RESERVED)
                          .values(status=USED, used_at=now).execution_options(synchronize_session=False)).rowcount
    if won == 1:
        session.execute(sa.update(Coupon).where(Coupon.id == order.coupon_id)
                        .values(used_count=Coupon.used_count + 1).execution_options(synchronize_session=False))
    else:  # cannot happen while reservations are released only by leaving pending
        log.error("order %s was paid but its coupon copy %s was not reserved for it", order.order_no,
                  order.user_coupon_id)


# --- the buyer's list ---------------------------------------------------------------------

def for_user(session: Session, user_id: int, *, price: Decimal | None = None, product_type: str | None = None,
             product_id: int | None = None, now: dt.datetime | None = None) -> list[dict]:
    """The coupons the user holds unused copies of, and the public ones
    they may still claim, with ``is_valid`` for now (and for the product,
    when given) -- four queries."""
    now = now or utcnow()
    counts: dict[int, dict[str, int]] = {}
    for coupon_id, status, n in session.execute(
            sa.select(UserCoupon.coupon_id, UserCoupon.status, sa.func.count())
            .where(UserCoupon.user_id == user_id).group_by(UserCoupon.coupon_id, UserCoupon.status)):
        counts.setdefault(coupon_id, {})[status] = n
    held = [cid for cid, by in counts.items() if by.get(AVAILABLE) or by.get(RESERVED)]
    public = sa.and_(Coupon.is_public.is_(True), Coupon.is_active.is_(True), Coupon.end_time > now,
                     sa.or_(Coupon.total_quantity.is_(None), Coupon.claimed_count < Coupon.total_quantity))
    stmt = (sa.select(Coupon).where(Coupon.deleted_at.is_(None), sa.or_(Coupon.id.in_(held or [0]), public))
            .options(selectinload(Coupon.products)).order_by(Coupon.end_time, Coupon.id))
    found = []
    for coupon in session.scalars(stmt):
        mine = counts.get(coupon.id, {})
        total_held = sum(mine.values())
        claimable = coupon.per_user_limit - total_held if coupon.is_public else 0
        if coupon.is_public and coupon.total_quantity is not None:
            claimable = min(claimable, coupon.total_quantity - coupon.claimed_count)
        available = mine.get(AVAILABLE, 0) + max(claimable, 0)
        if available <= 0 and not mine.get(RESERVED):
            continue
        reason = unusable_reason(coupon, price, product_type, product_id, now) or \
            (None if available > 0 else "Your copy is held by a pending order.")
        entry = serialize(coupon, price)
        entry.update(is_valid=reason is None, reason=reason, available=available,
                     reserved=mine.get(RESERVED, 0))
        found.append(entry)
    return found


def serialize(coupon: Coupon, price: Decimal | None = None) -> dict:
    """000's coupon fields (plus what 000 leaves out).  ``discount_amount``
    of a percentage coupon is what it takes off ``price`` when given,
    else its cap."""
    if coupon.type == PERCENT:
        discount = discount_for(coupon, price) if price is not None else coupon.max_discount
    else:
        discount = coupon.discount_amount
    return {"id": coupon.id, "code": coupon.code, "name": coupon.name, "type": coupon.type,
            "discount_amount": discount, "discount_percent": coupon.discount_percent,
            "max_discount": coupon.max_discount, "min_order_amount": coupon.min_order_amount,
            "start_time": coupon.start_time, "end_time": coupon.end_time, "is_public": coupon.is_public,
            "scope": coupon.scope, "product_type": coupon.scope_product_type,
            "products": [{"product_type": p.product_type, "product_id": p.product_id} for p in coupon.products]}


# --- administration ---------------------------------------------------------------------------

def _check_terms(values: dict) -> None:
    problems: dict[str, list[str]] = {}
    kind = values["type"]
    if kind in (FIXED, THRESHOLD):
        if not values.get("discount_amount") or values["discount_amount"] <= 0:
            problems["discount_amount"] = [f"A {kind} coupon needs a discount_amount above 0."]
    if kind == THRESHOLD and (values.get("min_order_amount") or ZERO) <= (values.get("discount_amount") or ZERO):
        problems["min_order_amount"] = ["A threshold coupon needs a min_order_amount above its discount_amount."]
    if kind == PERCENT and not (values.get("discount_percent") and 1 <= values["discount_percent"] <= 99):
        problems["discount_percent"] = ["A percent coupon needs a discount_percent from 1 to 99."]
    if values["end_time"] <= values["start_time"]:
        problems["end_time"] = ["Must be after start_time."]
    if values["scope"] == SCOPE_TYPE and not values.get("scope_product_type"):
        problems["product_type"] = ["A product_type-scoped coupon names its product_type."]
    if values["scope"] == SCOPE_PRODUCTS and not values.get("products"):
        problems["products"] = ["A products-scoped coupon lists its products."]
    if problems:
        raise ValidationFailed(problems)


def _unique_code(session: Session, code: str | None, coupon_id: int | None = None) -> str:
    if code is None:
        return "C" + secrets.token_hex(6).upper()
    taken = session.scalar(sa.select(Coupon.id).where(sa.func.lower(Coupon.code) == code.lower()))
    if taken is not None and taken != coupon_id:
        raise Conflict(f"The code {code!r} is taken.", {"code": ["Taken."]})
    return code


def create(session: Session, admin_id: int, data: dict) -> Coupon:
    values = {"scope": SCOPE_ALL, "min_order_amount": ZERO, **data}
    values["scope_product_type"] = values.pop("product_type", None)
    products = values.pop("products", None) or []
    _check_terms({**values, "products": products})
    values["code"] = _unique_code(session, values.get("code"))
    coupon = Coupon(**values, created_by=admin_id, claimed_count=0, used_count=0)
    coupon.products = [CouponProduct(product_type=p["product_type"], product_id=p["product_id"])
                       for p in _distinct(products)]
    try:
        with session.begin_nested():
            session.add(coupon)
            session.flush()
    except IntegrityError:
        raise Conflict(f"The code {values['code']!r} is taken.", {"code": ["Taken."]}) from None
    return coupon


def _distinct(products: Iterable[dict]) -> list[dict]:
    seen, found = set(), []
    for p in products:
        key = (p["product_type"], p["product_id"])
        if key not in seen:
            seen.add(key)
            found.append(p)
    return found


def get_for_admin(session: Session, coupon_id: int) -> Coupon:
    coupon = load(session, coupon_id)
    if coupon is None or coupon.deleted_at is not None:
        raise NotFound(f"No coupon with id {coupon_id}.")
    return coupon


def update(session: Session, coupon: Coupon, data: dict) -> Coupon:
    current = {"type": coupon.type, "discount_amount": coupon.discount_amount,
               "discount_percent": coupon.discount_percent, "max_discount": coupon.max_discount,
               "min_order_amount": coupon.min_order_amount, "start_time": coupon.start_time,
               "end_time": coupon.end_time, "scope": coupon.scope, "scope_product_type": coupon.scope_product_type,
               "products": [{"product_type": p.product_type, "product_id": p.product_id} for p in coupon.products]}
    changes = dict(data)
    if "product_type" in changes:
        changes["scope_product_type"] = changes.pop("product_type")
    _check_terms({**current, **changes})
    if "code" in changes:
        changes["code"] = _unique_code(session, changes["code"], coupon.id)
    if changes.get("total_quantity") is not None and changes["total_quantity"] < coupon.claimed_count:
        raise Conflict(f"{coupon.claimed_count} copies exist already; total_quantity cannot be lower.",
                       {"total_quantity": coupon.claimed_count})
    products = changes.pop("products", None)
    for key, value in changes.items():
        setattr(coupon, key, value)
    if products is not None:
        coupon.products = [CouponProduct(product_type=p["product_type"], product_id=p["product_id"])
                           for p in _distinct(products)]
    session.flush()
    return coupon


def delete(session: Session, coupon: Coupon) -> None:
    """Withdraw the coupon: no copy can be reserved any more (pending
    orders keep theirs; paid ones keep their history)."""
    coupon.deleted_at = utcnow()
    coupon.is_active = False


def issue(session: Session, coupon: Coupon, user_ids: list[int], admin_id: int) -> dict:
    """Give one copy to each user (batch issue): up to the per-user limit
    and the coupon's total quantity.  ``{"issued": [...], "skipped": {id: why}}``."""
    wanted = list(dict.fromkeys(user_ids))
    skipped: dict[str, str] = {}
    existing = set(session.scalars(sa.select(User.id).where(User.id.in_(wanted), User.deleted_at.is_(None))))
    held = dict(session.execute(sa.select(UserCoupon.user_id, sa.func.max(UserCoupon.seq))
                                .where(UserCoupon.coupon_id == coupon.id, UserCoupon.user_id.in_(wanted))
                                .group_by(UserCoupon.user_id)).all())
    targets = []
    for user_id in wanted:
        if user_id not in existing:
            skipped[str(user_id)] = "No such user."
        elif held.get(user_id, 0) >= coupon.per_user_limit:
            skipped[str(user_id)] = f"Already holds {coupon.per_user_limit} copies (the per-user limit)."
        else:
            targets.append(user_id)
    if targets:
        won = session.execute(
            sa.update(Coupon).where(Coupon.id == coupon.id, sa.or_(
                Coupon.total_quantity.is_(None), Coupon.claimed_count + len(targets) <= Coupon.total_quantity))
            .values(claimed_count=Coupon.claimed_count + len(targets))
            .execution_options(synchronize_session=False)).rowcount
        session.expire(coupon, ["claimed_count"])
        if won != 1:
            left = (coupon.total_quantity or 0) - coupon.claimed_count
            raise Conflict(f"Only {max(left, 0)} copies are left of this coupon; {len(targets)} were asked for.",
                           {"available": max(left, 0)})
        now = utcnow()
        try:
            with session.begin_nested():
                session.add_all([UserCoupon(coupon_id=coupon.id, user_id=user_id, seq=held.get(user_id, 0) + 1,
                                            status=AVAILABLE, issued_by=admin_id, created_at=now)
                                 for user_id in targets])
                session.flush()
        except IntegrityError:
            raise Conflict("Copies of this coupon were being issued or claimed at the same time; try again.") \
                from None
    return {"issued": targets, "skipped": skipped}


def admin_serialize(coupon: Coupon) -> dict:
    return {**serialize(coupon), "description": coupon.description, "total_quantity": coupon.total_quantity,
            "claimed_count": coupon.claimed_count, "used_count": coupon.used_count,
            "per_user_limit": coupon.per_user_limit, "is_active": coupon.is_active,
            "created_at": coupon.created_at, "updated_at": coupon.updated_at}
