"""payments: initial

The plugin's branch ("payments") starts here.  It needs only the core's
``users`` table, created by core_0001, so that is what it depends on.

Generated with alembic's autogenerate against a database at the core's
head (the models of learnsail_payments.models), then tidied: the
downgrade drops the tables only (their indexes go with them; MySQL
refuses to drop an index a foreign key needs).

Revision ID: payments_0001
Revises:
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import learnsail.db  # noqa: F401  (custom column types such as UTCDateTime)


revision = 'payments_0001'
down_revision = None
branch_labels = ('payments',)
depends_on = 'core_0001'


def upgrade() -> None:
    op.create_table('payments_membership_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('duration_days', sa.Integer(), nullable=False),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_membership_plans'))
    )
    op.create_table('payments_notification_nonces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_notification_nonces')),
    sa.UniqueConstraint('platform', 'nonce', name=op.f('uq_payments_notification_nonces_platform_nonce'))
    )
    with op.batch_alter_table('payments_notification_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_notification_nonces_created_at'), ['created_at'], unique=False)

    op.create_table('payments_coupons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('discount_amount', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('discount_percent', sa.Integer(), nullable=True),
    sa.Column('max_discount', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('min_order_amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('start_time', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('end_time', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('total_quantity', sa.Integer(), nullable=True),
    sa.Column('claimed_count', sa.Integer(), nullable=False),
    sa.Column('used_count', sa.Integer(), nullable=False),
    sa.Column('per_user_limit', sa.Integer(), nullable=False),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('scope_product_type', sa.String(length=32), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_payments_coupons_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_payments_coupons_code'))
    )
    op.create_table('payments_memberships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('started_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('ends_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_memberships_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_memberships')),
    sa.UniqueConstraint('user_id', name=op.f('uq_payments_memberships_user_id'))
    )
    op.create_table('payments_coupon_products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=False),
    sa.Column('product_type', sa.String(length=32), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['coupon_id'], ['payments_coupons.id'], name=op.f('fk_payments_coupon_products_coupon_id_payments_coupons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_coupon_products')),
    sa.UniqueConstraint('coupon_id', 'product_type', 'product_id', name=op.f('uq_payments_coupon_products_coupon_id_product_type_product_id'))
    )
    op.create_table('payments_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_no', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('product_type', sa.String(length=32), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('image_url', sa.String(length=500), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('original_amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('discount_amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('refunded_amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=True),
    sa.Column('user_coupon_id', sa.Integer(), nullable=True),
    sa.Column('platform', sa.String(length=20), nullable=True),
    sa.Column('transaction_id', sa.String(length=64), nullable=True),
    sa.Column('expires_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('paid_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('closed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('pending_key', sa.String(length=80), nullable=True),
    sa.Column('reconciled_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['coupon_id'], ['payments_coupons.id'], name=op.f('fk_payments_orders_coupon_id_payments_coupons'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_orders_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_orders')),
    sa.UniqueConstraint('order_no', name=op.f('uq_payments_orders_order_no')),
    sa.UniqueConstraint('pending_key', name=op.f('uq_payments_orders_pending_key'))
    )
    with op.batch_alter_table('payments_orders', schema=None) as batch_op:
        batch_op.create_index('ix_payments_orders_paid_at', ['paid_at'], unique=False)
        batch_op.create_index('ix_payments_orders_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_payments_orders_user_id_created_at', ['user_id', 'created_at'], unique=False)

    op.create_table('payments_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('client_ip', sa.String(length=45), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('last_started_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['payments_orders.id'], name=op.f('fk_payments_attempts_order_id_payments_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_attempts')),
    sa.UniqueConstraint('order_id', 'platform', name=op.f('uq_payments_attempts_order_id_platform'))
    )
    op.create_table('payments_discrepancies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('order_no', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('order_status', sa.String(length=20), nullable=True),
    sa.Column('gateway_status', sa.String(length=20), nullable=True),
    sa.Column('amount', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('gateway_amount', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('transaction_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('detected_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('resolved_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('resolved_by', sa.Integer(), nullable=True),
    sa.Column('resolution_note', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['payments_orders.id'], name=op.f('fk_payments_discrepancies_order_id_payments_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resolved_by'], ['users.id'], name=op.f('fk_payments_discrepancies_resolved_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_discrepancies')),
    sa.UniqueConstraint('order_no', 'platform', 'kind', name=op.f('uq_payments_discrepancies_order_no_platform_kind'))
    )
    op.create_table('payments_membership_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('starts_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('ends_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['payments_orders.id'], name=op.f('fk_payments_membership_grants_order_id_payments_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['plan_id'], ['payments_membership_plans.id'], name=op.f('fk_payments_membership_grants_plan_id_payments_membership_plans'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_membership_grants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_membership_grants')),
    sa.UniqueConstraint('order_id', name=op.f('uq_payments_membership_grants_order_id'))
    )
    with op.batch_alter_table('payments_membership_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_membership_grants_user_id'), ['user_id'], unique=False)

    op.create_table('payments_order_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('actor_type', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=255), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['payments_orders.id'], name=op.f('fk_payments_order_events_order_id_payments_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_order_events'))
    )
    with op.batch_alter_table('payments_order_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_order_events_order_id'), ['order_id'], unique=False)

    op.create_table('payments_order_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('product_type', sa.String(length=32), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['payments_orders.id'], name=op.f('fk_payments_order_items_order_id_payments_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_order_items'))
    )
    with op.batch_alter_table('payments_order_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_order_items_order_id'), ['order_id'], unique=False)

    op.create_table('payments_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('refund_no', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('order_status_before', sa.String(length=20), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('review_note', sa.String(length=500), nullable=True),
    sa.Column('reviewed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('gateway_refund_id', sa.String(length=64), nullable=True),
    sa.Column('failure_reason', sa.String(length=255), nullable=True),
    sa.Column('completed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['payments_orders.id'], name=op.f('fk_payments_refunds_order_id_payments_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_payments_refunds_requested_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_payments_refunds_reviewer_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_refunds')),
    sa.UniqueConstraint('refund_no', name=op.f('uq_payments_refunds_refund_no'))
    )
    with op.batch_alter_table('payments_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_refunds_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_payments_refunds_status_created_at', ['status', 'created_at'], unique=False)

    op.create_table('payments_user_coupons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('issued_by', sa.Integer(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('used_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['coupon_id'], ['payments_coupons.id'], name=op.f('fk_payments_user_coupons_coupon_id_payments_coupons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['issued_by'], ['users.id'], name=op.f('fk_payments_user_coupons_issued_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['order_id'], ['payments_orders.id'], name=op.f('fk_payments_user_coupons_order_id_payments_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_user_coupons_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_user_coupons')),
    sa.UniqueConstraint('coupon_id', 'user_id', 'seq', name=op.f('uq_payments_user_coupons_coupon_id_user_id_seq'))
    )
    with op.batch_alter_table('payments_user_coupons', schema=None) as batch_op:
        batch_op.create_index('ix_payments_user_coupons_user_id_status', ['user_id', 'status'], unique=False)



def downgrade() -> None:
    op.drop_table('payments_user_coupons')
    op.drop_table('payments_refunds')
    op.drop_table('payments_order_items')
    op.drop_table('payments_order_events')
    op.drop_table('payments_membership_grants')
    op.drop_table('payments_discrepancies')
    op.drop_table('payments_attempts')
    op.drop_table('payments_orders')
    op.drop_table('payments_coupon_products')
    op.drop_table('payments_memberships')
    op.drop_table('payments_coupons')
    op.drop_table('payments_notification_nonces')
    op.drop_table('payments_membership_plans')
