"""What the API accepts (input schemas) and answers (documentation
schemas).  Amounts are read as Decimal (``places=2``; a JSON number or a
string) and answered as JSON numbers, as 000 writes them."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from learnsail.api import Schema
from learnsail.api.validation import Id, QuerySchema, UTCInstant
from learnsail_payments.gateways import PLATFORMS
from learnsail_payments.models import (COUPON_SCOPES, COUPON_TYPES, DISCREPANCY_KINDS, ORDER_STATUSES,
                                       REFUND_STATUSES)

MAX_MONEY = 99_999_999  # DECIMAL(10, 2)
_MONEY = dict(as_string=False, places=2, validate=validate.Range(min=0, max=MAX_MONEY))
_POSITIVE_MONEY = dict(as_string=False, places=2, validate=validate.Range(min=0.01, max=MAX_MONEY))
PRODUCT_TYPE = validate.Regexp(r"^[a-z][a-z0-9_]{0,31}$", error="A product type is a lower-case word.")


def Page(**kwargs):
    return fields.Integer(validate=validate.Range(min=1), metadata={"description": "Page number (1-based)."},
                          **kwargs)


def PageSize(**kwargs):
    return fields.Integer(validate=validate.Range(min=1),
                          metadata={"description": "Items per page (default 20, capped at 100)."}, **kwargs)


def Amount(**kwargs):
    return fields.Float(metadata={"description": "Yuan, two places.", **kwargs.pop("metadata", {})}, **kwargs)


class IdPath(Schema):
    id = Id(required=True)


class OrderNoPath(Schema):
    order_no = fields.String(required=True, validate=validate.Length(min=1, max=64))


class PlatformPath(Schema):
    platform = fields.String(required=True, validate=validate.Length(min=1, max=20))


# --- orders ---------------------------------------------------------------------------

class OrderCreateSchema(Schema):
    course_id = Id(metadata={"description": "000: the course to buy (product_type course)."})
    product_type = fields.String(validate=PRODUCT_TYPE,
                                 metadata={"description": "What to buy: course, membership, or any type a plugin "
                                                          "sells."})
    product_id = Id(metadata={"description": "Its id."})
    coupon_id = Id(load_default=None, allow_none=True, metadata={"description": "A coupon to apply."})

    @validates_schema
    def _one_product(self, data, **kwargs):
        if data.get("course_id") is not None:
            if data.get("product_type") not in (None, "course") or data.get("product_id") not in (None,
                                                                                             data["course_id"]):
                raise ValidationError("Give course_id, or product_type and product_id, not both.", "course_id")
            return
        missing = [name for name in ("product_type", "product_id") if data.get(name) is None]
        if missing:
            raise ValidationError("Give course_id, or product_type and product_id.", missing[0])


class OrderListQuery(QuerySchema):
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
    product_type = fields.String(validate=PRODUCT_TYPE)
    page = Page()
    page_size = PageSize()


class AdminOrderListQuery(OrderListQuery):
    user_id = Id()
    product_id = Id()
    platform = fields.String(validate=validate.OneOf(PLATFORMS))
    order_no = fields.String(validate=validate.Length(max=64))
    since = UTCInstant(metadata={"description": "Created at or after (ISO 8601)."})
    until = UTCInstant(metadata={"description": "Created before (ISO 8601)."})


class OrderCancelSchema(Schema):
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class PaySchema(Schema):
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS),
                             metadata={"description": "wechat, alipay or sandbox."})
    scene = fields.String(load_default=None, allow_none=True,
                          validate=validate.OneOf(("jsapi", "native", "h5", "page", "app", "wap")),
                          metadata={"description": "WeChat: jsapi (default), native, h5; Alipay: page (default), "
                                                   "app, wap."})
    openid = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128),
                           metadata={"description": "WeChat JSAPI: the payer's openid (default: their bound "
                                                    "WeChat sign-in)."})
    return_url = fields.Url(load_default=None, allow_none=True, schemes={"http", "https"}, require_tld=False,
                            validate=validate.Length(max=500),
                            metadata={"description": "Alipay page pay: where the browser returns."})


class SandboxConfirmQuery(QuerySchema):
    amount = fields.String(required=True, validate=validate.Length(max=20))
    currency = fields.String(required=True, validate=validate.Length(max=3))
    expires = fields.String(required=True, validate=validate.Length(max=20))
    sig = fields.String(required=True, validate=validate.Length(max=128))


class ProductSchema(Schema):
    type = fields.String()
    id = fields.Integer()
    title = fields.String()
    image_url = fields.String(allow_none=True)


class CourseRefSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    cover_image_url = fields.String(allow_none=True)


class OrderCouponSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    discount_amount = Amount()


class OrderItemSchema(Schema):
    product_type = fields.String()
    product_id = fields.Integer()
    title = fields.String()
    unit_price = Amount()
    quantity = fields.Integer()
    amount = Amount()


class RefundSchema(Schema):
    id = fields.Integer()
    refund_no = fields.String()
    order_id = fields.Integer()
    amount = Amount()
    reason = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "requested, rejected, processing, succeeded, failed."})
    review_note = fields.String(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    reviewed_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)


class OrderSchema(Schema):
    id = fields.Integer()
    order_no = fields.String()
    user_id = fields.Integer()
    course_id = fields.Integer(allow_none=True, metadata={"description": "000: the course bought (course orders)."})
    course_title = fields.String(allow_none=True)
    course = fields.Nested(CourseRefSchema, allow_none=True)
    product_type = fields.String()
    product_id = fields.Integer()
    title = fields.String()
    product = fields.Nested(ProductSchema)
    original_price = Amount(metadata={"description": "The quoted price."})
    discount_price = Amount(metadata={"description": "The price after the coupon: what is paid."})
    discount_amount = Amount()
    amount = Amount(metadata={"description": "What is (to be) paid (= discount_price)."})
    refunded_amount = Amount()
    currency = fields.String()
    coupon_id = fields.Integer(allow_none=True)
    coupon = fields.Nested(OrderCouponSchema, allow_none=True)
    status = fields.String(metadata={"description": ", ".join(ORDER_STATUSES)})
    platform = fields.String(allow_none=True)
    created_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    expired_at = fields.DateTime(metadata={"description": "When a pending order expires."})
    items = fields.List(fields.Nested(OrderItemSchema))
    refunds = fields.List(fields.Nested(RefundSchema))


class OrderSummarySchema(Schema):
    id = fields.Integer()
    order_no = fields.String()
    course_title = fields.String(allow_none=True)
    title = fields.String()
    product_type = fields.String()
    product_id = fields.Integer()
    price = Amount(metadata={"description": "What is (to be) paid."})
    original_price = Amount()
    refunded_amount = Amount()
    currency = fields.String()
    status = fields.String()
    platform = fields.String(allow_none=True)
    created_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    expired_at = fields.DateTime()


class AdminOrderSummarySchema(OrderSummarySchema):
    user_id = fields.Integer()


class OrderEventSchema(Schema):
    id = fields.Integer()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    actor_type = fields.String(metadata={"description": "user, admin, gateway, system."})
    actor_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime()


class PayResponseSchema(Schema):
    order_id = fields.Integer()
    order_no = fields.String()
    platform = fields.String()
    pay_params = fields.Dict(metadata={"description": "What the client needs: WeChat JSAPI (appId, timeStamp, "
                                                      "nonceStr, package, signType, paySign) or Native (code_url); "
                                                      "Alipay the signed page/app request; the sandbox a "
                                                      "confirm_url to POST."})


class SandboxConfirmedSchema(Schema):
    order_id = fields.Integer()
    order_no = fields.String()
    status = fields.String()
    changed = fields.Boolean()


class CallbackAckSchema(Schema):
    code = fields.Raw(metadata={"description": "0 (sandbox) / SUCCESS (WeChat); Alipay answers the text success."})
    message = fields.String()


# --- refunds --------------------------------------------------------------------------------

class RefundRequestSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    amount = fields.Decimal(load_default=None, allow_none=True, **_POSITIVE_MONEY,
                            metadata={"description": "Default: what is left of the order."})


class AdminRefundSchema(Schema):
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    amount = fields.Decimal(load_default=None, allow_none=True, **_POSITIVE_MONEY,
                            metadata={"description": "Default: what is left of the order."})


class RefundReviewSchema(Schema):
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class RefundListQuery(QuerySchema):
    status = fields.String(validate=validate.OneOf(REFUND_STATUSES))
    page = Page()
    page_size = PageSize()


class AdminRefundSummarySchema(RefundSchema):
    order_no = fields.String()
    user_id = fields.Integer()
    platform = fields.String(allow_none=True)


# --- coupons ------------------------------------------------------------------------------------

class CouponListQuery(QuerySchema):
    course_id = Id(metadata={"description": "000: whether each coupon is valid for this course."})
    product_type = fields.String(validate=PRODUCT_TYPE)
    product_id = Id()


class CouponUseSchema(Schema):
    order_id = Id(required=True)


class CouponUsedSchema(Schema):
    message = fields.String()
    order_id = fields.Integer()
    coupon_id = fields.Integer()
    discount_amount = Amount()


class ProductRefSchema(Schema):
    product_type = fields.String(required=True, validate=PRODUCT_TYPE)
    product_id = Id(required=True)


class CouponSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    type = fields.String(metadata={"description": "fixed, percent, threshold."})
    discount_amount = Amount(allow_none=True)
    discount_percent = fields.Integer(allow_none=True)
    max_discount = Amount(allow_none=True)
    min_order_amount = Amount()
    start_time = fields.DateTime()
    end_time = fields.DateTime()
    is_valid = fields.Boolean()
    reason = fields.String(allow_none=True, metadata={"description": "Why it is not valid (null when it is)."})
    available = fields.Integer(metadata={"description": "Copies the caller may still use."})
    reserved = fields.Integer(metadata={"description": "Copies held by the caller's pending orders."})
    is_public = fields.Boolean()
    scope = fields.String()
    product_type = fields.String(allow_none=True)
    products = fields.List(fields.Nested(ProductRefSchema))


class _CouponTerms(Schema):
    code = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{3,32}$",
                                                  error="3 to 32 letters, digits, _ or -."))
    name = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    type = fields.String(validate=validate.OneOf(COUPON_TYPES))
    discount_amount = fields.Decimal(allow_none=True, **_POSITIVE_MONEY)
    discount_percent = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=99))
    max_discount = fields.Decimal(allow_none=True, **_POSITIVE_MONEY)
    min_order_amount = fields.Decimal(**_MONEY)
    start_time = UTCInstant()
    end_time = UTCInstant()
    total_quantity = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=10_000_000))
    per_user_limit = fields.Integer(validate=validate.Range(min=1, max=1000))
    is_public = fields.Boolean()
    scope = fields.String(validate=validate.OneOf(COUPON_SCOPES))
    product_type = fields.String(allow_none=True, validate=PRODUCT_TYPE)
    products = fields.List(fields.Nested(ProductRefSchema), validate=validate.Length(max=500))
    is_active = fields.Boolean()


class CouponCreateSchema(_CouponTerms):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    type = fields.String(required=True, validate=validate.OneOf(COUPON_TYPES))
    start_time = UTCInstant(required=True)
    end_time = UTCInstant(required=True)


class CouponUpdateSchema(_CouponTerms):
    pass


class AdminCouponSchema(CouponSchema):
    description = fields.String(allow_none=True)
    total_quantity = fields.Integer(allow_none=True)
    claimed_count = fields.Integer()
    used_count = fields.Integer()
    per_user_limit = fields.Integer()
    is_active = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class AdminCouponListQuery(QuerySchema):
    page = Page()
    page_size = PageSize()


class CouponIssueSchema(Schema):
    user_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=1000))


class CouponIssuedSchema(Schema):
    issued = fields.List(fields.Integer())
    skipped = fields.Dict(keys=fields.String(), values=fields.String(),
                          metadata={"description": "User id → why no copy was issued."})


# --- memberships ----------------------------------------------------------------------------------

class PlanSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    duration_days = fields.Integer()
    price = Amount()
    currency = fields.String()
    is_active = fields.Boolean()
    sort_order = fields.Integer()
    product_type = fields.String(metadata={"description": "Order it with product_type membership and this id."})


class PlanCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5000))
    duration_days = fields.Integer(required=True, validate=validate.Range(min=1, max=3660))
    price = fields.Decimal(required=True, **_POSITIVE_MONEY)
    is_active = fields.Boolean(load_default=True)
    sort_order = fields.Integer(load_default=0, validate=validate.Range(min=-1_000_000, max=1_000_000))


class PlanUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    duration_days = fields.Integer(validate=validate.Range(min=1, max=3660))
    price = fields.Decimal(**_POSITIVE_MONEY)
    is_active = fields.Boolean()
    sort_order = fields.Integer(validate=validate.Range(min=-1_000_000, max=1_000_000))


class PlanListQuery(QuerySchema):
    include_inactive = fields.Boolean(metadata={"description": "Also plans not on sale (plan managers)."})


class MembershipSchema(Schema):
    is_member = fields.Boolean()
    started_at = fields.DateTime(allow_none=True)
    ends_at = fields.DateTime(allow_none=True)
    days_left = fields.Integer()


# --- statistics and reconciliation ---------------------------------------------------------------

class SalesStatsQuery(QuerySchema):
    since = UTCInstant(metadata={"description": "Paid at or after (default: 30 days ago)."})
    until = UTCInstant(metadata={"description": "Paid before (default: now)."})


class SalesFiguresSchema(Schema):
    orders = fields.Integer()
    sales = Amount()
    refunds = Amount()
    net_sales = Amount()
    refunded_orders = fields.Integer()
    refund_rate = fields.Float(metadata={"description": "Share of paid orders with a refund (0..1)."})
    average_order_value = Amount()


class DaySalesSchema(SalesFiguresSchema):
    date = fields.String()


class ProductSalesSchema(SalesFiguresSchema):
    product_type = fields.String()
    product_id = fields.Integer()
    title = fields.String()


class PlatformSalesSchema(SalesFiguresSchema):
    platform = fields.String(allow_none=True)


class RefundReasonCountSchema(Schema):
    reason = fields.String()
    count = fields.Integer()


class SalesStatsSchema(Schema):
    since = fields.DateTime()
    until = fields.DateTime()
    totals = fields.Nested(SalesFiguresSchema)
    by_day = fields.List(fields.Nested(DaySalesSchema))
    by_product = fields.List(fields.Nested(ProductSalesSchema))
    by_platform = fields.List(fields.Nested(PlatformSalesSchema))
    refund_reasons = fields.List(fields.Nested(RefundReasonCountSchema))


class DiscrepancyQuery(QuerySchema):
    resolved = fields.Boolean()
    kind = fields.String(validate=validate.OneOf(DISCREPANCY_KINDS))
    page = Page()
    page_size = PageSize()


class DiscrepancySchema(Schema):
    id = fields.Integer()
    order_id = fields.Integer(allow_none=True)
    order_no = fields.String()
    platform = fields.String()
    kind = fields.String(metadata={"description": ", ".join(DISCREPANCY_KINDS)})
    order_status = fields.String(allow_none=True)
    gateway_status = fields.String(allow_none=True)
    amount = Amount(allow_none=True)
    gateway_amount = Amount(allow_none=True)
    transaction_id = fields.String(allow_none=True)
    detail = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "notification or reconciliation."})
    detected_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by = fields.Integer(allow_none=True)
    resolution_note = fields.String(allow_none=True)


class DiscrepancyResolveSchema(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ReconcileSummarySchema(Schema):
    checked = fields.Integer()
    settled = fields.Integer()
    findings = fields.Integer()
    errors = fields.Integer()
