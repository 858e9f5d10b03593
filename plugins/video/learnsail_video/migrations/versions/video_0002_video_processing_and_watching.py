"""video: processing and watching

Transcode jobs and their renditions (001 VideoTranscodeJob), watch
sessions (001 VideoWatchRecord) and viewers (the merged intervals really
watched, the drop-off marks): the tables of learnsail_video.media_models.

Generated with ``learnsail db revision --plugin video -m "video: processing
and watching" --autogenerate --rev-id video_0002``, then tidied.

Revision ID: video_0002
Revises: video_0001
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import learnsail.db  # noqa: F401  (custom column types such as UTCDateTime)


revision = 'video_0002'
down_revision = 'video_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('video_transcode_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('qualities', sa.JSON(), nullable=True),
    sa.Column('input_format', sa.String(length=50), nullable=True),
    sa.Column('input_resolution', sa.String(length=20), nullable=True),
    sa.Column('input_bitrate', sa.Integer(), nullable=True),
    sa.Column('output_prefix', sa.String(length=512), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('queued_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('started_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('heartbeat_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('finished_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('processing_time', sa.Double(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_video_transcode_jobs_requested_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['video_id'], ['video_videos.id'], name=op.f('fk_video_transcode_jobs_video_id_video_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_video_transcode_jobs'))
    )
    with op.batch_alter_table('video_transcode_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_video_transcode_jobs_status_heartbeat_at', ['status', 'heartbeat_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_video_transcode_jobs_video_id'), ['video_id'], unique=False)

    op.create_table('video_viewers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('intervals', sa.JSON(), nullable=False),
    sa.Column('watched_seconds', sa.Double(), nullable=False),
    sa.Column('watched_percent', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('marks', sa.Integer(), nullable=False),
    sa.Column('last_position', sa.Double(), nullable=False),
    sa.Column('is_completed', sa.Boolean(), nullable=False),
    sa.Column('completed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('first_watched_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('last_watched_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_video_viewers_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['video_videos.id'], name=op.f('fk_video_viewers_video_id_video_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_video_viewers')),
    sa.UniqueConstraint('video_id', 'user_id', name=op.f('uq_video_viewers_video_id_user_id'))
    )
    with op.batch_alter_table('video_viewers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_video_viewers_user_id'), ['user_id'], unique=False)
        batch_op.create_index('ix_video_viewers_video_id_last_watched_at', ['video_id', 'last_watched_at'], unique=False)

    op.create_table('video_watch_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('lesson_id', sa.Integer(), nullable=True),
    sa.Column('session_key', sa.String(length=64), nullable=False),
    sa.Column('device_type', sa.String(length=20), nullable=True),
    sa.Column('platform', sa.String(length=50), nullable=True),
    sa.Column('quality', sa.String(length=10), nullable=True),
    sa.Column('started_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('last_report_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('reports', sa.Integer(), nullable=False),
    sa.Column('position', sa.Double(), nullable=False),
    sa.Column('max_position', sa.Double(), nullable=False),
    sa.Column('watch_duration', sa.Double(), nullable=False),
    sa.Column('watched_seconds', sa.Double(), nullable=False),
    sa.Column('is_completed', sa.Boolean(), nullable=False),
    sa.Column('completed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['lesson_id'], ['courses_lessons.id'], name=op.f('fk_video_watch_sessions_lesson_id_courses_lessons'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_video_watch_sessions_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['video_videos.id'], name=op.f('fk_video_watch_sessions_video_id_video_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_video_watch_sessions')),
    sa.UniqueConstraint('video_id', 'user_id', 'session_key', name=op.f('uq_video_watch_sessions_video_id_user_id_session_key'))
    )
    with op.batch_alter_table('video_watch_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_video_watch_sessions_user_id'), ['user_id'], unique=False)
        batch_op.create_index('ix_video_watch_sessions_video_id_started_at', ['video_id', 'started_at'], unique=False)

    op.create_table('video_renditions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('quality', sa.String(length=10), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('video_bitrate', sa.Integer(), nullable=False),
    sa.Column('bandwidth', sa.Integer(), nullable=False),
    sa.Column('codecs', sa.String(length=100), nullable=False),
    sa.Column('playlist_key', sa.String(length=512), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['video_transcode_jobs.id'], name=op.f('fk_video_renditions_job_id_video_transcode_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['video_videos.id'], name=op.f('fk_video_renditions_video_id_video_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_video_renditions')),
    sa.UniqueConstraint('job_id', 'quality', name=op.f('uq_video_renditions_job_id_quality'))
    )
    with op.batch_alter_table('video_renditions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_video_renditions_video_id'), ['video_id'], unique=False)


def downgrade() -> None:
    op.drop_table('video_renditions')
    op.drop_table('video_watch_sessions')
    op.drop_table('video_viewers')
    op.drop_table('video_transcode_jobs')
