"""The notifications tables (core branch).

``notifications`` holds one row per in-app notification of one user;
``notification_preferences`` holds only the choices that differ from a
type's defaults (a missing row means "the type's default")."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from learnsail.db import Base, UTCDateTime, utcnow

#: the delivery channels a user can turn on or off per type
CHANNELS = ("in_app", "email", "sms")


class Notification(Base):
    """A message shown to one user in the app (the bell)."""

    __tablename__ = "notifications"
    __table_args__ = (sa.Index("ix_notifications_user_read", "user_id", "is_read", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    #: a declared type name (``core.system``, ``courses.new_lesson``)
    type: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str] = mapped_column(sa.String(200))
    content: Mapped[str] = mapped_column(sa.Text)
    #: what the notification is about (``"course"``, 42), for the client's link
    related_type: Mapped[str | None] = mapped_column(sa.String(50))
    related_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    is_read: Mapped[bool] = mapped_column(default=False, server_default="0")
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class NotificationPreference(Base):
    """A user's choice for one type and channel, where it differs from the
    type's default."""

    __tablename__ = "notification_preferences"
    __table_args__ = (sa.UniqueConstraint("user_id", "type", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(sa.String(10))
    enabled: Mapped[bool] = mapped_column()
