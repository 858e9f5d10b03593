"""The courses plugin's public interface, for plugins that require it
(declare ``courses`` in ``requires`` and ``learnsail-courses`` in
``install_requires``).  Everything else in the package is private: import
from here, or the models in :mod:`learnsail_courses.models`, and the
hooks in :mod:`learnsail_courses.hookspecs`.

- :func:`get_lesson` -- a lesson and its course (``NotFound`` for unknown
  or deleted ones);
- :func:`may_see`, :func:`may_edit`, :func:`lesson_access` -- the access
  rules of the courses API, so a lesson's video opens exactly when its
  content does;
- :func:`report_progress` -- a progress report, as ``POST
  /api/v1/lessons/{id}/progress`` takes it (completion, hooks, buffering);
- :func:`lesson_progress` -- the caller's progress in a lesson, as ``GET
  /api/v1/lessons/{id}`` shows it (buffered heartbeats included).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from learnsail.db import utcnow
from learnsail_courses import access, learning, services
from learnsail_courses.models import Chapter, Course, Lesson
from learnsail_courses.permissions import COURSE_EDIT_ANY

__all__ = ["get_lesson", "may_see", "may_edit", "lesson_access", "report_progress", "lesson_progress", "FULL",
           "TRIAL"]

#: answers of :func:`lesson_access`
FULL, TRIAL = "full", "trial"


def get_lesson(session: Any, lesson_id: int) -> tuple[Lesson, Course]:
    """``(lesson, course)``; raises :class:`learnsail.errors.NotFound`."""
    return services.get_lesson(session, lesson_id)


def may_see(request: Any, course: Course) -> bool:
    """May the caller see ``course`` at all (published, or they teach,
    manage or are enrolled in it)?  Answer 404 when not."""
    return access.may_see(request, course)


def may_edit(request: Any, course: Course) -> bool:
    """Is the caller the course's teacher or a course manager?"""
    from learnsail_courses.views.common import may

    return request.authenticated_userid is not None and (course.teacher_id == request.authenticated_userid
                                             or may(request, COURSE_EDIT_ANY))


def lesson_access(request: Any, course: Course, lesson: Lesson) -> str | None:
    """How far the caller may open ``lesson``:

    - ``"full"``: its teacher, course managers, a usable (non-trial)
      enrolment, a member of a member-only course (``learnsail_member_until``),
      and every signed-in caller for a free lesson or a lesson of a free
      chapter;
    - ``"trial"``: a trial lesson (``is_trial``) for any other signed-in
      caller: the plugin serving the content limits it (video: the first
      minutes);
    - ``None``: nothing (anonymous callers, or a paid lesson without an
      enrolment)."""
    if request.authenticated_userid is None:
        return None
    if lesson.is_free or access.may_study(request, course):
        return FULL
    chapter = request.db.get(Chapter, lesson.chapter_id)
    if chapter is not None and chapter.is_free:
        return FULL
    if course.is_member_only:
        until = request.registry["learnsail.pm"].hook.learnsail_member_until(
            user_id=request.authenticated_userid, session=request.db)
        if until is True or isinstance(until, dt.datetime) and until > utcnow():
            return FULL
    return TRIAL if lesson.is_trial else None


def report_progress(request: Any, lesson: Lesson, course: Course, *, progress_percent: Decimal | float,
                    last_position: int | None, is_completed: bool | None = None) -> dict:
    """Record the caller's progress in ``lesson`` exactly as ``POST
    /api/v1/lessons/{id}/progress`` does (the caller checked access):
    furthest percent, resume position, completion at the course's
    threshold, the completion hooks, heartbeat buffering.  Returns that
    endpoint's answer."""
    return learning.report_progress(
        request.db, request.registry["learnsail.pm"].hook, request.registry["learnsail.cache"],
        request.registry.settings, request.authenticated_userid, lesson, course,
        progress_percent=Decimal(str(progress_percent)), last_position=last_position, is_completed=is_completed)


def lesson_progress(request: Any, lesson: Lesson) -> dict | None:
    """The caller's progress in ``lesson``: ``{"progress_percent",
    "last_position", "is_completed"}`` as ``GET /api/v1/lessons/{id}``
    shows it (the newest buffered heartbeat wins), or None before any
    report."""
    import sqlalchemy as sa

    from learnsail_courses import heartbeat
    from learnsail_courses.models import Progress
    from learnsail_courses.settings import PROGRESS_BUFFER_SECONDS

    if request.authenticated_userid is None:
        return None
    row = request.db.execute(sa.select(Progress.progress_percent, Progress.last_position, Progress.is_completed)
                             .where(Progress.user_id == request.authenticated_userid,
                                    Progress.lesson_id == lesson.id)).first()
    if row is None:
        return None
    out = {"progress_percent": float(row.progress_percent or 0), "last_position": row.last_position,
           "is_completed": row.is_completed}
    interval = int(request.registry.settings.get(PROGRESS_BUFFER_SECONDS) or 0)
    if interval:
        buffered = heartbeat.latest(request.registry["learnsail.cache"], request.authenticated_userid, lesson.id,
                                    interval)
        if buffered:
            out.update(progress_percent=float(buffered["percent"]), last_position=buffered["position"])
    return out
