"""Who may study what: the one place enrolment validity is checked."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail_courses.models import ACTIVE, TRIAL, Chapter, Enrolment
from learnsail_courses.permissions import COURSE_EDIT_ANY


def usable(now: Any = None) -> sa.ColumnElement:
    """The condition on Enrolment for "active and within its validity window"."""
    now = utcnow() if now is None else now
    return sa.and_(Enrolment.status == ACTIVE,
                   sa.or_(Enrolment.valid_from.is_(None), Enrolment.valid_from <= now),
                   sa.or_(Enrolment.valid_until.is_(None), Enrolment.valid_until > now))


def is_enrolled(session: Session, user_id: int | None, course_id: int) -> bool:
    """Does ``user_id`` hold a usable enrolment in ``course_id``, other than
    a trial?  (A trial opens only the free and trial lessons, which are
    open to every signed-in user anyway.)"""
    if user_id is None:
        return False
    return session.scalar(sa.select(Enrolment.id).where(_enrolled_condition(user_id, course_id))) is not None


def _enrolled_condition(user_id: int, course_id: Any) -> sa.ColumnElement:
    return sa.and_(Enrolment.user_id == user_id, Enrolment.course_id == course_id, Enrolment.kind != TRIAL, usable())


def enrolled_in(request: Any, course_id: int) -> bool:
    """:func:`is_enrolled` for the caller, asked once per request and course."""
    memo = request.__dict__.setdefault("_courses_enrolled", {})
    if course_id not in memo:
        memo[course_id] = is_enrolled(request.db, request.authenticated_userid, course_id)
    return memo[course_id]


def lesson_for(request: Any, lesson_id: int) -> tuple[Any, Any]:
    """``(lesson, course)`` for the caller, with whether they are enrolled
    read in the same statement (remembered for the request's access checks:
    a progress heartbeat is one query)."""
    from learnsail.errors import NotFound
    from learnsail_courses.models import Course, Lesson

    user_id = request.authenticated_userid
    enrolled = (sa.exists().where(_enrolled_condition(user_id, Course.id)) if user_id is not None
                else sa.false())
    row = request.db.execute(sa.select(Lesson, Course, enrolled.label("enrolled"))
                             .join(Course, Course.id == Lesson.course_id)
                             .where(Lesson.id == lesson_id, Course.deleted_at.is_(None))).first()
    if row is None:
        raise NotFound(f"No lesson with id {lesson_id}.")
    request.__dict__.setdefault("_courses_enrolled", {})[row[1].id] = bool(row.enrolled)
    return row[0], row[1]


def may_see(request: Any, course: Any) -> bool:
    """Published courses are public.  Others (drafts, in review, rejected,
    archived) are seen by their teacher, course managers and the students
    still enrolled in them (an archived course stays open to its students)."""
    from learnsail_courses.permissions import COURSE_VIEW_ANY
    from learnsail_courses.services import is_visible
    from learnsail_courses.views.common import may

    user_id = request.authenticated_userid
    if is_visible(course, user_id, may(request, COURSE_VIEW_ANY)):
        return True
    return user_id is not None and enrolled_in(request, course.id)


def may_study(request: Any, course: Any) -> bool:
    """The whole course: its teacher, course managers, and usable enrolments."""
    from learnsail_courses.views.common import may

    user_id = request.authenticated_userid
    if user_id is None:
        return False
    if course.teacher_id == user_id or may(request, COURSE_EDIT_ANY):
        return True
    return enrolled_in(request, course.id)


def may_study_lesson(request: Any, course: Any, lesson: Any) -> bool:
    """One lesson: free and trial lessons (and lessons of free chapters) are
    open to every signed-in caller who can see the course."""
    if lesson.is_free or lesson.is_trial:
        return request.authenticated_userid is not None
    if may_study(request, course):
        return True
    chapter = request.db.get(Chapter, lesson.chapter_id)
    return request.authenticated_userid is not None and chapter is not None and chapter.is_free
