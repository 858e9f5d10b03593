"""Courses (000 §六 课程相关API, 课程审核API): write, review, delete."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from learnsail.api import PUBLIC, Service, no_content, page_of
from learnsail.db import UTCDateTime, utcnow
from learnsail.db.pagination import count_of, page_params, paginate
from learnsail.errors import NotFound
from learnsail.identity.models import User
from learnsail.identity.acl import require_owner_or_permission
from learnsail_courses import access, search, services
from learnsail_courses.models import PUBLISHED, TRIAL, Course, Enrolment
from learnsail_courses.permissions import (COURSE_CREATE, COURSE_EDIT, COURSE_EDIT_ANY, COURSE_REVIEW,
                                           COURSE_VIEW_ANY)
from learnsail_courses.schemas import (CourseCreateSchema, CourseDetailSchema, CourseListQuery,
                                       CourseSummarySchema, CourseUpdateSchema, CourseWriteSchema, HotQuery,
                                       IdPath, ReviewResultSchema, ReviewSchema)
from learnsail_courses.settings import COUNT_CACHE_TTL, DETAIL_CACHE_TTL, HOT_CACHE_TTL
from learnsail_courses.views.common import HOT_PREFIX, detail_key, forget_course, hook, may, number, user_id

courses = Service(name="courses.courses", path="/api/v1/courses", description="The course catalogue.")
course = Service(name="courses.course", path="/api/v1/courses/{id}", description="One course.")
hot = Service(name="courses.hot", path="/api/v1/courses/hot", description="The most popular courses.")
review = Service(name="courses.review", path="/api/v1/courses/{id}/review",
                 description="An administrator's review of a course.")


def course_written(course: Any) -> dict:
    """000's answer to POST and PUT /courses."""
    return {"id": course.id, "title": course.title, "description": course.description,
            "cover_image_url": course.cover_image_url, "teacher_id": course.teacher_id,
            "category_id": course.category_id, "difficulty": course.difficulty, "price": number(course.price),
            "tags": [t.name for t in course.tags], "course_type": course.course_type, "is_free": course.is_free,
            "language": course.language, "completion_threshold": course.completion_threshold,
            "is_member_only": course.is_member_only, "duration": course.duration,
            "created_at": course.created_at, "updated_at": course.updated_at, "status": course.status}


def teacher_name(user: Any) -> str:
    profile = user.profile
    return (profile.real_name if profile is not None and profile.real_name else None) or user.username


def course_card(course: Any) -> dict:
    """A course in a list (000's GET /courses item, plus status, category and tags)."""
    return {"id": course.id, "title": course.title, "cover_image_url": course.cover_image_url,
            "teacher_name": teacher_name(course.teacher), "teacher_id": course.teacher_id,
            "price": number(course.price), "rating": number(course.rating), "rating_count": course.rating_count,
            "student_count": course.student_count, "difficulty": course.difficulty, "status": course.status,
            "category_id": course.category_id, "course_type": course.course_type, "is_free": course.is_free,
            "is_member_only": course.is_member_only, "duration": course.duration, "tags": list(course.tag_names or [])}


def editable_course(request: Any, course_id: int, *, with_tags: bool = False) -> Any:
    """The course, if the caller is its teacher or may edit any course
    (403 otherwise; 404 when it does not exist or is deleted)."""
    course = services.get_course(request.db, course_id, with_tags=with_tags)
    require_owner_or_permission(request, course.teacher_id, COURSE_EDIT_ANY)
    return course


@courses.get(permission=PUBLIC, schema={"querystring": CourseListQuery},
             responses={200: (page_of(CourseSummarySchema), "A page of courses.")})
def list_courses(request: Any) -> dict:
    """The catalogue: published courses, filtered, searched and sorted.

    category_id includes its sub-categories; tags requires every tag named;
    search matches words of the title or description (Chinese included).
    A teacher passing their own teacher_id sees all their courses (any
    status, or the one asked); course managers may ask for any status.
    Two queries whatever the page size (the count, the page with its
    teachers and tags); the count of a public query is cached for
    learnsail.courses.count_cache_ttl seconds, so usually one, and a page
    after one already served seeks to its place on the index (deep pages
    cost what the first does)."""
    query = request.validated["querystring"]
    caller, view_any = user_id(request), may(request, COURSE_VIEW_ANY)
    stmt = search.catalogue(request.db, query, caller_id=caller, may_view_any=view_any)
    ttl = request.registry.settings.get(COUNT_CACHE_TTL, 60)
    shared = bool(ttl) and search.is_public(query, caller_id=caller, may_view_any=view_any)
    cache = request.registry["learnsail.cache"]
    page, size = page_params(request)

    def count(select: Any) -> int:
        produce = lambda: count_of(request.db, search.ids_only(select))  # noqa: E731
        return cache.get_or_set(search.count_key(query), produce, ttl) if shared else produce()

    def fetch(_page_stmt: Any) -> list:
        return search.fetch_page(request.db, cache, stmt, query, page, size, anchors=shared, ttl=ttl)

    return paginate(request, request.db, stmt, lambda row: card_of_row(row, row.tag_names or []),
                    count=count, fetch=fetch)


def card_of_row(row: Any, tags: list[str]) -> dict:
    return {"id": row.id, "title": row.title, "cover_image_url": row.cover_image_url,
            "teacher_name": row.teacher_real_name or row.teacher_username, "teacher_id": row.teacher_id,
            "price": number(row.price), "rating": number(row.rating), "rating_count": row.rating_count,
            "student_count": row.student_count, "difficulty": row.difficulty, "status": row.status,
            "category_id": row.category_id, "course_type": row.course_type, "is_free": row.is_free,
            "is_member_only": row.is_member_only, "duration": row.duration, "tags": tags}


@hot.get(permission=PUBLIC, schema={"querystring": HotQuery},
         responses={200: (CourseSummarySchema(many=True), "The hottest published courses, hottest first.")})
def hot_courses(request: Any) -> list:
    """The most popular published courses (by students, then rating), at
    most ``limit`` (default 10, at most 50); cached for
    learnsail.courses.hot_cache_ttl seconds."""
    limit = request.validated["querystring"].get("limit") or 10
    ttl = request.registry.settings.get(HOT_CACHE_TTL, 300)
    produce = lambda: [course_card(c) for c in search.hot(request.db, limit)]  # noqa: E731
    if not ttl:
        return produce()
    return request.registry["learnsail.cache"].get_or_set(f"{HOT_PREFIX}{limit}", produce, ttl)


def _public_detail(found: Any) -> dict:
    """The part of the detail that is the same for every caller (cached)."""
    teacher = found.teacher
    return {
        "id": found.id, "title": found.title, "description": found.description,
        "cover_image_url": found.cover_image_url,
        "teacher": {"id": teacher.id, "name": teacher_name(teacher), "avatar_url": teacher.avatar_url,
                    "bio": teacher.profile.bio if teacher.profile is not None else None},
        "category": {"id": found.category.id, "name": found.category.name} if found.category else None,
        "difficulty": found.difficulty, "price": number(found.price), "is_free": found.is_free,
        "is_member_only": found.is_member_only,
        "course_type": found.course_type, "language": found.language, "duration": found.duration,
        "created_at": found.created_at, "updated_at": found.updated_at, "status": found.status,
        "student_count": found.student_count, "rating": number(found.rating), "rating_count": found.rating_count,
        "tags": list(found.tag_names or []),
    }


def _load_public(request: Any, ident: int) -> dict | None:
    found = request.db.scalar(
        sa.select(Course).where(Course.id == ident, Course.deleted_at.is_(None))
        .options(selectinload(Course.teacher).selectinload(User.profile),
                 selectinload(Course.category)))
    return None if found is None else _public_detail(found)


#: the caller's usable enrolment as plain columns (a read-only answer
#: needs no ORM object), built once: it runs on every signed-in detail
_CALLERS_ENROLMENT = sa.select(
    Enrolment.kind, Enrolment.valid_until, Enrolment.progress_percent, Enrolment.completed_lessons,
    Enrolment.last_accessed_at, Enrolment.completed_at,
).where(Enrolment.user_id == sa.bindparam("user_id"), Enrolment.course_id == sa.bindparam("course_id"),
        access.usable(sa.bindparam("now", type_=UTCDateTime())))


@course.get(permission=PUBLIC, schema={"path": IdPath},
            responses={200: (CourseDetailSchema, "The course, with is_enrolled and the caller's progress.")})
def get_course(request: Any) -> dict:
    """One course with its teacher, category and tags; ``is_enrolled`` and
    ``progress`` speak of the caller (false and null when anonymous).

    A course that is not published is visible only to its teacher, course
    managers and its enrolled students: 404 for everyone else.  The part
    that is the same for everyone is cached for
    learnsail.courses.detail_cache_ttl seconds (dropped when the course
    changes), so an anonymous caller costs no query."""
    ident = request.validated["path"]["id"]
    ttl = int(request.registry.settings.get(DETAIL_CACHE_TTL) or 0)
    cache = request.registry["learnsail.cache"]
    public = cache.get(detail_key(ident)) if ttl else None
    if public is None:
        public = _load_public(request, ident)
        if public is None:
            raise NotFound(f"No course with id {ident}.")
        if ttl:
            cache.set(detail_key(ident), public, ttl)
    seen_as = SimpleNamespace(id=public["id"], status=public["status"], teacher_id=public["teacher"]["id"])
    if not access.may_see(request, seen_as):
        raise NotFound(f"No course with id {ident}.")
    enrolment = None
    if user_id(request) is not None:
        enrolment = request.db.execute(_CALLERS_ENROLMENT, {"user_id": user_id(request), "course_id": ident,
                                                            "now": utcnow()}).first()
    return {
        **public,
        "is_enrolled": enrolment is not None and enrolment.kind != TRIAL,
        "enrollment_type": enrolment.kind if enrolment is not None else None,
        "valid_until": enrolment.valid_until if enrolment is not None else None,
        "progress": None if enrolment is None else {
            "progress_percent": number(enrolment.progress_percent),
            "completed_lessons": enrolment.completed_lessons,
            "last_accessed": enrolment.last_accessed_at, "completed_at": enrolment.completed_at},
    }


@courses.post(permission=COURSE_CREATE, schema=CourseCreateSchema,
              responses={201: (CourseWriteSchema, "The new course, a draft.")})
def create_course(request: Any) -> dict:
    """Create a course (teachers): it starts as a draft owned by the caller.

    ``tags`` are tag names; unknown names become new general tags."""
    course = services.create_course(request.db, request.authenticated_userid, request.validated["body"])
    request.response.status = 201
    return course_written(course)


@course.put(permission=COURSE_EDIT, schema={"path": IdPath, "body": CourseUpdateSchema},
            responses={200: (CourseWriteSchema, "The updated course.")})
def update_course(request: Any) -> dict:
    """Update a course (its teacher; course managers any course).

    ``status`` moves it through the workflow: ``reviewing`` submits a draft
    or rejected course (it needs a lesson), ``draft`` withdraws it from
    review or unpublishes it, ``archived`` archives a published course.
    Publishing is an administrator's review (PUT /courses/{id}/review)."""
    course = editable_course(request, request.validated["path"]["id"], with_tags=True)
    was_published = course.status == PUBLISHED
    services.update_course(request.db, course, request.validated["body"])
    forget_course(request, course.id, catalogue=True)
    from learnsail_courses import notices
    if was_published and course.status == PUBLISHED:
        notices.course_updated(request, course)
    return course_written(course)


@course.delete(permission=COURSE_EDIT, schema={"path": IdPath}, errors=(409,),
               responses={204: (None, "Deleted (soft: the row stays, hidden).")})
def delete_course(request: Any) -> Any:
    """Delete a course (its teacher; course managers any course): 409
    CONFLICT while students are enrolled -- archive it instead."""
    found = editable_course(request, request.validated["path"]["id"])
    services.delete_course(request.db, found)
    forget_course(request, found.id, catalogue=True)
    return no_content(request)


@review.put(permission=COURSE_REVIEW, schema={"path": IdPath, "body": ReviewSchema},
            responses={200: (ReviewResultSchema, "The decision, with the reviewer and the time.")})
def review_course(request: Any) -> dict:
    """Publish or reject a course in review (administrators).  Rejecting
    needs a review_comment.  The teacher is notified either way."""
    body = request.validated["body"]
    course = services.get_course(request.db, request.validated["path"]["id"])
    services.review_course(request.db, course, request.authenticated_userid, body["status"], body["review_comment"])
    forget_course(request, course.id, catalogue=True)
    from learnsail_courses import notices
    notices.review_result(request, course)
    if course.status == PUBLISHED:
        hook(request).learnsail_course_published(course=course, session=request.db)
    return {"id": course.id, "title": course.title, "status": course.status,
            "review_comment": course.review_comment, "reviewed_at": course.reviewed_at,
            "reviewer_id": course.reviewer_id}


SERVICES = (courses, hot, course, review)  # hot before {id}
