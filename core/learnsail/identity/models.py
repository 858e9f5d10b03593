"""Accounts and roles (000 §四 User, Role)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from learnsail.db import Base, TimestampMixin


class Role(TimestampMixin, Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(30), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    #: may a user pick this role when registering (student, teacher)?
    self_assignable: Mapped[bool] = mapped_column(default=False)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(50), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(100), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(20), unique=True)
    password: Mapped[str] = mapped_column(sa.String(255))
    role_id: Mapped[int] = mapped_column(sa.ForeignKey("roles.id"), index=True)
    last_login: Mapped[dt.datetime | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    avatar_url: Mapped[str | None] = mapped_column(sa.String(255))
    email_verified: Mapped[bool] = mapped_column(default=False)
    phone_verified: Mapped[bool] = mapped_column(default=False)

    role: Mapped[Role] = relationship(lazy="joined")
