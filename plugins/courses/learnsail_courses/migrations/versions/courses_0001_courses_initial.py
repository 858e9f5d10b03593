"""courses: initial

The plugin's branch ("courses") starts here.  It needs only the core's
``users`` table, created by core_0001, so that is what it depends on.

On MySQL (not MariaDB, which has no ngram parser) it also adds a FULLTEXT
index WITH PARSER ngram over the course title and description, which the
catalogue's search uses; elsewhere the search falls back to LIKE.  The index
is not in the models (no other backend can declare it).

Generated with ``learnsail db revision --plugin courses -m "courses:
initial" --autogenerate --rev-id courses_0001``, then tidied.

Revision ID: courses_0001
Revises: 
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import learnsail.db  # noqa: F401  (custom column types such as UTCDateTime)


revision = 'courses_0001'
down_revision = None
branch_labels = ('courses',)
depends_on = 'core_0001'

FULLTEXT_INDEX = "ft_courses_courses_title_description"


def _mysql_with_ngram() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == "mysql" and not getattr(bind.dialect, "is_mariadb", False)


def upgrade() -> None:
    op.create_table('courses_categories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['courses_categories.id'], name=op.f('fk_courses_categories_parent_id_courses_categories'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_categories')),
    sa.UniqueConstraint('name', name=op.f('uq_courses_categories_name'))
    )
    with op.batch_alter_table('courses_categories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_courses_categories_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_categories_path'), ['path'], unique=False)

    op.create_table('courses_tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('colour', sa.String(length=7), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_tags')),
    sa.UniqueConstraint('name', name=op.f('uq_courses_tags_name'))
    )
    op.create_table('courses_courses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('cover_image_url', sa.String(length=255), nullable=True),
    sa.Column('teacher_id', sa.Integer(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.Column('difficulty', sa.String(length=20), nullable=False),
    sa.Column('course_type', sa.String(length=20), nullable=False),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('is_free', sa.Boolean(), nullable=False),
    sa.Column('is_member_only', sa.Boolean(), nullable=False),
    sa.Column('tag_names', sa.String(length=700), nullable=False),
    sa.Column('duration', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('student_count', sa.Integer(), nullable=False),
    sa.Column('rating', sa.Numeric(precision=3, scale=2), nullable=False),
    sa.Column('rating_count', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=50), nullable=False),
    sa.Column('completion_threshold', sa.Integer(), nullable=True),
    sa.Column('review_comment', sa.Text(), nullable=True),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('reviewed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('published_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('deleted_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['courses_categories.id'], name=op.f('fk_courses_courses_category_id_courses_categories')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_courses_courses_reviewer_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['teacher_id'], ['users.id'], name=op.f('fk_courses_courses_teacher_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_courses'))
    )
    with op.batch_alter_table('courses_courses', schema=None) as batch_op:
        batch_op.create_index('ix_courses_courses_category_id_status_deleted_at', ['category_id', 'status', 'deleted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_courses_deleted_at'), ['deleted_at'], unique=False)
        batch_op.create_index('ix_courses_courses_status_deleted_at_published_at', ['status', 'deleted_at', 'published_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_courses_teacher_id'), ['teacher_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_courses_title'), ['title'], unique=False)

    op.create_table('courses_learning_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('seconds', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_courses_learning_days_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_learning_days')),
    sa.UniqueConstraint('user_id', 'day', name=op.f('uq_courses_learning_days_user_id_day'))
    )
    op.create_table('courses_chapters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('is_free', sa.Boolean(), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses_courses.id'], name=op.f('fk_courses_chapters_course_id_courses_courses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_chapters'))
    )
    with op.batch_alter_table('courses_chapters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_courses_chapters_course_id'), ['course_id'], unique=False)

    op.create_table('courses_collections',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses_courses.id'], name=op.f('fk_courses_collections_course_id_courses_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_courses_collections_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'course_id', name=op.f('pk_courses_collections'))
    )
    with op.batch_alter_table('courses_collections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_courses_collections_course_id'), ['course_id'], unique=False)

    op.create_table('courses_course_tags',
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses_courses.id'], name=op.f('fk_courses_course_tags_course_id_courses_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['courses_tags.id'], name=op.f('fk_courses_course_tags_tag_id_courses_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('course_id', 'tag_id', name=op.f('pk_courses_course_tags'))
    )
    with op.batch_alter_table('courses_course_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_courses_course_tags_tag_id'), ['tag_id'], unique=False)

    op.create_table('courses_enrolments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('valid_from', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('valid_until', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('progress_percent', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('completed_lessons', sa.Integer(), nullable=False),
    sa.Column('completed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('last_accessed_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('ended_at', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('order_no', sa.String(length=64), nullable=True),
    sa.Column('price_paid', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses_courses.id'], name=op.f('fk_courses_enrolments_course_id_courses_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_courses_enrolments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_enrolments')),
    sa.UniqueConstraint('user_id', 'course_id', name=op.f('uq_courses_enrolments_user_id_course_id'))
    )
    with op.batch_alter_table('courses_enrolments', schema=None) as batch_op:
        batch_op.create_index('ix_courses_enrolments_course_id_status', ['course_id', 'status'], unique=False)

    op.create_table('courses_lessons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chapter_id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('video_id', sa.Integer(), nullable=True),
    sa.Column('duration', sa.Integer(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('is_free', sa.Boolean(), nullable=False),
    sa.Column('is_trial', sa.Boolean(), nullable=False),
    sa.Column('resource_url', sa.String(length=255), nullable=True),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['chapter_id'], ['courses_chapters.id'], name=op.f('fk_courses_lessons_chapter_id_courses_chapters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['course_id'], ['courses_courses.id'], name=op.f('fk_courses_lessons_course_id_courses_courses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_lessons'))
    )
    with op.batch_alter_table('courses_lessons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_courses_lessons_chapter_id'), ['chapter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_lessons_course_id'), ['course_id'], unique=False)

    op.create_table('courses_comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('lesson_id', sa.Integer(), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('root_id', sa.Integer(), nullable=True),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('rated_by', sa.Integer(), nullable=True),
    sa.Column('is_approved', sa.Boolean(), nullable=False),
    sa.Column('is_hidden', sa.Boolean(), nullable=False),
    sa.Column('like_count', sa.Integer(), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses_courses.id'], name=op.f('fk_courses_comments_course_id_courses_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lesson_id'], ['courses_lessons.id'], name=op.f('fk_courses_comments_lesson_id_courses_lessons'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['parent_id'], ['courses_comments.id'], name=op.f('fk_courses_comments_parent_id_courses_comments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['root_id'], ['courses_comments.id'], name=op.f('fk_courses_comments_root_id_courses_comments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_courses_comments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_comments')),
    sa.UniqueConstraint('course_id', 'rated_by', name=op.f('uq_courses_comments_course_id_rated_by'))
    )
    with op.batch_alter_table('courses_comments', schema=None) as batch_op:
        batch_op.create_index('ix_courses_comments_course_id_parent_id', ['course_id', 'parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_comments_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_comments_root_id'), ['root_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_comments_user_id'), ['user_id'], unique=False)

    op.create_table('courses_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('lesson_id', sa.Integer(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=True),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['lesson_id'], ['courses_lessons.id'], name=op.f('fk_courses_notes_lesson_id_courses_lessons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_courses_notes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_notes'))
    )
    with op.batch_alter_table('courses_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_courses_notes_lesson_id'), ['lesson_id'], unique=False)
        batch_op.create_index('ix_courses_notes_user_id_lesson_id', ['user_id', 'lesson_id'], unique=False)

    op.create_table('courses_progress',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('lesson_id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('progress_percent', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('last_position', sa.Integer(), nullable=False),
    sa.Column('is_completed', sa.Boolean(), nullable=False),
    sa.Column('completion_date', learnsail.db.UTCDateTime(), nullable=True),
    sa.Column('learned_seconds', sa.Integer(), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses_courses.id'], name=op.f('fk_courses_progress_course_id_courses_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lesson_id'], ['courses_lessons.id'], name=op.f('fk_courses_progress_lesson_id_courses_lessons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_courses_progress_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses_progress')),
    sa.UniqueConstraint('user_id', 'lesson_id', name=op.f('uq_courses_progress_user_id_lesson_id'))
    )
    with op.batch_alter_table('courses_progress', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_courses_progress_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_progress_lesson_id'), ['lesson_id'], unique=False)
        batch_op.create_index('ix_courses_progress_user_id_course_id', ['user_id', 'course_id'], unique=False)

    op.create_table('courses_comment_likes',
    sa.Column('comment_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', learnsail.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['comment_id'], ['courses_comments.id'], name=op.f('fk_courses_comment_likes_comment_id_courses_comments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_courses_comment_likes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('comment_id', 'user_id', name=op.f('pk_courses_comment_likes'))
    )
    with op.batch_alter_table('courses_comment_likes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_courses_comment_likes_user_id'), ['user_id'], unique=False)


    if _mysql_with_ngram():
        op.execute(f"CREATE FULLTEXT INDEX {FULLTEXT_INDEX} ON courses_courses (title, description) "
                   f"WITH PARSER ngram")


def downgrade() -> None:
    # the tables' indexes go with them (MySQL refuses to drop an index a
    # foreign key still needs)
    op.drop_table('courses_comment_likes')
    op.drop_table('courses_progress')
    op.drop_table('courses_notes')
    op.drop_table('courses_comments')
    op.drop_table('courses_lessons')
    op.drop_table('courses_enrolments')
    op.drop_table('courses_course_tags')
    op.drop_table('courses_collections')
    op.drop_table('courses_chapters')
    op.drop_table('courses_learning_days')
    op.drop_table('courses_courses')
    op.drop_table('courses_tags')
    op.drop_table('courses_categories')
