"""The webhooks tables (core branch).

``webhook_endpoints`` are the receivers admins register; ``webhook_events``
is the outbox (one row per emitted event that at least one endpoint
subscribes to, written in the transaction of the change);
``webhook_deliveries`` is one event for one endpoint with its state, and
``webhook_attempts`` logs every HTTP attempt of a delivery."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from learnsail.db import Base, TimestampMixin, UTCDateTime, utcnow

#: the states of a delivery
PENDING, RETRYING, SUCCEEDED, FAILED = "pending", "retrying", "succeeded", "failed"
STATUSES = (PENDING, RETRYING, SUCCEEDED, FAILED)


class WebhookEndpoint(TimestampMixin, Base):
    """A URL that receives the events it subscribes to, signed with its secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    description: Mapped[str] = mapped_column(sa.String(500), default="", server_default="")
    #: the subscribed event types (a JSON list of declared names)
    events: Mapped[Any] = mapped_column(sa.JSON)
    #: the HMAC-SHA256 key; shown once, when created or rotated
    secret: Mapped[str] = mapped_column(sa.String(100))
    is_active: Mapped[bool] = mapped_column(default=True, server_default="1")
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))


class WebhookEvent(Base):
    """An emitted event, kept while its deliveries are."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the public id receivers see in the body and use to drop duplicates
    uid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    type: Mapped[str] = mapped_column(sa.String(100))
    data: Mapped[Any] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class WebhookDelivery(Base):
    """One event for one endpoint: pending, retrying, succeeded or failed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the X-Learnsail-Delivery header
    uid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(10), default=PENDING, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    #: the last attempt's HTTP status (None: no answer) and time in milliseconds
    response_status: Mapped[int | None] = mapped_column()
    response_time_ms: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    #: when the next attempt is due (None once it succeeded or failed for good)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class WebhookAttempt(Base):
    """One HTTP request of a delivery: what came back and how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                             index=True)
    number: Mapped[int] = mapped_column()
    response_status: Mapped[int | None] = mapped_column()
    response_time_ms: Mapped[int] = mapped_column()
    #: why it failed (no answer, a refused address, a non-2xx status)
    error: Mapped[str | None] = mapped_column(sa.String(500))
    #: the start of the receiver's answer, for debugging
    response_body: Mapped[str | None] = mapped_column(sa.String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
