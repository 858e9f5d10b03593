"""Notifications the plugin sends (declared in plugin.py), through
learnsail.notifications.notify: in the request's transaction, delivered
after it commits."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from learnsail.notifications import NotificationType, notify
from learnsail_courses.models import ACTIVE, PUBLISHED, Enrolment

REVIEW_RESULT = "courses.review_result"
COURSE_UPDATED = "courses.course_updated"

TYPES = [
    NotificationType(REVIEW_RESULT, "An administrator published or rejected one of your courses.",
                     ("in_app", "email")),
    NotificationType(COURSE_UPDATED, "A course you are enrolled in was updated.", ("in_app",)),
]


def review_result(target: Any, course: Any) -> None:
    if course.status == PUBLISHED:
        title, content = f"Your course “{course.title}” is published", "Students can now find and enrol in it."
    else:
        title = f"Your course “{course.title}” was not accepted"
        content = course.review_comment or ""
    notify(target, course.teacher_id, REVIEW_RESULT, title, content, "courses.course", course.id)


def lesson_added(target: Any, course: Any, lesson: Any) -> None:
    students = sa.select(Enrolment.user_id).where(Enrolment.course_id == course.id, Enrolment.status == ACTIVE)
    notify(target, students, COURSE_UPDATED, f"New lesson in “{course.title}”: {lesson.title}",
           "A new lesson was added to a course you are enrolled in.", "courses.lesson", lesson.id)


def course_updated(target: Any, course: Any) -> None:
    students = sa.select(Enrolment.user_id).where(Enrolment.course_id == course.id, Enrolment.status == ACTIVE)
    notify(target, students, COURSE_UPDATED, f"“{course.title}” was updated",
           "The teacher changed the course; have a look at what is new.", "courses.course", course.id)
