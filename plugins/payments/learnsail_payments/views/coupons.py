"""Coupons (000 §六 优惠券相关API) and their administration (added)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from learnsail.api import Service, no_content, page_of
from learnsail.db.pagination import paginate
from learnsail_payments import coupons
from learnsail_payments.models import Coupon
from learnsail_payments.money import cents, number
from learnsail_payments.permissions import COUPON_MANAGE, COUPON_USE
from learnsail_payments.schemas import (AdminCouponListQuery, AdminCouponSchema, CouponCreateSchema,
                                        CouponIssuedSchema, CouponIssueSchema, CouponListQuery, CouponSchema,
                                        CouponUpdateSchema, CouponUsedSchema, CouponUseSchema, IdPath)
from learnsail_payments.views.common import coupon_out, hook, own_order

mine = Service(name="payments.coupons", path="/api/v1/coupons", description="The caller's usable coupons.")
use = Service(name="payments.coupon_use", path="/api/v1/coupons/{id}/use", description="Use a coupon on an order.")
admin_collection = Service(name="payments.admin_coupons", path="/api/v1/admin/coupons",
                           description="Coupon administration.")
admin_item = Service(name="payments.admin_coupon", path="/api/v1/admin/coupons/{id}", description="One coupon.")
issue = Service(name="payments.coupon_issue", path="/api/v1/admin/coupons/{id}/issue",
                description="Give copies of a coupon to users.")


@mine.get(permission=COUPON_USE, schema={"querystring": CouponListQuery},
          responses={200: (CouponSchema(many=True), "The caller's coupons, soonest to end first.")})
def list_my_coupons(request: Any) -> list:
    """The coupons the caller may use (000): those issued to them with an
    unused copy, and the public ones they may still claim.  ``is_valid``
    says whether each can be used now -- and, with ``course_id`` (or
    ``product_type`` + ``product_id``), on that product at its price;
    ``reason`` says why not."""
    query = request.validated["querystring"]
    product_type, product_id, price = None, None, None
    if query.get("course_id") is not None:
        product_type, product_id = "course", query["course_id"]
    elif query.get("product_type") and query.get("product_id") is not None:
        product_type, product_id = query["product_type"], query["product_id"]
    if product_type is not None:
        answer = hook(request).learnsail_product_quote(kind=product_type, ref_id=product_id,
                                                        user=request.identity, session=request.db)
        if answer is not None and answer.get("found", True):
            price = cents(answer["price"])
    found = coupons.for_user(request.db, request.identity.id, price=price, product_type=product_type,
                             product_id=product_id)
    return [coupon_out(entry) for entry in found]


@use.post(permission=COUPON_USE, schema={"path": IdPath, "body": CouponUseSchema}, errors=(409,),
          responses={200: (CouponUsedSchema, "The coupon is on the order.")})
def use_coupon(request: Any) -> dict:
    """Use a coupon on the caller's pending order (000): reserves one of
    the caller's copies for it and lowers its amount.  404 for an unknown
    coupon or order; 409 when the coupon cannot be used (expired, used up,
    run out, another on the order already, not for this product, below its
    threshold, a payment already started)."""
    coupon_id = request.validated["path"]["id"]
    order = own_order(request, request.validated["body"]["order_id"])
    discount = coupons.use_on_order(request.db, order, coupon_id, request.identity.id)
    return {"message": "Coupon used successfully", "order_id": order.id, "coupon_id": coupon_id,
            "discount_amount": number(discount)}


def _admin_out(coupon: Coupon) -> dict:
    return coupon_out(coupons.admin_serialize(coupon))


@admin_collection.get(permission=COUPON_MANAGE, schema={"querystring": AdminCouponListQuery},
                      responses={200: (page_of(AdminCouponSchema), "A page of coupons, newest first.")})
def list_coupons(request: Any) -> dict:
    """Every coupon (not deleted), newest first, with its counts."""
    stmt = (sa.select(Coupon).where(Coupon.deleted_at.is_(None)).options(selectinload(Coupon.products))
            .order_by(Coupon.created_at.desc(), Coupon.id.desc()))
    return paginate(request, request.db, stmt, _admin_out)


@admin_collection.post(permission=COUPON_MANAGE, schema=CouponCreateSchema, errors=(409,),
                       responses={201: (AdminCouponSchema, "The new coupon.")})
def create_coupon(request: Any) -> dict:
    """Create a coupon: ``type`` fixed (``discount_amount`` off), percent
    (``discount_percent`` off, at most ``max_discount``) or threshold
    (``discount_amount`` off from ``min_order_amount`` up); a validity
    window; ``total_quantity`` copies at most (null: unlimited) and
    ``per_user_limit`` per user; ``is_public`` (anyone may use it) or
    issued to users; ``scope`` all, product_type (``product_type``) or
    products (``products``).  The code is generated when left out (409 when taken)."""
    coupon = coupons.create(request.db, request.identity.id, request.validated["body"])
    request.response.status = 201
    return _admin_out(coupon)


@admin_item.get(permission=COUPON_MANAGE, schema={"path": IdPath}, responses={200: (AdminCouponSchema, "The coupon.")})
def get_coupon(request: Any) -> dict:
    """One coupon with its counts."""
    return _admin_out(coupons.get_for_admin(request.db, request.validated["path"]["id"]))


@admin_item.put(permission=COUPON_MANAGE, schema={"path": IdPath, "body": CouponUpdateSchema}, errors=(409,),
                responses={200: (AdminCouponSchema, "The changed coupon.")})
def update_coupon(request: Any) -> dict:
    """Change a coupon (the fields given).  Pending orders keep the discount
    they were priced with; total_quantity cannot go below the copies that
    exist (409)."""
    coupon = coupons.get_for_admin(request.db, request.validated["path"]["id"])
    return _admin_out(coupons.update(request.db, coupon, request.validated["body"]))


@admin_item.delete(permission=COUPON_MANAGE, schema={"path": IdPath}, responses={204: (None, "Withdrawn.")})
def delete_coupon(request: Any) -> Any:
    """Withdraw a coupon: no copy can be reserved any more; orders keep their history."""
    coupons.delete(request.db, coupons.get_for_admin(request.db, request.validated["path"]["id"]))
    return no_content(request)


@issue.post(permission=COUPON_MANAGE, schema={"path": IdPath, "body": CouponIssueSchema}, errors=(409,),
            responses={200: (CouponIssuedSchema, "Who received a copy, and who not and why.")})
def issue_coupon(request: Any) -> dict:
    """Give one copy of the coupon to each user of ``user_ids`` (at most
    1,000 a call), within the per-user limit; 409 when fewer copies are
    left than asked for."""
    coupon = coupons.get_for_admin(request.db, request.validated["path"]["id"])
    return coupons.issue(request.db, coupon, request.validated["body"]["user_ids"], request.identity.id)


SERVICES = (mine, use, admin_collection, admin_item, issue)
