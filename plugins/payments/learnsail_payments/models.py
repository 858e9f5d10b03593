"""The plugin's tables.  Every name starts with ``payments_`` (the plugin's
alembic branch).  Money is ``DECIMAL(10, 2)`` read as :class:`Decimal`,
in yuan; instants are aware UTC.

The order carries exactly the attributes the commerce hooks document
(``id, order_no, user_id, product_type, product_id, title, currency,
amount, paid_at, status, refunded_amount``); its ``status`` changes only
through :func:`learnsail_payments.states.transition`, which writes the
immutable :class:`OrderEvent` of every change.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from learnsail.db import Base, TimestampMixin, UTCDateTime, utcnow

#: DECIMAL(10, 2), read back as Decimal on every backend
Money = sa.Numeric(10, 2, asdecimal=True)
ZERO = Decimal("0.00")

# --- vocabularies -------------------------------------------------------------

PENDING, PAID, REFUNDING, REFUNDED, PARTIALLY_REFUNDED = "pending", "paid", "refunding", "refunded", \
    "partially_refunded"
CANCELLED, EXPIRED = "cancelled", "expired"
ORDER_STATUSES = (PENDING, PAID, REFUNDING, REFUNDED, PARTIALLY_REFUNDED, CANCELLED, EXPIRED)
#: statuses of an order whose money was received
PAID_STATUSES = (PAID, REFUNDING, REFUNDED, PARTIALLY_REFUNDED)

FIXED, PERCENT, THRESHOLD = "fixed", "percent", "threshold"
COUPON_TYPES = (FIXED, PERCENT, THRESHOLD)
SCOPE_ALL, SCOPE_TYPE, SCOPE_PRODUCTS = "all", "product_type", "products"
COUPON_SCOPES = (SCOPE_ALL, SCOPE_TYPE, SCOPE_PRODUCTS)
#: a user's copy of a coupon
AVAILABLE, RESERVED, USED = "available", "reserved", "used"

#: refunds
REQUESTED, REJECTED, PROCESSING, SUCCEEDED, FAILED = "requested", "rejected", "processing", "succeeded", "failed"
REFUND_STATUSES = (REQUESTED, REJECTED, PROCESSING, SUCCEEDED, FAILED)
OPEN_REFUND_STATUSES = (REQUESTED, PROCESSING)

#: reconciliation findings
PAID_AT_GATEWAY_ONLY = "paid_at_gateway_only"
PAID_HERE_ONLY = "paid_here_only"
AMOUNT_MISMATCH = "amount_mismatch"
DISCREPANCY_KINDS = (PAID_AT_GATEWAY_ONLY, PAID_HERE_ONLY, AMOUNT_MISMATCH)


class Order(TimestampMixin, Base):
    """One purchase of one product, priced by ``learnsail_product_quote``."""

    __tablename__ = "payments_orders"
    __table_args__ = (
        sa.Index("ix_payments_orders_user_id_created_at", "user_id", "created_at"),
        sa.Index("ix_payments_orders_status_expires_at", "status", "expires_at"),
        sa.Index("ix_payments_orders_paid_at", "paid_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: unique, not guessable (time + 64 random bits); WeChat and Alipay out_trade_no
    order_no: Mapped[str] = mapped_column(sa.String(32), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"))
    product_type: Mapped[str] = mapped_column(sa.String(32))
    product_id: Mapped[int]
    title: Mapped[str] = mapped_column(sa.String(200))
    image_url: Mapped[str | None] = mapped_column(sa.String(500))
    currency: Mapped[str] = mapped_column(sa.String(3), default="CNY")
    #: the quoted price
    original_amount: Mapped[Decimal] = mapped_column(Money)
    discount_amount: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    #: what is (to be) paid: original_amount - discount_amount
    amount: Mapped[Decimal] = mapped_column(Money)
    refunded_amount: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    status: Mapped[str] = mapped_column(sa.String(20), default=PENDING)
    coupon_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments_coupons.id", ondelete="RESTRICT"))
    #: the user's copy the coupon came from (no foreign key: payments_user_coupons points back here)
    user_coupon_id: Mapped[int | None]
    #: the platform the order was paid through (wechat, alipay, sandbox)
    platform: Mapped[str | None] = mapped_column(sa.String(20))
    transaction_id: Mapped[str | None] = mapped_column(sa.String(64))
    expires_at: Mapped[dt.datetime]
    paid_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    #: "<user>:<type>:<id>" while pending, else NULL: at most one pending order per buyer and product
    pending_key: Mapped[str | None] = mapped_column(sa.String(80), unique=True)
    #: when reconciliation confirmed a paid order with its gateway
    reconciled_at: Mapped[dt.datetime | None]

    items: Mapped[list[OrderItem]] = relationship(back_populates="order", cascade="all, delete-orphan",
                                                  order_by="OrderItem.id")

    @property
    def expired_by_time(self) -> bool:
        return self.status == PENDING and self.expires_at <= utcnow()

    @property
    def effective_status(self) -> str:
        """``expired`` for a pending order past its expiry that the periodic
        task has not swept yet."""
        return EXPIRED if self.expired_by_time else self.status


class OrderItem(Base):
    """What an order buys, one line per product (an order buys one today)."""

    __tablename__ = "payments_order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("payments_orders.id", ondelete="CASCADE"), index=True)
    product_type: Mapped[str] = mapped_column(sa.String(32))
    product_id: Mapped[int]
    title: Mapped[str] = mapped_column(sa.String(200))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[int] = mapped_column(default=1)
    amount: Mapped[Decimal] = mapped_column(Money)

    order: Mapped[Order] = relationship(back_populates="items")


class OrderEvent(Base):
    """One status change of an order (004 状态变更日志): written by
    :func:`learnsail_payments.states.transition`, never changed or deleted."""

    __tablename__ = "payments_order_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("payments_orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(sa.String(20))
    to_status: Mapped[str] = mapped_column(sa.String(20))
    #: user, admin, gateway, system
    actor_type: Mapped[str] = mapped_column(sa.String(20))
    actor_id: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


@event.listens_for(OrderEvent, "before_update")
def _events_are_immutable(mapper, connection, target):  # noqa: ANN001
    raise RuntimeError("payments_order_events rows are immutable")


@event.listens_for(OrderEvent, "before_delete")
def _events_are_not_deleted(mapper, connection, target):  # noqa: ANN001
    raise RuntimeError("payments_order_events rows are immutable")


class PaymentAttempt(Base):
    """``POST /orders/{id}/pay`` started a payment on a platform: the
    platforms reconciliation asks, and closes on expiry."""

    __tablename__ = "payments_attempts"
    __table_args__ = (sa.UniqueConstraint("order_id", "platform"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("payments_orders.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(sa.String(20))
    amount: Mapped[Decimal] = mapped_column(Money)
    client_ip: Mapped[str | None] = mapped_column(sa.String(45))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class NotificationNonce(Base):
    """A nonce of an accepted notification (WeChat's Wechatpay-Nonce,
    Alipay's notify_id, the sandbox's): never accepted twice."""

    __tablename__ = "payments_notification_nonces"
    __table_args__ = (sa.UniqueConstraint("platform", "nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(sa.String(20))
    nonce: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Coupon(TimestampMixin, Base):
    """A discount: ``fixed`` (discount_amount off), ``percent``
    (discount_percent off, at most max_discount) or ``threshold``
    (discount_amount off from min_order_amount up)."""

    __tablename__ = "payments_coupons"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    type: Mapped[str] = mapped_column(sa.String(20))
    discount_amount: Mapped[Decimal | None] = mapped_column(Money)
    discount_percent: Mapped[int | None]
    max_discount: Mapped[Decimal | None] = mapped_column(Money)
    min_order_amount: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    start_time: Mapped[dt.datetime]
    end_time: Mapped[dt.datetime]
    #: copies that may exist (issued or claimed); NULL: unlimited
    total_quantity: Mapped[int | None]
    claimed_count: Mapped[int] = mapped_column(default=0)
    used_count: Mapped[int] = mapped_column(default=0)
    per_user_limit: Mapped[int] = mapped_column(default=1)
    #: any signed-in user may use it (a copy is claimed on first use); else only those it was issued to
    is_public: Mapped[bool] = mapped_column(default=False)
    scope: Mapped[str] = mapped_column(sa.String(20), default=SCOPE_ALL)
    scope_product_type: Mapped[str | None] = mapped_column(sa.String(32))
    is_active: Mapped[bool] = mapped_column(default=True)
    deleted_at: Mapped[dt.datetime | None]
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))

    products: Mapped[list[CouponProduct]] = relationship(cascade="all, delete-orphan",
                                                         order_by="CouponProduct.id")


class CouponProduct(Base):
    """A product a ``products``-scoped coupon applies to."""

    __tablename__ = "payments_coupon_products"
    __table_args__ = (sa.UniqueConstraint("coupon_id", "product_type", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(sa.ForeignKey("payments_coupons.id", ondelete="CASCADE"))
    product_type: Mapped[str] = mapped_column(sa.String(32))
    product_id: Mapped[int]


class UserCoupon(Base):
    """A user's copy of a coupon (issued by an admin or claimed on first
    use of a public coupon): available → reserved (by a pending order) →
    used (the order was paid), or back to available when the order expires
    or is cancelled.  ``seq`` numbers a user's copies (1..per_user_limit),
    so two racing claims cannot both take the last one."""

    __tablename__ = "payments_user_coupons"
    __table_args__ = (sa.UniqueConstraint("coupon_id", "user_id", "seq"),
                      sa.Index("ix_payments_user_coupons_user_id_status", "user_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(sa.ForeignKey("payments_coupons.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(sa.String(20), default=AVAILABLE)
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments_orders.id", ondelete="SET NULL"))
    issued_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[dt.datetime | None]


class Refund(TimestampMixin, Base):
    """A refund of (part of) a paid order: requested (by its buyer) →
    rejected, or approved and sent to the gateway → processing → succeeded
    | failed.  An administrator's own refund starts approved."""

    __tablename__ = "payments_refunds"
    __table_args__ = (sa.Index("ix_payments_refunds_status_created_at", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: our refund number (WeChat out_refund_no, Alipay out_request_no)
    refund_no: Mapped[str] = mapped_column(sa.String(40), unique=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("payments_orders.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    amount: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    status: Mapped[str] = mapped_column(sa.String(20), default=REQUESTED)
    #: the order's status when the refund was opened (paid or partially_refunded): where a rejection returns it
    order_status_before: Mapped[str] = mapped_column(sa.String(20))
    reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    review_note: Mapped[str | None] = mapped_column(sa.String(500))
    reviewed_at: Mapped[dt.datetime | None]
    gateway_refund_id: Mapped[str | None] = mapped_column(sa.String(64))
    failure_reason: Mapped[str | None] = mapped_column(sa.String(255))
    completed_at: Mapped[dt.datetime | None]


class MembershipPlan(TimestampMixin, Base):
    """A membership for sale (001 会员专享): ``duration_days`` of member-only
    content for ``price``; sold as product_type ``membership``."""

    __tablename__ = "payments_membership_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    duration_days: Mapped[int]
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(sa.String(3), default="CNY")
    is_active: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)


class Membership(Base):
    """A user's membership window; ``learnsail_member_until`` reads ``ends_at``."""

    __tablename__ = "payments_memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    started_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class MembershipGrant(Base):
    """The days one paid order added to a membership (a full refund takes them back)."""

    __tablename__ = "payments_membership_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("payments_orders.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments_membership_plans.id",
                                                              ondelete="SET NULL"))
    days: Mapped[int]
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Discrepancy(Base):
    """A reconciliation finding: the gateway and this database disagree
    about an order (paid there but not here, paid here but not there, a
    different amount).  An administrator resolves it."""

    __tablename__ = "payments_discrepancies"
    __table_args__ = (sa.UniqueConstraint("order_no", "platform", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments_orders.id", ondelete="SET NULL"))
    order_no: Mapped[str] = mapped_column(sa.String(64))
    platform: Mapped[str] = mapped_column(sa.String(20))
    kind: Mapped[str] = mapped_column(sa.String(30))
    order_status: Mapped[str | None] = mapped_column(sa.String(20))
    gateway_status: Mapped[str | None] = mapped_column(sa.String(20))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    gateway_amount: Mapped[Decimal | None] = mapped_column(Money)
    transaction_id: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[str | None] = mapped_column(sa.String(500))
    #: notification (a late callback) or reconciliation (the periodic query)
    source: Mapped[str] = mapped_column(sa.String(20))
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    resolution_note: Mapped[str | None] = mapped_column(sa.String(500))
