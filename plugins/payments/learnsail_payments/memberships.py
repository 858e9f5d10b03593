"""Memberships (001 会员专享): plans sold as product_type ``membership``
by this plugin, through its own ``learnsail_product_quote``; a paid order
extends the buyer's window by the plan's days from the later of now and
its current end; a full refund takes those days back (the window
shortens, or ends).  ``learnsail_member_until`` answers in one query."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail.errors import NotFound
from learnsail_payments.models import REFUNDED, Membership, MembershipGrant, MembershipPlan

#: the product_type this plugin sells
PRODUCT = "membership"


def quote(session: Session, plan_id: Any, user: Any) -> dict:
    plan = session.get(MembershipPlan, plan_id) if isinstance(plan_id, int) else None
    if plan is None:
        return {"title": "", "price": 0, "currency": "CNY", "purchasable": False,
                "reason": f"No membership plan with id {plan_id}.", "found": False}
    return {"title": plan.name, "price": plan.price, "currency": plan.currency, "image_url": None,
            "purchasable": plan.is_active, "reason": None if plan.is_active else "This plan is not on sale.",
            "found": True}


def _membership(session: Session, user_id: int) -> Membership | None:
    return session.scalar(sa.select(Membership).where(Membership.user_id == user_id).with_for_update()
                          .execution_options(populate_existing=True))


def fulfil(session: Session, order: Any) -> MembershipGrant | None:
    """Extend the buyer's membership for a paid ``membership`` order (once)."""
    if order.product_type != PRODUCT:
        return None
    if session.scalar(sa.select(MembershipGrant.id).where(MembershipGrant.order_id == order.id)) is not None:
        return None
    plan = session.get(MembershipPlan, int(order.product_id))
    if plan is None:
        raise LookupError(f"order {order.order_no}: no membership plan {order.product_id}")
    now = utcnow()
    membership = _membership(session, order.user_id)
    if membership is None:
        try:
            with session.begin_nested():
                membership = Membership(user_id=order.user_id, started_at=now, ends_at=now, updated_at=now)
                session.add(membership)
                session.flush()
        except IntegrityError:  # created by a racing payment of the same buyer
            membership = _membership(session, order.user_id)
    start = max(now, membership.ends_at)
    if membership.ends_at <= now:
        membership.started_at = now
    grant = MembershipGrant(order_id=order.id, user_id=order.user_id, plan_id=plan.id, days=plan.duration_days,
                            starts_at=start, ends_at=start + dt.timedelta(days=plan.duration_days), created_at=now)
    membership.ends_at = grant.ends_at
    session.add(grant)
    session.flush()
    return grant


def revoke(session: Session, order: Any) -> MembershipGrant | None:
    """A fully refunded ``membership`` order: its days come off the window
    (a partial refund keeps them)."""
    if order.product_type != PRODUCT or order.status != REFUNDED:
        return None
    grant = session.scalar(sa.select(MembershipGrant).where(MembershipGrant.order_id == order.id,
                                                            MembershipGrant.revoked_at.is_(None)))
    if grant is None:
        return None
    membership = _membership(session, order.user_id)
    now = utcnow()
    grant.revoked_at = now
    if membership is not None:
        membership.ends_at = max(membership.ends_at - (grant.ends_at - grant.starts_at), min(now, membership.ends_at))
    return grant


def member_until(session: Session, user_id: int) -> dt.datetime | bool:
    ends = session.scalar(sa.select(Membership.ends_at).where(Membership.user_id == user_id))
    return ends if ends is not None and ends > utcnow() else False


def of_user(session: Session, user_id: int) -> dict:
    membership = session.scalar(sa.select(Membership).where(Membership.user_id == user_id))
    now = utcnow()
    active = membership is not None and membership.ends_at > now
    return {"is_member": active, "started_at": membership.started_at if active else None,
            "ends_at": membership.ends_at if membership is not None else None,
            "days_left": max(0, (membership.ends_at - now).days) if active else 0}


# --- plans ----------------------------------------------------------------------------

def plans(include_inactive: bool = False) -> sa.Select:
    stmt = sa.select(MembershipPlan)
    if not include_inactive:
        stmt = stmt.where(MembershipPlan.is_active.is_(True))
    return stmt.order_by(MembershipPlan.sort_order, MembershipPlan.id)


def get_plan(session: Session, plan_id: int) -> MembershipPlan:
    plan = session.get(MembershipPlan, plan_id)
    if plan is None:
        raise NotFound(f"No membership plan with id {plan_id}.")
    return plan


def create_plan(session: Session, data: dict) -> MembershipPlan:
    plan = MembershipPlan(**data)
    session.add(plan)
    session.flush()
    return plan


def update_plan(session: Session, plan: MembershipPlan, data: dict) -> MembershipPlan:
    for key, value in data.items():
        setattr(plan, key, value)
    session.flush()
    return plan
