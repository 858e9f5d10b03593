"""What administrators do with orders: the list, direct refunds and the
review of refund requests, sales statistics and reconciliation (added;
004 §2.6)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from learnsail.api import Service, page_of
from learnsail.db import utcnow
from learnsail.db.pagination import paginate
from learnsail.errors import NotFound, ValidationFailed
from learnsail_payments import orders, reconciliation, refunds, states, stats
from learnsail_payments.checkout import notify_url
from learnsail_payments.models import Order
from learnsail_payments.money import number
from learnsail_payments.permissions import (ORDER_MANAGE, ORDER_VIEW_ANY, RECONCILIATION_MANAGE, REFUND_REVIEW,
                                            STATS_VIEW)
from learnsail_payments.schemas import (AdminOrderListQuery, AdminOrderSummarySchema, AdminRefundSchema,
                                        AdminRefundSummarySchema, DiscrepancyQuery, DiscrepancyResolveSchema,
                                        DiscrepancySchema, IdPath, RefundListQuery, RefundReviewSchema,
                                        RefundSchema, ReconcileSummarySchema, SalesStatsQuery, SalesStatsSchema)
from learnsail_payments.views.common import callback_base, gateways, hook, order_summary, refund_out

admin_orders = Service(name="payments.admin_orders", path="/api/v1/admin/orders", description="Every order.")
admin_refund = Service(name="payments.admin_order_refund", path="/api/v1/admin/orders/{id}/refund",
                       description="Refund an order directly.")
refund_queue = Service(name="payments.admin_refunds", path="/api/v1/admin/refunds", description="Refunds.")
approve = Service(name="payments.refund_approve", path="/api/v1/admin/refunds/{id}/approve",
                  description="Approve a refund request.")
reject = Service(name="payments.refund_reject", path="/api/v1/admin/refunds/{id}/reject",
                 description="Reject a refund request.")
sales = Service(name="payments.stats", path="/api/v1/admin/payments/stats", description="Sales statistics.")
discrepancies = Service(name="payments.discrepancies", path="/api/v1/admin/payments/discrepancies",
                        description="Reconciliation findings.")
resolve = Service(name="payments.discrepancy_resolve", path="/api/v1/admin/payments/discrepancies/{id}/resolve",
                  description="Resolve a reconciliation finding.")
reconcile = Service(name="payments.reconcile", path="/api/v1/admin/payments/reconcile",
                    description="Run reconciliation now.")


@admin_orders.get(permission=ORDER_VIEW_ANY, schema={"querystring": AdminOrderListQuery},
                  responses={200: (page_of(AdminOrderSummarySchema), "A page of orders, newest first.")})
def list_orders(request: Any) -> dict:
    """Every order, newest first, filtered by status, user_id,
    product_type, product_id, platform, order_no and creation time."""
    query = dict(request.validated["querystring"])
    for name in ("page", "page_size"):
        query.pop(name, None)
    return paginate(request, request.db, orders.search(**query),
                    lambda order: {**order_summary(order), "user_id": order.user_id})


def _refund_notify_url(request: Any, platform: str | None) -> str | None:
    return notify_url(callback_base(request), platform) if platform else None


@admin_refund.post(permission=ORDER_MANAGE, schema={"path": IdPath, "body": AdminRefundSchema}, errors=(409, 503),
                   responses={201: (RefundSchema, "The refund, sent to the platform.")})
def refund_order(request: Any) -> dict:
    """Refund a paid order (all that is left, or ``amount``), approved at
    once and sent through the order's gateway; no refund window applies.
    The refund is ``succeeded`` when the platform confirmed it, or
    ``processing`` until its refund notification arrives."""
    body = request.validated["body"]
    order = orders.lock(request.db, request.validated["path"]["id"])
    if order is None:
        raise NotFound(f"No order with id {request.validated['path']['id']}.")
    made = refunds.open_refund(request.db, order, amount=body.get("amount"), reason=body.get("reason"),
                               actor_type=states.ADMIN, actor_id=request.identity.id, window_days=None)
    refunds.approve(request.db, hook(request), gateways(request), made, reviewer_id=request.identity.id,
                    notify_url=_refund_notify_url(request, order.platform))
    request.response.status = 201
    return refund_out(made)


@refund_queue.get(permission=REFUND_REVIEW, schema={"querystring": RefundListQuery},
                  responses={200: (page_of(AdminRefundSummarySchema), "A page of refunds, newest first.")})
def list_refunds(request: Any) -> dict:
    """Refunds, newest first; ``status=requested`` is the review queue."""
    stmt = refunds.queue(request.validated["querystring"].get("status"))
    return paginate(request, request.db, stmt, lambda row: {
        **refund_out(row[0]), "order_no": row[1], "user_id": row[2], "platform": row[3]}, scalars=False)


@approve.post(permission=REFUND_REVIEW, schema={"path": IdPath, "body": RefundReviewSchema}, errors=(409, 503),
              responses={200: (RefundSchema, "The refund: succeeded, processing, or failed.")})
def approve_refund(request: Any) -> dict:
    """Approve a requested refund: it is sent through the order's gateway
    (503 when the platform cannot be reached: nothing changed, approve
    again later).  409 unless it waits for review."""
    refund = refunds.get(request.db, request.validated["path"]["id"])
    order = request.db.get(Order, refund.order_id)
    refunds.approve(request.db, hook(request), gateways(request), refund, reviewer_id=request.identity.id,
                    note=request.validated["body"].get("note"),
                    notify_url=_refund_notify_url(request, order.platform))
    return refund_out(refund)


@reject.post(permission=REFUND_REVIEW, schema={"path": IdPath, "body": RefundReviewSchema}, errors=(409,),
             responses={200: (RefundSchema, "The rejected refund.")})
def reject_refund(request: Any) -> dict:
    """Reject a requested refund (with a ``note`` for the buyer, who is
    notified); the order returns to where it was."""
    refund = refunds.get(request.db, request.validated["path"]["id"])
    refunds.reject(request.db, refund, reviewer_id=request.identity.id, note=request.validated["body"].get("note"))
    return refund_out(refund)


def _money(figures: dict) -> dict:
    return {key: number(value) if key in ("sales", "refunds", "net_sales", "average_order_value")
            else (float(value) if key == "refund_rate" else value) for key, value in figures.items()}


def _days_before(instant: dt.datetime, days: int) -> dt.datetime:
    """``days`` before ``instant``, or the first representable instant (an
    ``until`` in the first days of year 1 has no 30 days before it)."""
    earliest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return instant - dt.timedelta(days=days) if instant - earliest > dt.timedelta(days=days) else earliest


@sales.get(permission=STATS_VIEW, schema={"querystring": SalesStatsQuery},
           responses={200: (SalesStatsSchema, "Sales figures for the period.")})
def sales_stats(request: Any) -> dict:
    """Sales statistics (004 §2.6.2) over ``[since, until)`` (default: the
    last 30 days, at most 366): sales, order count, refunds, refund rate and
    average order value in total, by day (UTC), by product and by payment
    platform, and the refund reasons.  Orders count when they were paid."""
    query = request.validated["querystring"]
    until = query.get("until") or utcnow()
    since = query.get("since") or _days_before(until, 30)
    if since >= until or until - since > dt.timedelta(days=366):
        raise ValidationFailed({"since": ["Must be before until, at most 366 days before."]})
    report = stats.report(request.db, since, until)
    for key in ("by_day", "by_product", "by_platform"):
        report[key] = [_money(row) for row in report[key]]
    report["totals"] = _money(report["totals"])
    return report


def _discrepancy_out(d: Any) -> dict:
    return {"id": d.id, "order_id": d.order_id, "order_no": d.order_no, "platform": d.platform, "kind": d.kind,
            "order_status": d.order_status, "gateway_status": d.gateway_status, "amount": number(d.amount),
            "gateway_amount": number(d.gateway_amount), "transaction_id": d.transaction_id, "detail": d.detail,
            "source": d.source, "detected_at": d.detected_at, "resolved_at": d.resolved_at,
            "resolved_by": d.resolved_by, "resolution_note": d.resolution_note}


@discrepancies.get(permission=RECONCILIATION_MANAGE, schema={"querystring": DiscrepancyQuery},
                   responses={200: (page_of(DiscrepancySchema), "A page of findings, newest first.")})
def list_discrepancies(request: Any) -> dict:
    """The mismatch report: orders paid at the gateway but not here
    (``paid_at_gateway_only``: a late payment of an expired or cancelled
    order, or a second payment), paid here but unknown or unpaid at the
    gateway (``paid_here_only``), or with another amount
    (``amount_mismatch``).  ``resolved=false`` is what is left to do."""
    query = request.validated["querystring"]
    return paginate(request, request.db, reconciliation.findings(query.get("resolved"), query.get("kind")),
                    _discrepancy_out)


@resolve.post(permission=RECONCILIATION_MANAGE, schema={"path": IdPath, "body": DiscrepancyResolveSchema},
              errors=(409,), responses={200: (DiscrepancySchema, "The resolved finding.")})
def resolve_discrepancy(request: Any) -> dict:
    """Mark a finding resolved, saying how (``note``: refunded at the
    platform, delivered by hand...).  409 when it is resolved already."""
    found = reconciliation.resolve(request.db, request.validated["path"]["id"], request.identity.id,
                                   request.validated["body"]["note"])
    return _discrepancy_out(found)


@reconcile.post(permission=RECONCILIATION_MANAGE,
                responses={200: (ReconcileSummarySchema, "What the pass did.")})
def run_reconciliation(request: Any) -> dict:
    """Run a reconciliation pass now (the periodic task
    ``payments.reconcile`` does it every learnsail.payments.reconcile_interval_seconds)."""
    return reconciliation.reconcile(request.db, hook(request), gateways(request), request.registry.settings)


SERVICES = (admin_orders, admin_refund, refund_queue, approve, reject, sales, discrepancies, resolve, reconcile)
