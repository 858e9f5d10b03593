"""Demo data for ``learnsail init``: two membership plans and a public
coupon for courses (the demo's paid course, 机器学习入门 at 199.00, costs
149.00 with it).  Loaded once: nothing is added when the coupon exists."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail_payments.models import SCOPE_TYPE, THRESHOLD, Coupon, MembershipPlan

COUPON_CODE = "DEMO50"
PLANS = (("月度会员", "30 天会员专享课程与视频", 30, "29.90", 1), ("年度会员", "365 天会员专享课程与视频", 365, "199.00", 2))


def load(session: Session) -> str | None:
    if session.scalar(sa.select(Coupon.id).where(Coupon.code == COUPON_CODE)) is not None:
        return None
    now = utcnow()
    for name, description, days, price, order in PLANS:
        session.add(MembershipPlan(name=name, description=description, duration_days=days, price=Decimal(price),
                                   currency="CNY", is_active=True, sort_order=order))
    session.add(Coupon(code=COUPON_CODE, name="课程满 100 减 50", description="Demo: 50 off any course of 100 or more.",
                       type=THRESHOLD, discount_amount=Decimal("50.00"), min_order_amount=Decimal("100.00"),
                       start_time=now - dt.timedelta(days=1), end_time=now + dt.timedelta(days=365),
                       total_quantity=1000, per_user_limit=1, is_public=True, scope=SCOPE_TYPE,
                       scope_product_type="course", claimed_count=0, used_count=0))
    session.flush()
    return f"{len(PLANS)} membership plans and the public coupon {COUPON_CODE} (50 off courses of 100 or more)"
