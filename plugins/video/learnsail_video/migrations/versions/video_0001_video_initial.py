"""video: initial

The plugin's branch ("video") starts here: videos, upload tasks and their
parts.  It needs the core's ``users`` (core_0001) and the courses' courses
and chapters (courses_0001), so those are what it depends on.  Processing,
playback and watching add their tables in video_0002.

Generated with ``learnsail db revision --plugin video -m "video: initial"
--autogenerate --rev-id video_0001``, then tidied.

Revision ID: video_0001
Revises: 
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import learnsail.db  # noqa: F401  (custom column types such as UTCDateTime)


revision = 'video_0001'
down_revision = None
branch_labels = ('video',)
depends_on = ('core_0001', 'courses_0001')


def upgrade() -> None:
    op.create_table('video_videos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('course_id', sa.Integer(), nullable=True),
    sa.Column('chapter_id', sa.Integer(), nullable=True),
    sa.Column('original_filename', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('format', sa.String(length=50), nullable=True),
    sa.Column('mime_type', sa.String(length=100), nullable=True),
    sa.Column('source_key', sa.String(length=512), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('duration', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.BigInteger(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('video_codec', sa.String(length=50), nullable=True),
    sa.Column('audio_codec', sa.String(length=50), nullable=True),
    sa.Column('bitrate', sa.Integer(), nullable=True),
    sa.Column('frame_rate', sa.Numeric(precision=8, scale=3), nullable=True),
    sa.Column('rotation', sa.Integer(), nullable=True),
    sa.Column('hls_prefix', sa.String(length=512), nullable=True),
    sa.Column('master_key', sa.String(length=512), nullable=True),
    sa.Column('mp4_key', sa.String(length=512), nullable=True),
    sa.Column('thumbnail_key', sa.String(length=512), nullable=True),
    sa.Column('sprite_key', sa.String(length=512), nullable=True),
    sa.Column('qualities', sa.JSON(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('processed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('deleted_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['chapter_id'], ['courses_chapters.id'], name=op.f('fk_video_videos_chapter_id_courses_chapters'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['course_id'], ['courses_courses.id'], name=op.f('fk_video_videos_course_id_courses_courses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_video_videos_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_video_videos'))
    )
    with op.batch_alter_table('video_videos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_video_videos_chapter_id'), ['chapter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_video_videos_course_id'), ['course_id'], unique=False)
        batch_op.create_index('ix_video_videos_owner_id_deleted_at', ['owner_id', 'deleted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_video_videos_status'), ['status'], unique=False)

    op.create_table('video_upload_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('protocol', sa.String(length=10), nullable=False),
    sa.Column('backend', sa.String(length=10), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('file_size', sa.BigInteger(), nullable=False),
    sa.Column('file_md5', sa.String(length=32), nullable=True),
    sa.Column('chunk_size', sa.BigInteger(), nullable=True),
    sa.Column('total_chunks', sa.Integer(), nullable=True),
    sa.Column('received_bytes', sa.BigInteger(), nullable=False),
    sa.Column('received_chunks', sa.Integer(), nullable=False),
    sa.Column('md5_state', sa.LargeBinary(), nullable=True),
    sa.Column('md5_offset', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('md5_failures', sa.Integer(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('expires_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('completed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('parts_removed', sa.Boolean(), nullable=False),
    sa.Column('tus_metadata', sa.JSON(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_video_upload_tasks_owner_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['video_videos.id'], name=op.f('fk_video_upload_tasks_video_id_video_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_video_upload_tasks')),
    sa.UniqueConstraint('token', name=op.f('uq_video_upload_tasks_token'))
    )
    with op.batch_alter_table('video_upload_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_video_upload_tasks_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_video_upload_tasks_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_video_upload_tasks_video_id'), ['video_id'], unique=False)

    op.create_table('video_upload_parts',
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('start', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('md5', sa.String(length=32), nullable=False),
    sa.Column('object_key', sa.String(length=512), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['video_upload_tasks.id'], name=op.f('fk_video_upload_parts_task_id_video_upload_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', 'number', name=op.f('pk_video_upload_parts'))
    )


def downgrade() -> None:
    op.drop_table('video_upload_parts')
    op.drop_table('video_upload_tasks')
    op.drop_table('video_videos')
