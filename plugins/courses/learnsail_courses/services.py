"""Courses, their review workflow, chapters and lessons: the rules,
independent of HTTP (a session and plain values in, domain errors out)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from learnsail.db import utcnow
from learnsail.errors import Conflict, NotFound, ValidationFailed
from learnsail_courses import catalog
from learnsail_courses.models import (ACTIVE, ARCHIVED, DRAFT, PUBLISHED, REJECTED, REVIEWING, Category, Chapter,
                                      Course, Enrolment, Lesson)

#: what a teacher may do with PUT status, from each status
TEACHER_TRANSITIONS = {
    DRAFT: {REVIEWING},
    REJECTED: {REVIEWING, DRAFT},
    REVIEWING: {DRAFT},              # withdraw from review
    PUBLISHED: {DRAFT, ARCHIVED},    # unpublish, archive
    ARCHIVED: {DRAFT},               # take back to edit and submit again
}

COURSE_FIELDS = ("title", "description", "cover_image_url", "category_id", "difficulty", "price",
                 "course_type", "language", "completion_threshold", "is_member_only")


def get_course(session: Session, course_id: int, *, with_tags: bool = False) -> Course:
    """A course that is not deleted (NotFound otherwise)."""
    course = session.get(Course, course_id, options=[selectinload(Course.tags)] if with_tags else None)
    if course is None or course.deleted_at is not None:
        raise NotFound(f"No course with id {course_id}.")
    return course


def is_visible(course: Course, user_id: int | None, may_view_any: bool) -> bool:
    """Published courses are public; others only for their teacher and
    course managers."""
    return course.status == PUBLISHED or may_view_any or (user_id is not None and course.teacher_id == user_id)


def _check_category(session: Session, category_id: int | None) -> None:
    if category_id is not None and session.get(Category, category_id) is None:
        raise ValidationFailed({"category_id": [f"No category with id {category_id}."]})


def create_course(session: Session, teacher_id: int, data: dict) -> Course:
    _check_category(session, data.get("category_id"))
    course = Course(teacher_id=teacher_id, status=DRAFT, **{k: data[k] for k in COURSE_FIELDS if k in data})
    course.price = Decimal(data.get("price") or 0)
    course.is_free = course.price == 0
    course.tags = catalog.resolve_tags(session, data.get("tags") or [])
    course.tag_names = [t.name for t in course.tags]
    session.add(course)
    session.flush()
    return course


def update_course(session: Session, course: Course, data: dict) -> str | None:
    """Apply the fields of ``data``; a ``status`` is a teacher's transition
    (see :data:`TEACHER_TRANSITIONS`).  Returns the new status when it
    changed."""
    if "category_id" in data:
        _check_category(session, data["category_id"])
    for field in COURSE_FIELDS:
        if field in data:
            setattr(course, field, data[field])
    if "price" in data:
        course.price = Decimal(data["price"])
        course.is_free = course.price == 0
    if "tags" in data:
        course.tags = catalog.resolve_tags(session, data["tags"])
        course.tag_names = [t.name for t in course.tags]
    changed = None
    status = data.get("status")
    if status is not None and status != course.status:
        if status not in TEACHER_TRANSITIONS.get(course.status, ()):
            raise ValidationFailed({"status": [f"A {course.status} course cannot be set to {status}."]})
        if status == REVIEWING and not session.scalar(
                sa.select(sa.func.count()).select_from(Lesson).where(Lesson.course_id == course.id)):
            raise ValidationFailed({"status": ["Add at least one lesson before submitting the course for review."]})
        course.status = changed = status
    course.updated_at = utcnow()
    session.flush()
    return changed


def review_course(session: Session, course: Course, reviewer_id: int, status: str, comment: str | None) -> Course:
    """An administrator's decision on a course in review."""
    if course.status != REVIEWING:
        raise ValidationFailed({"status": [f"Only a course in review can be reviewed; this one is {course.status}."]})
    now = utcnow()
    course.status = status
    course.review_comment = comment
    course.reviewer_id = reviewer_id
    course.reviewed_at = now
    if status == PUBLISHED:
        course.published_at = now
    session.flush()
    return course


def delete_course(session: Session, course: Course) -> None:
    """Soft delete; refused while students are enrolled."""
    enrolled = session.scalar(sa.select(sa.func.count()).select_from(Enrolment)
                              .where(Enrolment.course_id == course.id, Enrolment.status == ACTIVE))
    if enrolled:
        raise Conflict(f"{enrolled} student(s) are enrolled in this course; archive it instead.",
                       {"student_count": enrolled})
    course.deleted_at = utcnow()
    course.status = ARCHIVED
    session.flush()


# --- chapters and lessons ---------------------------------------------------------

def get_chapter(session: Session, chapter_id: int) -> tuple[Chapter, Course]:
    row = session.execute(sa.select(Chapter, Course).join(Course, Course.id == Chapter.course_id)
                          .where(Chapter.id == chapter_id, Course.deleted_at.is_(None))).first()
    if row is None:
        raise NotFound(f"No chapter with id {chapter_id}.")
    return row[0], row[1]


def get_lesson(session: Session, lesson_id: int) -> tuple[Lesson, Course]:
    row = session.execute(sa.select(Lesson, Course).join(Course, Course.id == Lesson.course_id)
                          .where(Lesson.id == lesson_id, Course.deleted_at.is_(None))).first()
    if row is None:
        raise NotFound(f"No lesson with id {lesson_id}.")
    return row[0], row[1]


def _next_order(session: Session, column: Any, where: Any) -> int:
    return (session.scalar(sa.select(sa.func.max(column)).where(where)) or 0) + 1


def create_chapter(session: Session, course: Course, data: dict) -> Chapter:
    order = data.get("sort_order")
    if order is None:
        order = _next_order(session, Chapter.sort_order, Chapter.course_id == course.id)
    chapter = Chapter(course_id=course.id, title=data["title"], description=data.get("description"),
                      sort_order=order, is_free=data.get("is_free", False))
    session.add(chapter)
    session.flush()
    return chapter


def update_chapter(session: Session, chapter: Chapter, data: dict) -> Chapter:
    for field, value in data.items():
        setattr(chapter, field, value)
    session.flush()
    return chapter


def delete_chapter(session: Session, chapter: Chapter, course: Course) -> None:
    session.execute(sa.delete(Lesson).where(Lesson.chapter_id == chapter.id))
    session.delete(chapter)
    session.flush()
    refresh_duration(session, course)


def _set_video(session: Session, hook: Any, lesson: Lesson, course: Course, video_id: int | None,
               user_id: int | None) -> None:
    """Attach (or detach, None) a video: the plugin owning videos checks it
    through ``learnsail_lesson_video`` and tells its duration."""
    answer = hook.learnsail_lesson_video(lesson=lesson, course=course, video_id=video_id, user_id=user_id,
                                         session=session) if hook is not None else None
    if answer is None and video_id is not None:
        raise ValidationFailed({"video_id": ["No video plugin is enabled to play it; use resource_url instead."]})
    lesson.video_id = video_id
    if answer and answer.get("duration") is not None:
        lesson.duration = int(answer["duration"])


def create_lesson(session: Session, chapter: Chapter, course: Course, data: dict, *, hook: Any = None,
                  user_id: int | None = None) -> Lesson:
    order = data.pop("sort_order", None)
    if order is None:
        order = _next_order(session, Lesson.sort_order, Lesson.chapter_id == chapter.id)
    video_id = data.pop("video_id", None)
    lesson = Lesson(chapter_id=chapter.id, course_id=course.id, sort_order=order, **data)
    session.add(lesson)
    session.flush()
    if video_id is not None:
        _set_video(session, hook, lesson, course, video_id, user_id)
        session.flush()
    refresh_duration(session, course)
    return lesson


def update_lesson(session: Session, lesson: Lesson, course: Course, data: dict, *, hook: Any = None,
                  user_id: int | None = None) -> Lesson:
    chapter_id = data.pop("chapter_id", None)
    if chapter_id is not None and chapter_id != lesson.chapter_id:
        target = session.get(Chapter, chapter_id)
        if target is None or target.course_id != course.id:
            raise ValidationFailed({"chapter_id": ["Not a chapter of this lesson's course."]})
        lesson.chapter_id = chapter_id
        if "sort_order" not in data:
            lesson.sort_order = _next_order(session, Lesson.sort_order, Lesson.chapter_id == chapter_id)
    video_changed = "video_id" in data and data["video_id"] != lesson.video_id
    video_id = data.pop("video_id", None)
    before = lesson.duration
    for field, value in data.items():
        setattr(lesson, field, value)
    if video_changed:  # after the fields: an attached video's own duration wins
        _set_video(session, hook, lesson, course, video_id, user_id)
    session.flush()
    if lesson.duration != before:
        refresh_duration(session, course, lessons_changed=False)
    return lesson


def delete_lesson(session: Session, lesson: Lesson, course: Course) -> None:
    session.delete(lesson)
    session.flush()
    refresh_duration(session, course)


def reorder(session: Session, model: type, scope: Any, ids: list[int]) -> None:
    """Give the rows of ``model`` within ``scope`` the order of ``ids``,
    which must name each of them exactly once."""
    have = set(session.scalars(sa.select(model.id).where(scope)))
    if len(ids) != len(set(ids)) or set(ids) != have:
        raise ValidationFailed({"ids": [f"Give every id exactly once: {sorted(have)}."]})
    for order, ident in enumerate(ids, start=1):
        session.execute(sa.update(model).where(model.id == ident).values(sort_order=order)
                        .execution_options(synchronize_session=False))
    session.expire_all()


def refresh_duration(session: Session, course: Course, *, lessons_changed: bool = True) -> None:
    """Keep ``course.duration`` (minutes) the sum of its lessons' seconds,
    rounded up; when lessons were added or removed, the enrolments'
    progress figures follow too."""
    seconds = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Lesson.duration), 0))
                             .where(Lesson.course_id == course.id)) or 0
    course.duration = math.ceil(int(seconds) / 60)
    session.flush()
    if lessons_changed:
        from learnsail_courses.learning import refresh_enrolments

        refresh_enrolments(session, course.id)


def chapters_with_lessons(session: Session, course_id: int) -> list[tuple[Chapter, list[Lesson]]]:
    """The course's chapters in order, each with its lessons in order: two
    queries whatever the number of chapters."""
    chapters = list(session.scalars(sa.select(Chapter).where(Chapter.course_id == course_id)
                                    .order_by(Chapter.sort_order, Chapter.id)))
    lessons: dict[int, list[Lesson]] = {c.id: [] for c in chapters}
    for lesson in session.scalars(sa.select(Lesson).where(Lesson.course_id == course_id)
                                  .order_by(Lesson.sort_order, Lesson.id)):
        lessons.setdefault(lesson.chapter_id, []).append(lesson)
    return [(c, lessons[c.id]) for c in chapters]

