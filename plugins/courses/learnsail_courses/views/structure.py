"""Chapters and lessons (000 §六 课程相关API, 学习相关API)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from learnsail.api import PUBLIC, Service, no_content
from learnsail.errors import NotFound
from learnsail.identity.acl import require_owner_or_permission
from learnsail_courses import access, heartbeat, notices, services
from learnsail_courses.models import PUBLISHED, Chapter, Lesson, Progress
from learnsail_courses.permissions import COURSE_EDIT, COURSE_EDIT_ANY, LEARN
from learnsail_courses.schemas import (ChapterCreateSchema, ChapterSchema, ChapterUpdateSchema, IdPath,
                                       LessonCreateSchema, LessonSchema, LessonUpdateSchema, ReorderSchema)
from learnsail_courses.settings import PROGRESS_BUFFER_SECONDS
from learnsail_courses.views.common import forget_course, hook, number
from learnsail_courses.views.courses import editable_course

course_chapters = Service(name="courses.course_chapters", path="/api/v1/courses/{id}/chapters",
                          description="A course's chapters, each with its lessons.")
chapter_order = Service(name="courses.chapter_order", path="/api/v1/courses/{id}/chapters/order",
                        description="The order of a course's chapters.")
chapter = Service(name="courses.chapter", path="/api/v1/chapters/{id}", description="One chapter.")
chapter_lessons = Service(name="courses.chapter_lessons", path="/api/v1/chapters/{id}/lessons",
                          description="A chapter's lessons.")
lesson_order = Service(name="courses.lesson_order", path="/api/v1/chapters/{id}/lessons/order",
                       description="The order of a chapter's lessons.")
lesson = Service(name="courses.lesson", path="/api/v1/lessons/{id}", description="One lesson.")


def visible_or_404(request: Any, course: Any) -> None:
    if not access.may_see(request, course):
        raise NotFound(f"No course with id {course.id}.")


def lesson_brief(lesson: Any) -> dict:
    return {"id": lesson.id, "title": lesson.title, "duration": lesson.duration, "is_free": lesson.is_free,
            "is_trial": lesson.is_trial, "type": lesson.type, "sort_order": lesson.sort_order}


def chapter_out(chapter: Any, lessons: list | None = None) -> dict:
    out = {"id": chapter.id, "course_id": chapter.course_id, "title": chapter.title,
           "description": chapter.description, "sort_order": chapter.sort_order, "is_free": chapter.is_free}
    if lessons is not None:
        out["lessons"] = [lesson_brief(lesson) for lesson in lessons]
    return out


def lesson_out(lesson: Any) -> dict:
    return {"id": lesson.id, "title": lesson.title, "description": lesson.description,
            "video_id": lesson.video_id, "duration": lesson.duration, "sort_order": lesson.sort_order,
            "is_free": lesson.is_free, "is_trial": lesson.is_trial, "resource_url": lesson.resource_url,
            "type": lesson.type, "chapter_id": lesson.chapter_id, "course_id": lesson.course_id}


def _chapter_for_edit(request: Any) -> tuple[Any, Any]:
    chapter, course = services.get_chapter(request.db, request.validated["path"]["id"])
    require_owner_or_permission(request, course.teacher_id, COURSE_EDIT_ANY)
    return chapter, course


def _lesson_for_edit(request: Any) -> tuple[Any, Any]:
    lesson, course = services.get_lesson(request.db, request.validated["path"]["id"])
    require_owner_or_permission(request, course.teacher_id, COURSE_EDIT_ANY)
    return lesson, course


@course_chapters.get(permission=PUBLIC, schema={"path": IdPath},
                     responses={200: (ChapterSchema(many=True), "The chapters in order, with their lessons.")})
def list_chapters(request: Any) -> list:
    """A course's chapters in order, each with its lessons (three queries
    whatever their number).  404 for a course the caller may not see."""
    course = services.get_course(request.db, request.validated["path"]["id"])
    visible_or_404(request, course)
    return [chapter_out(c, lessons) for c, lessons in services.chapters_with_lessons(request.db, course.id)]


@course_chapters.post(permission=COURSE_EDIT, schema={"path": IdPath, "body": ChapterCreateSchema},
                      responses={201: (ChapterSchema, "The new chapter (last unless sort_order is given).")})
def create_chapter(request: Any) -> dict:
    """Add a chapter to a course (its teacher; course managers any course)."""
    course = editable_course(request, request.validated["path"]["id"])
    created = services.create_chapter(request.db, course, request.validated["body"])
    request.response.status = 201
    return chapter_out(created, [])


@chapter_order.put(permission=COURSE_EDIT, schema={"path": IdPath, "body": ReorderSchema},
                   responses={200: (ChapterSchema(many=True), "The chapters in their new order.")})
def reorder_chapters(request: Any) -> list:
    """Reorder a course's chapters: ``ids`` names every chapter once, in the new order."""
    course = editable_course(request, request.validated["path"]["id"])
    services.reorder(request.db, Chapter, Chapter.course_id == course.id, request.validated["body"]["ids"])
    return [chapter_out(c, lessons) for c, lessons in services.chapters_with_lessons(request.db, course.id)]


@chapter.put(permission=COURSE_EDIT, schema={"path": IdPath, "body": ChapterUpdateSchema},
             responses={200: (ChapterSchema, "The updated chapter.")})
def update_chapter(request: Any) -> dict:
    """Update a chapter (the course's teacher; course managers)."""
    found, _course = _chapter_for_edit(request)
    return chapter_out(services.update_chapter(request.db, found, request.validated["body"]))


@chapter.delete(permission=COURSE_EDIT, schema={"path": IdPath}, responses={204: (None, "Deleted, with its lessons.")})
def delete_chapter(request: Any) -> Any:
    """Delete a chapter and its lessons; the course's duration follows."""
    found, course = _chapter_for_edit(request)
    services.delete_chapter(request.db, found, course)
    forget_course(request, course.id)
    return no_content(request)


@chapter_lessons.get(permission=PUBLIC, schema={"path": IdPath},
                     responses={200: (LessonSchema(many=True), "The chapter's lessons in order.")})
def list_lessons(request: Any) -> list:
    """A chapter's lessons in order (resource_url only for those who may
    study them).  404 for a course the caller may not see."""
    found, course = services.get_chapter(request.db, request.validated["path"]["id"])
    visible_or_404(request, course)
    lessons = request.db.scalars(sa.select(Lesson).where(Lesson.chapter_id == found.id)
                                 .order_by(Lesson.sort_order, Lesson.id)).all()
    full = access.may_study(request, course)
    # access.may_study_lesson, without a query per lesson: free and trial
    # lessons, and every lesson of a free chapter, for signed-in callers
    opened = request.authenticated_userid is not None
    out = []
    for item in lessons:
        row = lesson_out(item)
        if not (full or (opened and (item.is_free or item.is_trial or found.is_free))):
            row["resource_url"] = None
        out.append(row)
    return out


@chapter_lessons.post(permission=COURSE_EDIT, schema={"path": IdPath, "body": LessonCreateSchema},
                      responses={201: (LessonSchema, "The new lesson (last unless sort_order is given).")})
def create_lesson(request: Any) -> dict:
    """Add a lesson to a chapter; the course's duration follows."""
    found, course = _chapter_for_edit(request)
    created = services.create_lesson(request.db, found, course, dict(request.validated["body"]),
                                     hook=hook(request), user_id=request.authenticated_userid)
    forget_course(request, course.id)
    if course.status == PUBLISHED:
        notices.lesson_added(request, course, created)
    request.response.status = 201
    return lesson_out(created)


@lesson_order.put(permission=COURSE_EDIT, schema={"path": IdPath, "body": ReorderSchema},
                  responses={200: (LessonSchema(many=True), "The lessons in their new order.")})
def reorder_lessons(request: Any) -> list:
    """Reorder a chapter's lessons: ``ids`` names every lesson once, in the new order."""
    found, _course = _chapter_for_edit(request)
    services.reorder(request.db, Lesson, Lesson.chapter_id == found.id, request.validated["body"]["ids"])
    return [lesson_out(x) for x in request.db.scalars(sa.select(Lesson).where(Lesson.chapter_id == found.id)
                                                      .order_by(Lesson.sort_order, Lesson.id))]


@lesson.get(permission=LEARN, schema={"path": IdPath},
            responses={200: (LessonSchema, "The lesson, with the caller's progress.")})
def get_lesson(request: Any) -> dict:
    """A lesson with the caller's progress in it (null before any).

    resource_url is null when the caller may not study the lesson (not
    enrolled, and the lesson is neither free nor a trial lesson).  404 for
    a course the caller may not see."""
    found, course = access.lesson_for(request, request.validated["path"]["id"])
    visible_or_404(request, course)
    out = lesson_out(found)
    out["locked"] = not access.may_study_lesson(request, course, found)
    if out["locked"]:
        out["resource_url"] = None
    progress = request.db.scalar(sa.select(Progress).where(Progress.user_id == request.authenticated_userid,
                                                           Progress.lesson_id == found.id))
    out["progress"] = None if progress is None else {
        "progress_percent": number(progress.progress_percent), "last_position": progress.last_position,
        "is_completed": progress.is_completed}
    interval = int(request.registry.settings.get(PROGRESS_BUFFER_SECONDS) or 0)
    if progress is not None and interval:
        buffered = heartbeat.latest(request.registry["learnsail.cache"], request.authenticated_userid, found.id,
                                    interval)
        if buffered:  # newer than the row: the latest position always shows
            out["progress"].update(progress_percent=float(buffered["percent"]), last_position=buffered["position"])
    return out


@lesson.put(permission=COURSE_EDIT, schema={"path": IdPath, "body": LessonUpdateSchema},
            responses={200: (LessonSchema, "The updated lesson.")})
def update_lesson(request: Any) -> dict:
    """Update a lesson (the course's teacher; course managers); chapter_id
    moves it to another chapter of the same course."""
    found, course = _lesson_for_edit(request)
    updated = services.update_lesson(request.db, found, course, dict(request.validated["body"]),
                                     hook=hook(request), user_id=request.authenticated_userid)
    forget_course(request, course.id)
    return lesson_out(updated)


@lesson.delete(permission=COURSE_EDIT, schema={"path": IdPath}, responses={204: (None, "Deleted.")})
def delete_lesson(request: Any) -> Any:
    """Delete a lesson; the course's duration follows."""
    found, course = _lesson_for_edit(request)
    services.delete_lesson(request.db, found, course)
    forget_course(request, course.id)
    return no_content(request)


SERVICES = (course_chapters, chapter_order, chapter, chapter_lessons, lesson_order, lesson)
