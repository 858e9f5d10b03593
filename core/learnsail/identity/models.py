"""Accounts, roles, tokens, login history, verification codes and the audit
log (000 §四 User, Role, UserProfile; 004 §2.1-2.2)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from learnsail.db import Base, TimestampMixin, utcnow

GENDERS = ("male", "female", "other")


class Role(TimestampMixin, Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(30), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    #: admin, teacher and student come with the platform and stay
    is_builtin: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    #: a role inherits every permission of its parent
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("roles.id", ondelete="SET NULL"), index=True)


class RolePermission(Base):
    """A permission an admin granted to a role (on top of plugin defaults)."""

    __tablename__ = "role_permissions"

    role_id: Mapped[int] = mapped_column(sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(sa.String(100), primary_key=True)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(50), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(100), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(20), unique=True)
    password: Mapped[str] = mapped_column(sa.String(255))
    #: the primary (default) identity; further ones are in user_roles
    role_id: Mapped[int] = mapped_column(sa.ForeignKey("roles.id"), index=True)
    last_login: Mapped[dt.datetime | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    avatar_url: Mapped[str | None] = mapped_column(sa.String(255))
    email_verified: Mapped[bool] = mapped_column(default=False)
    phone_verified: Mapped[bool] = mapped_column(default=False)
    #: tokens issued before this instant are refused (logout everywhere,
    #: password change, disabling)
    tokens_valid_after: Mapped[dt.datetime | None]
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None] = mapped_column(index=True)

    role: Mapped[Role] = relationship(lazy="joined")
    profile: Mapped["UserProfile | None"] = relationship(back_populates="user", uselist=False,
                                                         cascade="all, delete-orphan")


class UserRole(Base):
    """Further identities a user holds (003: teacher here, student there)."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[int] = mapped_column(sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)


class UserProfile(TimestampMixin, Base):
    __tablename__ = "user_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    real_name: Mapped[str | None] = mapped_column(sa.String(50))
    gender: Mapped[str | None] = mapped_column(sa.String(10))
    birthday: Mapped[dt.date | None]
    bio: Mapped[str | None] = mapped_column(sa.Text)
    location: Mapped[str | None] = mapped_column(sa.String(100))
    education: Mapped[str | None] = mapped_column(sa.Text)
    work_experience: Mapped[str | None] = mapped_column(sa.Text)

    user: Mapped[User] = relationship(back_populates="profile")


class RefreshToken(Base):
    """One refresh token: single use; each use issues the next of its
    family.  Presenting a spent one revokes the whole family (theft)."""

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    family: Mapped[str] = mapped_column(sa.String(32), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(sa.String(30))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class RevokedToken(Base):
    """Access tokens revoked before they expire (logout)."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class LoginEvent(Base):
    """The login log users and admins read (004 §2.1.2)."""

    __tablename__ = "login_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    identifier: Mapped[str] = mapped_column(sa.String(100))
    ip: Mapped[str] = mapped_column(sa.String(45))
    user_agent: Mapped[str] = mapped_column(sa.String(255), default="")
    method: Mapped[str] = mapped_column(sa.String(20))
    success: Mapped[bool]
    reason: Mapped[str | None] = mapped_column(sa.String(50))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class VerificationCode(Base):
    """A one-time code sent by email or SMS (reset, verification, login)."""

    __tablename__ = "verification_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(sa.String(30))
    channel: Mapped[str] = mapped_column(sa.String(10))
    destination: Mapped[str] = mapped_column(sa.String(100), index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(128))
    attempts: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who changed what, from where, before and after (004 审计日志)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target_type: Mapped[str] = mapped_column(sa.String(50))
    target_id: Mapped[str | None] = mapped_column(sa.String(64))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    before: Mapped[Any | None] = mapped_column(sa.JSON)
    after: Mapped[Any | None] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


# the audit query filters on a target ("every change to role 7")
sa.Index("ix_audit_log_target", AuditEntry.target_type, AuditEntry.target_id)


class Menu(TimestampMixin, Base):
    """A navigation entry (004 §2.2.2 菜单管理): shown to a caller whose
    active role holds ``permission`` (everyone when it is empty); entries
    nest through ``parent_id`` and are ordered by ``sort_order``."""

    __tablename__ = "menus"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: deleting an entry that has children is refused (no cascade)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("menus.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    path: Mapped[str | None] = mapped_column(sa.String(255))
    icon: Mapped[str | None] = mapped_column(sa.String(100))
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")
    permission: Mapped[str | None] = mapped_column(sa.String(100))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())


class OAuthAccount(Base):
    """A third-party identity (WeChat, QQ) bound to a user."""

    __tablename__ = "oauth_accounts"
    __table_args__ = (sa.UniqueConstraint("platform", "openid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(sa.String(20))
    openid: Mapped[str] = mapped_column(sa.String(128))
    unionid: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    nickname: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
