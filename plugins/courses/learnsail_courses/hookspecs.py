"""Hooks the courses plugin offers to other plugins.

Implement them with ``@hookimpl`` in a plugin that declares ``courses`` in
``requires`` (or with ``@hookimpl(optionalhook=True)`` and ``uses``).  Each
is called in the transaction that made the change: raising there aborts it.
"""

from __future__ import annotations

from learnsail.hookspecs import hookspec


@hookspec
def learnsail_course_published(course, session):
    """``course`` (a :class:`learnsail_courses.models.Course`) was just
    published by an administrator's review."""


@hookspec
def learnsail_enrolment_created(enrolment, session):
    """A user was enrolled in a course (``enrolment.kind`` is ``free``,
    ``paid``, ``trial`` or ``member``), or an ended enrolment was renewed."""


@hookspec
def learnsail_enrolment_ended(enrolment, reason, session):
    """An enrolment ended: ``reason`` is ``"left"`` (the student left the
    course) or ``"refunded"``."""


@hookspec
def learnsail_lesson_completed(progress, session):
    """A learner completed a lesson for the first time (``progress`` is a
    :class:`learnsail_courses.models.Progress`)."""


@hookspec
def learnsail_course_completed(enrolment, session):
    """A learner completed every lesson of a course for the first time."""


@hookspec(firstresult=True)
def learnsail_lesson_video(lesson, course, video_id, user_id, session):
    """A teacher (``user_id``) sets ``video_id`` on ``lesson`` (creating or
    editing it; ``video_id`` None detaches).  The plugin that owns videos
    checks the video may be attached (it exists, belongs to the teacher or
    the caller manages every course, is not deleted) and raises a
    :class:`learnsail.errors.APIError` to refuse; it answers a dict, e.g.
    ``{"duration": 312}``, whose ``duration`` (seconds) becomes the
    lesson's.  No answer means no plugin owns videos: a ``video_id`` is then
    refused (400), since nothing could play it."""
