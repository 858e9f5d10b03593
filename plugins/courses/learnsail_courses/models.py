"""The plugin's tables (000 §四: Course, Category, Chapter, Lesson, Note,
Progress, Comment; plus tags, enrolments, collections, likes and a daily
learning log).  Every table name starts with ``courses_``, so it belongs to
the plugin's alembic branch."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from learnsail.db import Base, TimestampMixin, UTCDateTime
from learnsail.identity.models import User

class NameList(sa.types.TypeDecorator):
    """A short list of names kept as JSON text in a VARCHAR: unlike a
    TEXT or JSON column, a page that carries it is sorted in memory by
    MySQL/MariaDB (a TEXT column sends that temporary table to disk)."""

    impl = sa.String(700)  # 10 tags of at most 50 characters, quoted
    cache_ok = True

    def process_bind_param(self, value: list[str] | None, dialect: Any) -> str:
        return json.dumps(list(value or []), ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect: Any) -> list[str]:
        return json.loads(value) if value else []


# --- vocabularies -------------------------------------------------------------

DIFFICULTIES = ("beginner", "intermediate", "advanced")
COURSE_TYPES = ("video", "live", "article")
LESSON_TYPES = ("video", "document", "quiz")
TAG_TYPES = ("general", "level", "goal", "skill", "body_part")

DRAFT, REVIEWING, PUBLISHED, REJECTED, ARCHIVED = "draft", "reviewing", "published", "rejected", "archived"
COURSE_STATUSES = (DRAFT, REVIEWING, PUBLISHED, REJECTED, ARCHIVED)

FREE, PAID, TRIAL, MEMBER = "free", "paid", "trial", "member"
ENROLMENT_KINDS = (FREE, PAID, TRIAL, MEMBER)
ACTIVE, ENDED = "active", "ended"


class Category(TimestampMixin, Base):
    """A node of the category tree.  ``path`` is the ids from the root,
    ``/1/4/9/``, so "this category and everything under it" is one
    ``LIKE '/1/4/%'``."""

    __tablename__ = "courses_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("courses_categories.id", ondelete="RESTRICT"), index=True)
    level: Mapped[int] = mapped_column(default=1)
    path: Mapped[str] = mapped_column(sa.String(255), default="/", index=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    sort_order: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)


class Tag(TimestampMixin, Base):
    __tablename__ = "courses_tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)
    type: Mapped[str] = mapped_column(sa.String(20), default="general")
    colour: Mapped[str | None] = mapped_column(sa.String(7))


course_tags = sa.Table(
    "courses_course_tags", Base.metadata,
    sa.Column("course_id", sa.ForeignKey("courses_courses.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("courses_tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Course(TimestampMixin, Base):
    __tablename__ = "courses_courses"
    __table_args__ = (
        # the catalogue: its filter (published, not deleted) and its default
        # order, so the count and the page's ids are read from the index alone
        sa.Index("ix_courses_courses_status_deleted_at_published_at", "status", "deleted_at", "published_at"),
        sa.Index("ix_courses_courses_category_id_status_deleted_at", "category_id", "status", "deleted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100), index=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    cover_image_url: Mapped[str | None] = mapped_column(sa.String(255))
    teacher_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    category_id: Mapped[int | None] = mapped_column(sa.ForeignKey("courses_categories.id"))
    difficulty: Mapped[str] = mapped_column(sa.String(20), default="beginner")
    course_type: Mapped[str] = mapped_column(sa.String(20), default="video")
    price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2, asdecimal=True), default=Decimal("0.00"))
    is_free: Mapped[bool] = mapped_column(default=True)
    #: open to members (asked through learnsail_member_until) without buying
    is_member_only: Mapped[bool] = mapped_column(default=False)
    #: the names of ``tags``, sorted (000's Course.tags): the catalogue's
    #: cards read them with the row; kept by catalog.refresh_tag_names
    tag_names: Mapped[list[str]] = mapped_column(NameList(), default=list)
    #: total of the lessons' durations, in minutes (rounded up)
    duration: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(20), default=DRAFT)
    student_count: Mapped[int] = mapped_column(default=0)
    rating: Mapped[Decimal] = mapped_column(sa.Numeric(3, 2, asdecimal=True), default=Decimal("0.00"))
    rating_count: Mapped[int] = mapped_column(default=0)
    language: Mapped[str] = mapped_column(sa.String(50), default="中文")
    #: percentage at which a lesson counts as completed (None: the setting)
    completion_threshold: Mapped[int | None]
    review_comment: Mapped[str | None] = mapped_column(sa.Text)
    reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)

    teacher: Mapped[User] = relationship(foreign_keys=[teacher_id], lazy="raise")
    category: Mapped[Category | None] = relationship(lazy="raise")
    tags: Mapped[list[Tag]] = relationship(secondary=course_tags, lazy="raise", order_by=Tag.name)


class Chapter(TimestampMixin, Base):
    __tablename__ = "courses_chapters"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_courses.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    sort_order: Mapped[int] = mapped_column(default=0)
    is_free: Mapped[bool] = mapped_column(default=False)


class Lesson(TimestampMixin, Base):
    __tablename__ = "courses_lessons"

    id: Mapped[int] = mapped_column(primary_key=True)
    chapter_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_chapters.id", ondelete="CASCADE"), index=True)
    #: the chapter's course, kept here so progress and access need no join
    course_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_courses.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    #: a video of the video plugin (no foreign key: that plugin may be absent)
    video_id: Mapped[int | None]
    duration: Mapped[int] = mapped_column(default=0)  # seconds
    sort_order: Mapped[int] = mapped_column(default=0)
    is_free: Mapped[bool] = mapped_column(default=False)
    is_trial: Mapped[bool] = mapped_column(default=False)
    resource_url: Mapped[str | None] = mapped_column(sa.String(255))
    type: Mapped[str] = mapped_column(sa.String(20), default="video")


class Enrolment(TimestampMixin, Base):
    """One user's place in one course (001 §3): free, paid, trial or member;
    usable between ``valid_from`` and ``valid_until`` while active."""

    __tablename__ = "courses_enrolments"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "course_id"),
        sa.Index("ix_courses_enrolments_course_id_status", "course_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_courses.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(20), default="free")
    status: Mapped[str] = mapped_column(sa.String(20), default=ACTIVE)
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    progress_percent: Mapped[Decimal] = mapped_column(sa.Numeric(5, 2, asdecimal=True), default=Decimal("0"))
    completed_lessons: Mapped[int] = mapped_column(default=0)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_accessed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: a paid enrolment: the payments order that bought it, and what was paid
    order_no: Mapped[str | None] = mapped_column(sa.String(64))
    price_paid: Mapped[Decimal | None] = mapped_column(sa.Numeric(10, 2, asdecimal=True))

    course: Mapped[Course] = relationship(lazy="raise")
    user: Mapped[User] = relationship(lazy="raise")


class Progress(TimestampMixin, Base):
    __tablename__ = "courses_progress"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "lesson_id"),
        sa.Index("ix_courses_progress_user_id_course_id", "user_id", "course_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    lesson_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_lessons.id", ondelete="CASCADE"), index=True)
    course_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_courses.id", ondelete="CASCADE"), index=True)
    progress_percent: Mapped[Decimal] = mapped_column(sa.Numeric(5, 2, asdecimal=True), default=Decimal("0"))
    last_position: Mapped[int] = mapped_column(default=0)
    is_completed: Mapped[bool] = mapped_column(default=False)
    completion_date: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: seconds of learning credited (position advances, capped per report)
    learned_seconds: Mapped[int] = mapped_column(default=0)


class LearningDay(Base):
    """Seconds learnt per user per day (UTC): the stats' daily trend."""

    __tablename__ = "courses_learning_days"
    __table_args__ = (sa.UniqueConstraint("user_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[dt.date]
    seconds: Mapped[int] = mapped_column(default=0)


class Note(TimestampMixin, Base):
    __tablename__ = "courses_notes"
    __table_args__ = (sa.Index("ix_courses_notes_user_id_lesson_id", "user_id", "lesson_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    lesson_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_lessons.id", ondelete="CASCADE"), index=True)
    content: Mapped[str] = mapped_column(sa.Text)
    position: Mapped[int | None]


class Collection(Base):
    __tablename__ = "courses_collections"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    course_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_courses.id", ondelete="CASCADE"),
                                           primary_key=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Comment(TimestampMixin, Base):
    """A course comment (000 §四 Comment).  Top-level comments may carry a
    rating; replies (``parent_id``) never do.  ``root_id`` is the top-level
    comment of a reply's thread, so a page of threads loads in one query.
    ``rated_by`` is the author while the comment carries a rating: its
    unique key keeps one rating per user per course."""

    __tablename__ = "courses_comments"
    __table_args__ = (
        sa.Index("ix_courses_comments_course_id_parent_id", "course_id", "parent_id"),
        sa.UniqueConstraint("course_id", "rated_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    course_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_courses.id", ondelete="CASCADE"))
    lesson_id: Mapped[int | None] = mapped_column(sa.ForeignKey("courses_lessons.id", ondelete="SET NULL"))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("courses_comments.id", ondelete="CASCADE"),
                                                  index=True)
    root_id: Mapped[int | None] = mapped_column(sa.ForeignKey("courses_comments.id", ondelete="CASCADE"),
                                                index=True)
    content: Mapped[str] = mapped_column(sa.Text)
    rating: Mapped[int | None]
    rated_by: Mapped[int | None]
    is_approved: Mapped[bool] = mapped_column(default=True)
    is_hidden: Mapped[bool] = mapped_column(default=False)
    like_count: Mapped[int] = mapped_column(default=0)

    user: Mapped[User] = relationship(lazy="raise")


class CommentLike(Base):
    __tablename__ = "courses_comment_likes"

    comment_id: Mapped[int] = mapped_column(sa.ForeignKey("courses_comments.id", ondelete="CASCADE"),
                                            primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
