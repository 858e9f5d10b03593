"""Course comments, ratings, replies, likes and moderation: the rules,
independent of HTTP."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from learnsail.db import utcnow
from learnsail.errors import NotFound, PermissionDenied, ValidationFailed
from learnsail_courses.access import is_enrolled
from learnsail_courses.models import Comment, CommentLike, Course, Lesson

SORTS = {
    "newest": (Comment.created_at.desc(), Comment.id.desc()),
    "oldest": (Comment.created_at.asc(), Comment.id.asc()),
    "rating": (sa.func.coalesce(Comment.rating, 0).desc(), Comment.id.desc()),
    "likes": (Comment.like_count.desc(), Comment.id.desc()),
}


def _already_rated() -> ValidationFailed:
    return ValidationFailed({"rating": ["You have already rated this course; edit or delete that comment."]},
                            "You have already rated this course.")


def refresh_rating(session: Session, course_id: int) -> None:
    """Recompute the course's rating and rating_count from its visible
    rated comments, in the caller's transaction (the course row is locked
    first, so concurrent ratings do not lose each other's update)."""
    session.execute(sa.select(Course.id).where(Course.id == course_id).with_for_update())
    count, average = session.execute(
        sa.select(sa.func.count(Comment.rating), sa.func.avg(Comment.rating))
        .where(Comment.course_id == course_id, Comment.rating.is_not(None), Comment.is_approved.is_(True),
               Comment.is_hidden.is_(False))).one()
    rating = Decimal(str(average or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    session.execute(sa.update(Course).where(Course.id == course_id)
                    .values(rating=rating, rating_count=count or 0).execution_options(synchronize_session=False))
    course = session.get(Course, course_id)
    if course is not None:
        session.refresh(course, ["rating", "rating_count"])


def add_comment(session: Session, user_id: int, course: Course, *, content: str, rating: int | None,
                parent_id: int | None, lesson_id: int | None, approved: bool, moderator: bool = False) -> Comment:
    """A comment, a rating (top-level, enrolled users, once per course) or a
    reply (to a comment the user is shown)."""
    root_id = None
    if lesson_id is not None and session.scalar(
            sa.select(Lesson.id).where(Lesson.id == lesson_id, Lesson.course_id == course.id)) is None:
        raise ValidationFailed({"lesson_id": ["No such lesson in this course."]})
    if parent_id is not None:
        parent = session.get(Comment, parent_id)
        if parent is None or parent.course_id != course.id or parent.is_hidden or \
                not shown_to(parent, user_id, moderator):
            raise ValidationFailed({"parent_id": ["No such comment on this course."]})
        if rating is not None:
            raise ValidationFailed({"rating": ["Replies carry no rating."]})
        root_id = parent.root_id or parent.id
    if rating is not None:
        if not is_enrolled(session, user_id, course.id):
            raise PermissionDenied("Only students enrolled in the course may rate it.")
        if session.scalar(sa.select(Comment.id).where(Comment.course_id == course.id,
                                                      Comment.rated_by == user_id)) is not None:
            raise _already_rated()
    comment = Comment(user_id=user_id, course_id=course.id, lesson_id=lesson_id, parent_id=parent_id,
                      root_id=root_id, content=content, rating=rating,
                      rated_by=user_id if rating is not None else None, is_approved=approved, is_hidden=False,
                      like_count=0)
    try:
        with session.begin_nested():
            session.add(comment)
            session.flush()
    except IntegrityError:  # a concurrent rating by the same user
        raise _already_rated() from None
    if rating is not None:
        refresh_rating(session, course.id)
    return comment


def shown_to(comment: Comment, viewer_id: int | None, moderator: bool) -> bool:
    """Does the list show ``comment`` to this viewer (:func:`_visible`)?"""
    if moderator or (comment.is_approved and not comment.is_hidden):
        return True
    return viewer_id is not None and comment.user_id == viewer_id and not comment.is_hidden


def get_comment(session: Session, comment_id: int) -> Comment:
    comment = session.get(Comment, comment_id)
    if comment is None:
        raise NotFound(f"No comment with id {comment_id}.")
    return comment


def delete_comment(session: Session, comment: Comment) -> None:
    course_id, rated = comment.course_id, comment.rating is not None
    session.execute(sa.delete(CommentLike).where(CommentLike.comment_id.in_(
        sa.select(Comment.id).where(sa.or_(Comment.id == comment.id, Comment.root_id == comment.id,
                                           Comment.parent_id == comment.id)))))
    session.execute(sa.delete(Comment).where(sa.or_(Comment.root_id == comment.id, Comment.parent_id == comment.id)))
    session.delete(comment)
    session.flush()
    if rated:
        refresh_rating(session, course_id)


def moderate(session: Session, comment: Comment, changes: dict) -> Comment:
    for field in ("is_approved", "is_hidden"):
        if field in changes:
            setattr(comment, field, changes[field])
    session.flush()
    if comment.rating is not None:
        refresh_rating(session, comment.course_id)
    return comment


def like(session: Session, user_id: int, comment: Comment) -> None:
    """Idempotent: liking twice counts once."""
    if session.get(CommentLike, (comment.id, user_id)) is not None:
        return
    try:
        with session.begin_nested():
            session.add(CommentLike(comment_id=comment.id, user_id=user_id, created_at=utcnow()))
    except IntegrityError:
        return
    session.execute(sa.update(Comment).where(Comment.id == comment.id)
                    .values(like_count=Comment.like_count + 1).execution_options(synchronize_session=False))
    session.refresh(comment, ["like_count"])


def unlike(session: Session, user_id: int, comment: Comment) -> None:
    row = session.get(CommentLike, (comment.id, user_id))
    if row is None:
        return
    session.delete(row)
    session.execute(sa.update(Comment).where(Comment.id == comment.id, Comment.like_count > 0)
                    .values(like_count=Comment.like_count - 1).execution_options(synchronize_session=False))
    session.flush()
    session.refresh(comment, ["like_count"])


def threads(course_id: int, sort: str, *, include_hidden: bool, viewer_id: int | None) -> sa.Select:
    """The course's top-level comments in ``sort`` order.  Visible: approved
    and not hidden (plus the viewer's own awaiting approval); moderators
    with ``include_hidden`` see everything."""
    stmt = sa.select(Comment).where(Comment.course_id == course_id, Comment.parent_id.is_(None))
    if not include_hidden:
        stmt = stmt.where(_visible(viewer_id))
    return stmt.options(selectinload(Comment.user)).order_by(*SORTS[sort])


def _visible(viewer_id: int | None) -> sa.ColumnElement:
    shown = sa.and_(Comment.is_approved.is_(True), Comment.is_hidden.is_(False))
    if viewer_id is None:
        return shown
    return sa.or_(shown, sa.and_(Comment.user_id == viewer_id, Comment.is_hidden.is_(False)))


def replies_of(session: Session, root_ids: list[int], *, include_hidden: bool,
               viewer_id: int | None) -> dict[int, list[Comment]]:
    """Every reply in the threads ``root_ids``, oldest first, by thread (one query)."""
    if not root_ids:
        return {}
    stmt = (sa.select(Comment).where(Comment.root_id.in_(root_ids)).options(selectinload(Comment.user))
            .order_by(Comment.created_at, Comment.id))
    if not include_hidden:
        stmt = stmt.where(_visible(viewer_id))
    out: dict[int, list[Comment]] = {}
    for reply in session.scalars(stmt):
        out.setdefault(reply.root_id, []).append(reply)
    return out


def liked_by(session: Session, user_id: int | None, comment_ids: list[int]) -> set[int]:
    if user_id is None or not comment_ids:
        return set()
    return set(session.scalars(sa.select(CommentLike.comment_id).where(CommentLike.user_id == user_id,
                                                                       CommentLike.comment_id.in_(comment_ids))))
