"""bookmarks: initial

The plugin's branch ("bookmarks") starts here.  It needs only the core's
``users`` table, created by core_0001, so that is what it depends on (not
on whatever the core's head is today).

Generated with ``learnsail db revision --plugin bookmarks -m "bookmarks:
initial" --autogenerate --rev-id bookmarks_0001``, then tidied.

Revision ID: bookmarks_0001
Revises:
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from learnsail.db import UTCDateTime

revision = "bookmarks_0001"
down_revision = None
branch_labels = ("bookmarks",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "bookmarks_bookmarks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_bookmarks_bookmarks_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookmarks_bookmarks")),
        sa.UniqueConstraint("user_id", "url_hash", name=op.f("uq_bookmarks_bookmarks_user_id_url_hash")),
    )
    op.create_index(op.f("ix_bookmarks_bookmarks_user_id"), "bookmarks_bookmarks", ["user_id"])


def downgrade() -> None:
    # the table's indexes go with it (MySQL refuses to drop an index a
    # foreign key still needs)
    op.drop_table("bookmarks_bookmarks")
