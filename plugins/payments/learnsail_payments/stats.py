"""Sales statistics (004 §2.6.2): sales, order count, refund rate and
average order value, by day (UTC), by product and by payment method, and
the figures the analytics plugin gathers through ``learnsail_metrics``.

An order counts in the period in which it was paid (``paid_at``); its
refunds count against it whenever they happened.  ``sales`` is what was
paid, ``refunds`` what went back, ``net_sales`` the difference;
``refund_rate`` is the share of paid orders with any refund.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail_payments.money import ZERO, cents
from learnsail_payments.models import PAID_STATUSES, Order, Refund, SUCCEEDED


def _paid_in(since: dt.datetime, until: dt.datetime) -> Any:
    return sa.and_(Order.status.in_(PAID_STATUSES), Order.paid_at >= since, Order.paid_at < until)


def _figures(orders: int, sales: Decimal, refunded: Decimal, refunded_orders: int) -> dict:
    orders, refunded_orders = int(orders or 0), int(refunded_orders or 0)
    sales, refunded = cents(sales or ZERO), cents(refunded or ZERO)
    return {"orders": orders, "sales": sales, "refunds": refunded, "net_sales": sales - refunded,
            "refunded_orders": refunded_orders,
            "refund_rate": (Decimal(refunded_orders) / orders).quantize(Decimal("0.0001")) if orders else Decimal("0"),
            "average_order_value": cents(sales / orders) if orders else ZERO}


def _grouped(session: Session, since: dt.datetime, until: dt.datetime, *keys: Any) -> list[tuple]:
    refunded = sa.case((Order.refunded_amount > 0, 1), else_=0)
    stmt = (sa.select(*keys, sa.func.count(Order.id), sa.func.sum(Order.amount), sa.func.sum(Order.refunded_amount),
                      sa.func.sum(refunded))
            .where(_paid_in(since, until)))
    if keys:
        stmt = stmt.group_by(*keys)
    return session.execute(stmt).all()


def report(session: Session, since: dt.datetime, until: dt.datetime) -> dict:
    """The administrators' report over ``[since, until)``: five queries."""
    (total,) = _grouped(session, since, until)
    day = sa.func.date(Order.paid_at)
    by_day = [{"date": str(d), **_figures(n, s, r, k)}
              for d, n, s, r, k in sorted(_grouped(session, since, until, day), key=lambda row: str(row[0]))]
    by_product = [{"product_type": t, "product_id": i, "title": title, **_figures(n, s, r, k)}
                  for t, i, title, n, s, r, k in _grouped(session, since, until, Order.product_type,
                                                          Order.product_id, Order.title)]
    by_product.sort(key=lambda row: (-row["sales"], row["product_type"], row["product_id"]))
    by_platform = [{"platform": p, **_figures(n, s, r, k)}
                   for p, n, s, r, k in _grouped(session, since, until, Order.platform)]
    by_platform.sort(key=lambda row: -row["sales"])
    reasons = Counter()
    for reason, in session.execute(
            sa.select(Refund.reason).join(Order, Order.id == Refund.order_id)
            .where(_paid_in(since, until), Refund.status == SUCCEEDED)):
        reasons[(reason or "").strip()[:100] or "(none given)"] += 1
    return {"since": since, "until": until, "totals": _figures(*total),
            "by_day": by_day, "by_product": by_product, "by_platform": by_platform,
            "refund_reasons": [{"reason": r, "count": c} for r, c in reasons.most_common(20)]}


def metrics(session: Session, since: dt.datetime, until: dt.datetime) -> dict:
    """``learnsail_metrics``: numbers (money as floats of yuan, at this edge)."""
    (n, s, r, k), = _grouped(session, since, until)
    figures = _figures(n, s, r, k)
    return {"payments.orders_paid": figures["orders"], "payments.sales": float(figures["sales"]),
            "payments.refunds": float(figures["refunds"]), "payments.net_sales": float(figures["net_sales"]),
            "payments.refund_rate": float(figures["refund_rate"]),
            "payments.average_order_value": float(figures["average_order_value"])}
