"""What the view modules share: the order's owner rule and the JSON shapes."""

from __future__ import annotations

from typing import Any

from learnsail.errors import AuthFailed, NotFound, PermissionDenied
from learnsail_payments import orders
from learnsail_payments.gateways import gateways_of
from learnsail_payments.money import number
from learnsail_payments.permissions import ORDER_VIEW_ANY
from learnsail_payments.settings import NOTIFY_BASE_URL


class _RoleOnly:
    """A context without an ACL: a permission check asks the caller's role only."""


def may(request: Any, permission: str) -> bool:
    """Does the caller's active role hold ``permission``?"""
    return request.identity is not None and bool(request.has_permission(permission, _RoleOnly()))


def hook(request: Any) -> Any:
    return request.registry["learnsail.pm"].hook


def gateways(request: Any) -> dict:
    return gateways_of(request)


def callback_base(request: Any) -> str:
    return request.registry.settings.get(NOTIFY_BASE_URL) or request.host_url


def visible_order(request: Any, order_id: int, *, lock: bool = False) -> Any:
    """The order if the caller bought it or may see every order; 404 for
    anyone else (its existence does not leak)."""
    if request.identity is None:
        raise AuthFailed()
    order = orders.lock(request.db, order_id) if lock else request.db.get(orders.Order, order_id)
    if order is None or (order.user_id != request.identity.id and not may(request, ORDER_VIEW_ANY)):
        raise NotFound(f"No order with id {order_id}.")
    return order


def own_order(request: Any, order_id: int, *, lock: bool = True) -> Any:
    """The caller's own order (what only its buyer does: pay, use a coupon,
    ask for a refund); 404 for anyone else's, 403 for an administrator."""
    order = visible_order(request, order_id, lock=lock)
    if order.user_id != request.identity.id:
        raise PermissionDenied("Only the buyer can do this with an order.")
    return order


def _course_fields(order: Any) -> dict:
    is_course = order.product_type == "course"
    return {"course_id": order.product_id if is_course else None, "course_title": order.title if is_course else None}


def order_out(order: Any, *, coupon: Any = None, refunds: list | None = None, items: list | None = None) -> dict:
    """An order as 000's POST/GET /orders answer it, plus the general fields."""
    is_course = order.product_type == "course"
    return {
        "id": order.id, "order_no": order.order_no, "user_id": order.user_id, **_course_fields(order),
        "course": {"id": order.product_id, "title": order.title, "cover_image_url": order.image_url}
        if is_course else None,
        "product_type": order.product_type, "product_id": order.product_id, "title": order.title,
        "product": {"type": order.product_type, "id": order.product_id, "title": order.title,
                    "image_url": order.image_url},
        "original_price": number(order.original_amount), "discount_price": number(order.amount),
        "discount_amount": number(order.discount_amount), "amount": number(order.amount),
        "refunded_amount": number(order.refunded_amount), "currency": order.currency,
        "coupon_id": order.coupon_id,
        "coupon": {"id": coupon.id, "code": coupon.code, "discount_amount": number(order.discount_amount)}
        if coupon is not None else None,
        "status": order.effective_status, "platform": order.platform, "created_at": order.created_at,
        "paid_at": order.paid_at, "expired_at": order.expires_at,
        "items": [{"product_type": i.product_type, "product_id": i.product_id, "title": i.title,
                   "unit_price": number(i.unit_price), "quantity": i.quantity, "amount": number(i.amount)}
                  for i in (items or [])],
        "refunds": [refund_out(r) for r in (refunds or [])],
    }


def order_summary(order: Any) -> dict:
    """An order as 000's GET /users/orders lists it, plus the general fields."""
    return {"id": order.id, "order_no": order.order_no, "course_title": _course_fields(order)["course_title"],
            "title": order.title, "product_type": order.product_type, "product_id": order.product_id,
            "price": number(order.amount), "original_price": number(order.original_amount),
            "refunded_amount": number(order.refunded_amount), "currency": order.currency,
            "status": order.effective_status, "platform": order.platform, "created_at": order.created_at,
            "paid_at": order.paid_at, "expired_at": order.expires_at}


def refund_out(refund: Any) -> dict:
    return {"id": refund.id, "refund_no": refund.refund_no, "order_id": refund.order_id,
            "amount": number(refund.amount), "reason": refund.reason, "status": refund.status,
            "review_note": refund.review_note, "failure_reason": refund.failure_reason,
            "created_at": refund.created_at, "reviewed_at": refund.reviewed_at, "completed_at": refund.completed_at}


def coupon_out(entry: dict) -> dict:
    """A coupon dict from the service, money as JSON numbers."""
    return {**entry, **{key: number(entry[key]) for key in ("discount_amount", "max_discount", "min_order_amount")
                        if key in entry}}
