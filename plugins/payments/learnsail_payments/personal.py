"""Personal data: what a user may export, and what erasing an account
strips.  Orders and refunds are kept (bookkeeping law requires them) but
lose what identifies the person beyond the anonymised account: the free
text of refund reasons and the client addresses of payment attempts.
Unused coupon copies and the membership go."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail_payments.models import (AVAILABLE, Membership, MembershipGrant, Order, PaymentAttempt, Refund,
                                       UserCoupon)

ERASED = "[erased]"


def export_user(session: Session, user_id: int) -> dict | None:
    rows = session.scalars(sa.select(Order).where(Order.user_id == user_id).order_by(Order.id)).all()
    ids = [o.id for o in rows]
    refunds = session.scalars(sa.select(Refund).where(Refund.order_id.in_(ids)).order_by(Refund.id)).all() \
        if ids else []
    membership = session.scalar(sa.select(Membership).where(Membership.user_id == user_id))
    copies = session.scalars(sa.select(UserCoupon).where(UserCoupon.user_id == user_id)).all()
    if not (rows or membership or copies):
        return None
    return {
        "orders": [{"order_no": o.order_no, "product_type": o.product_type, "product_id": o.product_id,
                    "title": o.title, "original_amount": o.original_amount, "discount_amount": o.discount_amount,
                    "amount": o.amount, "refunded_amount": o.refunded_amount, "currency": o.currency,
                    "status": o.status, "platform": o.platform, "created_at": o.created_at, "paid_at": o.paid_at}
                   for o in rows],
        "refunds": [{"refund_no": r.refund_no, "order_id": r.order_id, "amount": r.amount, "reason": r.reason,
                     "status": r.status, "created_at": r.created_at} for r in refunds],
        "coupons": [{"coupon_id": c.coupon_id, "status": c.status, "received_at": c.created_at,
                     "used_at": c.used_at} for c in copies],
        "membership": {"started_at": membership.started_at, "ends_at": membership.ends_at} if membership else None,
    }


def erase_user(session: Session, user_id: int) -> None:
    orders = sa.select(Order.id).where(Order.user_id == user_id).scalar_subquery()
    session.execute(sa.update(Refund).where(Refund.order_id.in_(orders), Refund.reason.is_not(None))
                    .values(reason=ERASED).execution_options(synchronize_session=False))
    session.execute(sa.update(PaymentAttempt).where(PaymentAttempt.order_id.in_(orders))
                    .values(client_ip=None).execution_options(synchronize_session=False))
    session.execute(sa.delete(UserCoupon).where(UserCoupon.user_id == user_id, UserCoupon.status == AVAILABLE)
                    .execution_options(synchronize_session=False))
    session.execute(sa.delete(MembershipGrant).where(MembershipGrant.user_id == user_id)
                    .execution_options(synchronize_session=False))
    session.execute(sa.delete(Membership).where(Membership.user_id == user_id)
                    .execution_options(synchronize_session=False))
