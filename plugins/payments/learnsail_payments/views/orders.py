"""Orders and paying them (000 §六 订单相关API, 支付相关API; 004 §2.6)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from learnsail.api import Service, page_of
from learnsail.errors import PermissionDenied
from learnsail.db.pagination import paginate
from learnsail_payments import checkout, orders, refunds, states
from learnsail_payments.models import Coupon, Order, OrderEvent
from learnsail_payments.permissions import ORDER_CREATE, ORDER_MANAGE, ORDER_VIEW
from learnsail_payments.schemas import (OrderCancelSchema, IdPath, OrderCreateSchema, OrderEventSchema, OrderListQuery,
                                        OrderSchema, OrderSummarySchema, PayResponseSchema, PaySchema,
                                        RefundRequestSchema, RefundSchema)
from learnsail_payments.settings import CURRENCY, ORDER_TTL_MINUTES, REFUND_WINDOW_DAYS
from learnsail_payments.views.common import (callback_base, gateways, hook, may, order_out, order_summary,
                                             own_order, refund_out, visible_order)

collection = Service(name="payments.orders", path="/api/v1/orders", description="Create orders.")
item = Service(name="payments.order", path="/api/v1/orders/{id}", description="One order.")
history = Service(name="payments.order_events", path="/api/v1/orders/{id}/events",
                  description="An order's status changes (004 状态变更日志).")
cancel = Service(name="payments.order_cancel", path="/api/v1/orders/{id}/cancel",
                 description="Cancel a pending order.")
pay = Service(name="payments.order_pay", path="/api/v1/orders/{id}/pay", description="Start paying an order.")
refund = Service(name="payments.order_refund", path="/api/v1/orders/{id}/refund",
                 description="Ask for a refund of a paid order.")
mine = Service(name="payments.my_orders", path="/api/v1/users/orders", description="The caller's orders.")


def detail(request: Any, order: Order) -> dict:
    """An order with its coupon, items and refunds (four queries)."""
    session = request.db
    order = session.scalar(sa.select(Order).where(Order.id == order.id).options(selectinload(Order.items))
                           .execution_options(populate_existing=True))
    coupon = session.get(Coupon, order.coupon_id) if order.coupon_id else None
    return order_out(order, coupon=coupon, items=order.items, refunds=refunds.of_order(session, order.id))


@collection.post(permission=ORDER_CREATE, schema=OrderCreateSchema, errors=(409,),
                 responses={201: (OrderSchema, "The new pending order."),
                            200: (OrderSchema, "The caller's pending order for this product, reused.")})
def create_order(request: Any) -> dict:
    """Order a product (000): ``{"course_id", "coupon_id"}`` for a course,
    or ``{"product_type", "product_id", "coupon_id"}`` for anything a
    plugin sells (``membership`` plans are sold by this plugin).

    The seller prices it (``learnsail_product_quote``): 404 when there is
    no such product, 400 when nobody sells the type, 409 with the seller's
    reason when the caller may not buy it (already enrolled, not on sale)
    or when the coupon cannot be used (expired, used up, not for this
    product, below its threshold).  The order waits
    learnsail.payments.order_ttl_minutes for its payment (``expired_at``).
    While the caller has a pending order for the same product, that order
    is answered (200) instead of a new one."""
    body = request.validated["body"]
    product_type = "course" if body.get("course_id") is not None else body["product_type"]
    product_id = body["course_id"] if body.get("course_id") is not None else body["product_id"]
    settings = request.registry.settings
    order, created = orders.create_order(
        request.db, hook(request), request.identity, product_type=product_type, product_id=product_id,
        coupon_id=body.get("coupon_id"), ttl_minutes=settings[ORDER_TTL_MINUTES],
        default_currency=settings[CURRENCY])
    request.response.status = 201 if created else 200
    return detail(request, order)


@item.get(permission=ORDER_VIEW, schema={"path": IdPath}, responses={200: (OrderSchema, "The order.")})
def get_order(request: Any) -> dict:
    """One order (000): its buyer's, or any for holders of
    payments:order:view_any; 404 for anyone else."""
    return detail(request, visible_order(request, request.validated["path"]["id"]))


@history.get(permission=ORDER_VIEW, schema={"path": IdPath},
             responses={200: (OrderEventSchema(many=True), "Every status change, oldest first.")})
def list_events(request: Any) -> list:
    """The order's status changes (who, from, to, why, when), oldest first."""
    order = visible_order(request, request.validated["path"]["id"])
    rows = request.db.scalars(sa.select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id))
    return [{"id": e.id, "from_status": e.from_status, "to_status": e.to_status, "actor_type": e.actor_type,
             "actor_id": e.actor_id, "reason": e.reason, "created_at": e.created_at} for e in rows]


@cancel.post(permission=ORDER_CREATE, schema={"path": IdPath, "body": OrderCancelSchema}, errors=(409,),
             responses={200: (OrderSchema, "The cancelled order.")})
def cancel_order(request: Any) -> dict:
    """Cancel a pending order (its buyer, or holders of
    payments:order:manage): its coupon is released and the payments
    started are closed at their platforms.  409 when it is not pending."""
    order = visible_order(request, request.validated["path"]["id"])
    is_buyer = order.user_id == request.identity.id
    if not is_buyer and not may(request, ORDER_MANAGE):
        raise PermissionDenied("Only the buyer or an order manager can cancel an order.")
    order = orders.cancel(request.db, order, actor_type=states.USER if is_buyer else states.ADMIN,
                          actor_id=request.identity.id, reason=request.validated["body"].get("reason"))
    return detail(request, order)


@pay.post(permission=ORDER_CREATE, schema={"path": IdPath, "body": PaySchema}, errors=(409, 503),
          responses={200: (PayResponseSchema, "What the client needs to pay.")})
def pay_order(request: Any) -> dict:
    """Start paying the caller's pending order (000):
    ``{"platform": "wechat" | "alipay" | "sandbox"}`` answers the
    ``pay_params`` of that platform.  409 for an order that is paid,
    expired or cancelled; 400 for a platform not configured here; 503 when
    the platform cannot be reached.  Paying may be started again (another
    platform too) while the order is pending."""
    body = request.validated["body"]
    order = own_order(request, request.validated["path"]["id"])
    return checkout.start_payment(
        request.db, hook(request), gateways(request), order, request.identity, platform=body["platform"],
        callback_base=callback_base(request), scene=body.get("scene"), payer_openid=body.get("openid"),
        return_url=body.get("return_url"), client_ip=request.client_addr)


@refund.post(permission=ORDER_CREATE, schema={"path": IdPath, "body": RefundRequestSchema}, errors=(409,),
             responses={201: (RefundSchema, "The refund request, waiting for review.")})
def request_refund(request: Any) -> dict:
    """Ask for a refund of the caller's paid order (004), with a reason and
    optionally an amount (default: what is left): within
    learnsail.payments.refund_window_days of the payment; one refund is
    open at a time (409 otherwise).  An administrator approves or rejects it."""
    body = request.validated["body"]
    order = own_order(request, request.validated["path"]["id"])
    made = refunds.open_refund(request.db, order, amount=body.get("amount"), reason=body["reason"],
                               actor_type=states.USER, actor_id=request.identity.id,
                               window_days=request.registry.settings[REFUND_WINDOW_DAYS])
    request.response.status = 201
    return refund_out(made)


@mine.get(permission=ORDER_VIEW, schema={"querystring": OrderListQuery},
          responses={200: (page_of(OrderSummarySchema), "A page of the caller's orders, newest first.")})
def list_my_orders(request: Any) -> dict:
    """The caller's order history (000), newest first; ``status`` filters
    (a pending order past its expiry counts as expired), ``product_type``
    too.  Two queries whatever the page size."""
    query = request.validated["querystring"]
    stmt = orders.of_user(request.identity.id, query.get("status"), query.get("product_type"))
    return paginate(request, request.db, stmt, order_summary)


SERVICES = (collection, item, history, cancel, pay, refund, mine)
