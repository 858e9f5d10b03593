"""core: webhooks

Revision ID: core_0007
Revises: core_0006
Create Date: 2026-11-22
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import learnsail.db  # noqa: F401  (custom column types such as UTCDateTime)


revision = 'core_0007'
down_revision = 'core_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
