"""Enrolment, learning progress, my courses, notes and collections (000 §六
学习相关API, 笔记相关API, 学习中心模块补充)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import selectinload

from learnsail.api import Service, no_content, page_of
from learnsail.db.pagination import paginate
from learnsail.errors import NotFound, PermissionDenied
from learnsail.identity.acl import require_owner_or_permission
from learnsail.identity.models import User
from learnsail_courses import access, learning, services
from learnsail_courses.models import Course, Enrolment
from learnsail_courses.permissions import (COURSE_EDIT_ANY, COURSE_VIEW_ANY, ENROL, LEARN, STUDENTS_VIEW,
                                           STUDENTS_VIEW_ANY)
from learnsail_courses.schemas import (CollectedSchema, CollectionItemSchema, CourseProgressSchema,
                                       CourseStatsSchema, EnrolmentSchema, EnrolSchema, IdPath, MyCourseSchema,
                                       MyCoursesQuery, NoteCreateSchema, NoteSchema, NoteUpdateSchema, PageQuery,
                                       ProgressReportSchema, ProgressSchema, StatsQuery, StatsSchema, StudentPath,
                                       StudentSchema, StudentsQuery, ValiditySchema)
from learnsail_courses.settings import TRIAL_DAYS
from learnsail_courses.views.common import forget_course, hook, may, number
from learnsail_courses.views.courses import teacher_name

enroll = Service(name="courses.enroll", path="/api/v1/courses/{id}/enroll",
                 description="The caller's enrolment in a course.")
students = Service(name="courses.students", path="/api/v1/courses/{id}/students",
                   description="A course's students (its teacher, course managers).")
student = Service(name="courses.student", path="/api/v1/courses/{id}/students/{user_id}",
                  description="One student's enrolment: its validity window.")
lesson_progress = Service(name="courses.lesson_progress", path="/api/v1/lessons/{id}/progress",
                          description="The caller's progress in a lesson.")
my_courses = Service(name="courses.my_courses", path="/api/v1/users/courses", description="The caller's courses.")
my_course_progress = Service(name="courses.my_course_progress", path="/api/v1/users/courses/{id}/progress",
                             description="The caller's progress in one course.")
lesson_notes = Service(name="courses.lesson_notes", path="/api/v1/lessons/{id}/notes",
                       description="The caller's notes on a lesson.")
note = Service(name="courses.note", path="/api/v1/notes/{id}", description="One of the caller's notes.")
collect = Service(name="courses.collect", path="/api/v1/users/courses/{id}/collect",
                  description="Collect (favourite) a course.")
course_stats = Service(name="courses.course_stats", path="/api/v1/courses/{id}/stats",
                       description="A teacher's figures for one course.")
stats = Service(name="courses.stats", path="/api/v1/users/learning/stats",
                description="The caller's learning statistics.")
collections = Service(name="courses.collections", path="/api/v1/users/collections",
                      description="The caller's collected courses.")


def enrolment_out(enrolment: Any) -> dict:
    return {"id": enrolment.id, "course_id": enrolment.course_id, "user_id": enrolment.user_id,
            "kind": enrolment.kind, "status": enrolment.status, "valid_from": enrolment.valid_from,
            "valid_until": enrolment.valid_until, "progress_percent": number(enrolment.progress_percent),
            "created_at": enrolment.created_at}


def visible_course(request: Any, course_id: int) -> Any:
    course = services.get_course(request.db, course_id)
    if not access.may_see(request, course):
        raise NotFound(f"No course with id {course_id}.")
    return course


@enroll.post(permission=ENROL, schema={"path": IdPath, "body": EnrolSchema}, errors=(402,),
             responses={201: (EnrolmentSchema, "Enrolled."), 200: (EnrolmentSchema, "Already enrolled.")})
def enrol(request: Any) -> dict:
    """Enrol in a published course: 201, or 200 with the enrolment when
    already enrolled (idempotent).

    A free course gives a free enrolment; a member-only course one for
    members until their membership ends (403 for others when it is free);
    ``{"enrollment_type": "trial"}`` a trial of learnsail.courses.trial_days
    days (free and trial lessons only; not renewable).  A paid course
    answers 402 PAYMENT_REQUIRED: it is bought through the payments plugin,
    and cannot be bought at all without it."""
    course = visible_course(request, request.validated["path"]["id"])
    payments = "payments" in request.registry["learnsail.plugins"].order
    kind, valid_until = learning.grant(
        request.db, hook(request), request.authenticated_userid, course, request.validated["body"]["enrollment_type"],
        trial_days=request.registry.settings.get(TRIAL_DAYS, 7), payments_enabled=payments)
    enrolment, created = learning.enrol(request.db, hook(request), request.authenticated_userid, course, kind=kind,
                                        valid_until=valid_until)
    if created:
        forget_course(request, course.id)  # student_count
    request.response.status = 201 if created else 200
    return enrolment_out(enrolment)


@enroll.delete(permission=ENROL, schema={"path": IdPath}, responses={204: (None, "Left the course.")})
def leave(request: Any) -> Any:
    """Leave a course (404 when not enrolled).  Progress and notes are kept."""
    course = services.get_course(request.db, request.validated["path"]["id"])
    learning.leave(request.db, hook(request), request.authenticated_userid, course.id)
    forget_course(request, course.id)
    return no_content(request)


def _student_out(enrolment: Any, user: Any = None) -> dict:
    user = user or enrolment.user
    return {**enrolment_out(enrolment), "username": user.username, "avatar_url": user.avatar_url,
            "completed_lessons": enrolment.completed_lessons, "last_accessed": enrolment.last_accessed_at,
            "completed_at": enrolment.completed_at, "state": learning.learning_state(enrolment)}


@students.get(permission=STUDENTS_VIEW, schema={"path": IdPath, "querystring": StudentsQuery},
              responses={200: (page_of(StudentSchema), "A page of the course's students, newest first.")})
def list_students(request: Any) -> dict:
    """A course's students with their progress (the course's teacher;
    holders of courses:enrolment:view_any for any course)."""
    course = services.get_course(request.db, request.validated["path"]["id"])
    require_owner_or_permission(request, course.teacher_id, STUDENTS_VIEW_ANY)
    stmt = learning.students(course.id, request.validated["querystring"].get("status"))
    return paginate(request, request.db, stmt.options(selectinload(Enrolment.user)), _student_out)


@student.put(permission=STUDENTS_VIEW, schema={"path": StudentPath, "body": ValiditySchema},
             responses={200: (StudentSchema, "The enrolment with its new validity window.")})
def set_validity(request: Any) -> dict:
    """Set a student's validity window (valid_from, valid_until; null for
    open-ended) -- course managers only: access outside it is refused."""
    path = request.validated["path"]
    course = services.get_course(request.db, path["id"])
    if not may(request, COURSE_EDIT_ANY):
        raise PermissionDenied("Only course managers change validity windows.")
    enrolment = learning.set_validity(request.db, course.id, path["user_id"], request.validated["body"])
    return _student_out(enrolment, request.db.get(User, enrolment.user_id))


@lesson_progress.post(permission=LEARN, schema={"path": IdPath, "body": ProgressReportSchema},
                      responses={200: (ProgressSchema, "The caller's progress in the lesson.")})
def report_progress(request: Any) -> dict:
    """Record progress in a lesson (000): progress_percent 0..100 (400
    outside), last_position in seconds (the resume point), is_completed.

    A lesson counts as completed at the course's completion threshold
    (default learnsail.courses.completion_threshold, 90) or when the report
    says so.  403 when the caller is not enrolled (or the enrolment is
    outside its validity window) and the lesson is neither free nor a trial
    lesson."""
    lesson, course = access.lesson_for(request, request.validated["path"]["id"])
    if not access.may_see(request, course):
        raise NotFound(f"No lesson with id {lesson.id}.")
    if not access.may_study_lesson(request, course, lesson):
        raise PermissionDenied("Enrol in the course to record progress in this lesson.")
    body = request.validated["body"]
    return learning.report_progress(
        request.db, hook(request), request.registry["learnsail.cache"], request.registry.settings,
        request.authenticated_userid, lesson, course, progress_percent=body["progress_percent"],
        last_position=body.get("last_position"), is_completed=body.get("is_completed"))


@my_courses.get(permission=LEARN, schema={"querystring": MyCoursesQuery},
                responses={200: (page_of(MyCourseSchema), "A page of the caller's courses, last accessed first.")})
def list_my_courses(request: Any) -> dict:
    """The caller's courses (usable enrolments), last accessed first.
    status: enrolled (all, the default), in_progress (started, not
    completed), completed.  Five queries whatever the page size."""
    stmt = learning.my_courses(request.authenticated_userid, request.validated["querystring"].get("status"))
    stmt = stmt.options(selectinload(Enrolment.course).selectinload(Course.teacher).selectinload(User.profile))

    def out(enrolment: Any) -> dict:
        course = enrolment.course
        return {"id": course.id, "title": course.title, "cover_image_url": course.cover_image_url,
                "teacher_name": teacher_name(course.teacher), "progress_percent": number(enrolment.progress_percent),
                "last_accessed": enrolment.last_accessed_at, "status": learning.learning_state(enrolment),
                "kind": enrolment.kind,
                "enrolled_at": enrolment.created_at, "valid_until": enrolment.valid_until}

    return paginate(request, request.db, stmt, out)


@my_course_progress.get(permission=LEARN, schema={"path": IdPath},
                        responses={200: (CourseProgressSchema, "Figures for the course and each chapter.")})
def get_course_progress(request: Any) -> dict:
    """The caller's progress in a course, per chapter (404 when not enrolled)."""
    course = visible_course(request, request.validated["path"]["id"])
    return learning.course_progress(request.db, request.authenticated_userid, course.id)


def note_out(item: Any) -> dict:
    return {"id": item.id, "content": item.content, "position": item.position, "lesson_id": item.lesson_id,
            "user_id": item.user_id, "created_at": item.created_at, "updated_at": item.updated_at}


def _studied_lesson(request: Any) -> Any:
    lesson, course = access.lesson_for(request, request.validated["path"]["id"])
    if not access.may_see(request, course):
        raise NotFound(f"No lesson with id {lesson.id}.")
    return lesson, course


@lesson_notes.get(permission=LEARN, schema={"path": IdPath},
                  responses={200: (NoteSchema(many=True), "The caller's notes, by video position.")})
def list_notes(request: Any) -> list:
    """The caller's own notes on a lesson, by video position."""
    lesson, _course = _studied_lesson(request)
    return [note_out(n) for n in learning.notes_of(request.db, request.authenticated_userid, lesson.id)]


@lesson_notes.post(permission=LEARN, schema={"path": IdPath, "body": NoteCreateSchema},
                   responses={201: (NoteSchema, "The new note.")})
def create_note(request: Any) -> dict:
    """Write a note on a lesson the caller may study (403 otherwise), at an
    optional video position in seconds."""
    lesson, course = _studied_lesson(request)
    if not access.may_study_lesson(request, course, lesson):
        raise PermissionDenied("Enrol in the course to take notes on this lesson.")
    body = request.validated["body"]
    created = learning.add_note(request.db, request.authenticated_userid, lesson.id, body["content"], body["position"])
    request.response.status = 201
    return note_out(created)


@note.put(permission=LEARN, schema={"path": IdPath, "body": NoteUpdateSchema},
          responses={200: (NoteSchema, "The updated note.")})
def update_note(request: Any) -> dict:
    """Edit one of the caller's notes (404 for anyone else's)."""
    item = learning.own_note(request.db, request.authenticated_userid, request.validated["path"]["id"])
    for field, value in request.validated["body"].items():
        setattr(item, field, value)
    request.db.flush()
    return note_out(item)


@note.delete(permission=LEARN, schema={"path": IdPath}, responses={204: (None, "Deleted.")})
def delete_note(request: Any) -> Any:
    """Delete one of the caller's notes (404 for anyone else's)."""
    request.db.delete(learning.own_note(request.db, request.authenticated_userid, request.validated["path"]["id"]))
    return no_content(request)


@collect.post(permission=LEARN, schema={"path": IdPath},
              responses={200: (CollectedSchema, "Collected.")})
def collect_course(request: Any) -> dict:
    """Collect a course (000): 400 when it is collected already."""
    course = visible_course(request, request.validated["path"]["id"])
    learning.collect(request.db, request.authenticated_userid, course.id)
    return {"message": "Course collected successfully", "course_id": course.id, "user_id": request.authenticated_userid}


@collect.delete(permission=LEARN, schema={"path": IdPath},
                responses={200: (CollectedSchema, "Uncollected.")})
def uncollect_course(request: Any) -> dict:
    """Remove a course from the collection (000): 400 when it is not collected."""
    course = services.get_course(request.db, request.validated["path"]["id"])
    learning.uncollect(request.db, request.authenticated_userid, course.id)
    return {"message": "Course uncollected successfully", "course_id": course.id,
            "user_id": request.authenticated_userid}


@collections.get(permission=LEARN, schema={"querystring": PageQuery},
                 responses={200: (page_of(CollectionItemSchema), "A page of collected courses, newest first.")})
def list_collections(request: Any) -> dict:
    """The caller's collected courses, most recently collected first."""
    stmt = learning.collections(request.authenticated_userid, see_all=may(request, COURSE_VIEW_ANY)).options(
        selectinload(Course.teacher).selectinload(User.profile))

    def out(row: Any) -> dict:
        collection, course = row
        return {"id": course.id, "title": course.title, "cover_image_url": course.cover_image_url,
                "teacher_name": teacher_name(course.teacher), "price": number(course.price),
                "rating": number(course.rating), "collected_at": collection.created_at}

    return paginate(request, request.db, stmt, out, scalars=False)


@stats.get(permission=LEARN, schema={"querystring": StatsQuery},
           responses={200: (StatsSchema, "Hours, courses, completion and the daily trend.")})
def learning_stats(request: Any) -> dict:
    """The caller's learning statistics (000): hours learnt, completed and
    in-progress courses, average completion of current courses, the
    category learnt most, and hours per day over the last ``days`` days."""
    return learning.stats(request.db, request.authenticated_userid, request.validated["querystring"].get("days") or 7)


@course_stats.get(permission=STUDENTS_VIEW, schema={"path": IdPath},
                  responses={200: (CourseStatsSchema, "Students, completions, progress, hours, rating, per lesson.")})
def get_course_stats(request: Any) -> dict:
    """A course's figures for its teacher (holders of
    courses:enrolment:view_any for any course): students, trials, ended
    and completed enrolments, average progress, learning hours, rating,
    comments, and per lesson how many started and completed it."""
    course = services.get_course(request.db, request.validated["path"]["id"])
    require_owner_or_permission(request, course.teacher_id, STUDENTS_VIEW_ANY)
    return learning.course_stats(request.db, course)


SERVICES = (course_stats, enroll, students, student, lesson_progress, my_courses, my_course_progress, lesson_notes,
            note, collect, collections, stats)
