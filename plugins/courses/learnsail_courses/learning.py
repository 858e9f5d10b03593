"""Enrolment, learning progress, notes and collections: the rules,
independent of HTTP.  ``hook`` arguments are the plugin manager's hook
relay (``pm.hook``), so the rules fire the plugin's hooks themselves."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail.errors import APIError, NotFound, PermissionDenied, ValidationFailed
from learnsail_courses.access import usable
from learnsail_courses.models import (ACTIVE, ENDED, FREE, MEMBER, PAID, PUBLISHED, TRIAL, Chapter, Collection,
                                      Course, Enrolment, LearningDay, Lesson, Note, Progress)

#: seconds of learning one progress report may credit at most (a player
#: reports every few seconds; a jump forward is seeking, not learning)
MAX_CREDIT_PER_REPORT = 300


class PaymentRequired(APIError):
    """A paid course is enrolled in by buying it, not by POST /enroll."""

    status = 402
    code = "PAYMENT_REQUIRED"
    default_message = "This course must be bought."


class AlreadyCollected(ValidationFailed):
    pass


# --- enrolment ------------------------------------------------------------------

def counts_as_student(enrolment: Enrolment) -> bool:
    """Active, and not a trial: what ``student_count`` counts."""
    return enrolment.status == ACTIVE and enrolment.kind != TRIAL


def refuse_paid(course: Course, payments_enabled: bool) -> PaymentRequired:
    if payments_enabled:
        message = (f"This course costs {course.price} CNY: buy it through the payments plugin "
                   f"(product kind 'course', id {course.id}).")
    else:
        message = (f"This course costs {course.price} CNY and cannot be bought here: the payments "
                   f"plugin is not installed or not enabled.")
    return PaymentRequired(message, {"price": str(course.price), "payments_enabled": payments_enabled})


def grant(session: Session, hook: Any, user_id: int, course: Course, requested: str, *, trial_days: int,
          payments_enabled: bool) -> tuple[str, dt.datetime | None]:
    """What enrolment ``user_id`` may take in ``course`` by asking
    (``requested``: ``free`` or ``trial``): ``(kind, valid_until)``.

    - ``trial``: any published course, for ``trial_days`` (400 when trials
      are off);
    - a member-only course: members (``learnsail_member_until``) until
      their membership ends; others 403 for a free course, 402 for a paid
      one;
    - a free course: ``free``, open-ended;
    - a paid course: :class:`PaymentRequired` (402), bought through the
      payments plugin."""
    now = utcnow()
    bought = bought_before(session, user_id, course.id, now)
    if bought is not None:  # left since, never refunded: what was bought is taken up again
        return PAID, bought.valid_until
    if requested == TRIAL:
        if trial_days <= 0:
            raise ValidationFailed({"enrollment_type": ["This platform offers no trial enrolments."]})
        return TRIAL, now + dt.timedelta(days=trial_days)
    if course.is_member_only:
        until = hook.learnsail_member_until(user_id=user_id, session=session)
        if until is True:
            return MEMBER, None
        if isinstance(until, dt.datetime) and until > now:
            return MEMBER, until
        if course.is_free:
            raise PermissionDenied("This course is for members only.")
        raise refuse_paid(course, payments_enabled)
    if not course.is_free:
        raise refuse_paid(course, payments_enabled)
    return FREE, None


def bought_before(session: Session, user_id: int, course_id: int, now: dt.datetime) -> Enrolment | None:
    """The user's ended paid enrolment in the course whose right still
    holds: they left it, it was not refunded (a refund ends its validity,
    :func:`learnsail_courses.commerce.revoke`)."""
    return session.scalar(sa.select(Enrolment).where(
        Enrolment.user_id == user_id, Enrolment.course_id == course_id, Enrolment.kind == PAID,
        Enrolment.status == ENDED, Enrolment.order_no.is_not(None),
        sa.or_(Enrolment.valid_until.is_(None), Enrolment.valid_until > now)))


def enrol(session: Session, hook: Any, user_id: int, course: Course, *, kind: str = "free",
          valid_from: dt.datetime | None = None, valid_until: dt.datetime | None = None,
          order_no: str | None = None, price_paid: Decimal | None = None) -> tuple[Enrolment, bool]:
    """Enrol ``user_id`` in the published ``course`` as ``kind`` (the caller
    decided the kind may be granted: free course, trial, membership,
    payment).  Idempotent: a usable enrolment is returned as it is, except
    that a trial is upgraded by any other kind.  Returns ``(enrolment,
    created)``; ``created`` is true for a new, renewed or upgraded one, and
    ``learnsail_enrolment_created`` fires then.

    A paid enrolment (``order_no``, ``price_paid``: the order that bought
    it) also upgrades a member's enrolment, and is granted whatever the
    course's status now: the student paid while it was on sale.

    An ended trial is not renewed as a trial (400)."""
    if course.status != PUBLISHED and kind != PAID:
        raise ValidationFailed({"course": [f"Only published courses take students; this one is {course.status}."]})
    # lock the course row: student_count stays right under concurrent enrolments
    session.execute(sa.select(Course.id).where(Course.id == course.id).with_for_update())
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.user_id == user_id,
                                                          Enrolment.course_id == course.id))
    now = utcnow()
    if enrolment is not None:
        is_usable = session.scalar(sa.select(Enrolment.id).where(Enrolment.id == enrolment.id, usable(now)))
        upgrade = enrolment.kind == TRIAL and kind != TRIAL or enrolment.kind == MEMBER and kind == PAID
        if is_usable and not upgrade:
            return enrolment, False
        if not is_usable and kind == TRIAL and enrolment.kind == TRIAL:
            raise ValidationFailed({"enrollment_type": ["Your trial of this course has ended; enrol to go on."]},
                                   "Your trial of this course has ended.")
    if enrolment is None:
        enrolment = Enrolment(user_id=user_id, course_id=course.id, status=ENDED, kind=kind)
        try:
            with session.begin_nested():
                session.add(enrolment)
                session.flush()
        except IntegrityError:  # a concurrent request enrolled first
            return session.scalar(sa.select(Enrolment).where(Enrolment.user_id == user_id,
                                                             Enrolment.course_id == course.id)), False
    counted = counts_as_student(enrolment)
    enrolment.kind = kind
    enrolment.status = ACTIVE
    enrolment.valid_from = valid_from
    enrolment.valid_until = valid_until
    enrolment.ended_at = None
    if order_no is not None or kind != PAID or enrolment.kind != PAID:
        enrolment.order_no, enrolment.price_paid = order_no, price_paid
    # else: a paid enrolment taken up again keeps the order that bought it
    change = int(counts_as_student(enrolment)) - int(counted)
    if change:
        course.student_count = Course.student_count + change
    session.flush()
    session.refresh(course, ["student_count"])
    hook.learnsail_enrolment_created(enrolment=enrolment, session=session)
    return enrolment, True


def end_enrolment(session: Session, hook: Any, enrolment: Enrolment, reason: str) -> None:
    if enrolment.status != ACTIVE:
        return
    counted = counts_as_student(enrolment)
    enrolment.status = ENDED
    enrolment.ended_at = utcnow()
    if counted:
        session.execute(sa.update(Course).where(Course.id == enrolment.course_id, Course.student_count > 0)
                        .values(student_count=Course.student_count - 1))
    session.flush()
    hook.learnsail_enrolment_ended(enrolment=enrolment, reason=reason, session=session)


def leave(session: Session, hook: Any, user_id: int, course_id: int) -> None:
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.user_id == user_id,
                                                          Enrolment.course_id == course_id,
                                                          Enrolment.status == ACTIVE))
    if enrolment is None:
        raise NotFound("You are not enrolled in this course.")
    end_enrolment(session, hook, enrolment, "left")


def set_validity(session: Session, course_id: int, user_id: int, changes: dict) -> Enrolment:
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.user_id == user_id,
                                                          Enrolment.course_id == course_id))
    if enrolment is None:
        raise NotFound("That user is not enrolled in this course.")
    for field in ("valid_from", "valid_until"):
        if field in changes:
            setattr(enrolment, field, changes[field])
    if enrolment.valid_from and enrolment.valid_until and enrolment.valid_until <= enrolment.valid_from:
        raise ValidationFailed({"valid_until": ["Must be after valid_from."]})
    session.flush()
    return enrolment


def students(course_id: int, status: str | None = None) -> sa.Select:
    """The course's enrolments, newest first (the teacher's student list)."""
    stmt = sa.select(Enrolment).where(Enrolment.course_id == course_id)
    if status:
        stmt = stmt.where(Enrolment.status == status)
    return stmt.order_by(Enrolment.id.desc())


def my_courses(user_id: int, status: str | None) -> sa.Select:
    """The caller's usable enrolments, last accessed first.  ``status``:
    ``enrolled`` (all, the default), ``in_progress`` (started, not
    completed) or ``completed``."""
    stmt = (sa.select(Enrolment).join(Course, Course.id == Enrolment.course_id)
            .where(Enrolment.user_id == user_id, Course.deleted_at.is_(None), usable()))
    if status == "completed":
        stmt = stmt.where(Enrolment.completed_at.is_not(None))
    elif status == "in_progress":
        stmt = stmt.where(Enrolment.completed_at.is_(None), Enrolment.last_accessed_at.is_not(None))
    return stmt.order_by(sa.func.coalesce(Enrolment.last_accessed_at, Enrolment.created_at).desc(),
                         Enrolment.id.desc())


def learning_state(enrolment: Enrolment) -> str:
    if enrolment.completed_at is not None:
        return "completed"
    if enrolment.last_accessed_at is not None:
        return "in_progress"
    return "enrolled"


# --- progress -------------------------------------------------------------------

def _percent(done: int, total: int) -> Decimal:
    if not total:
        return Decimal("0.00")
    return (Decimal(done * 100) / Decimal(total)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _credit_day(session: Session, user_id: int, seconds: int, now: dt.datetime) -> None:
    if seconds <= 0:
        return
    day = now.date()
    updated = session.execute(sa.update(LearningDay).where(LearningDay.user_id == user_id, LearningDay.day == day)
                              .values(seconds=LearningDay.seconds + seconds)).rowcount
    if not updated:
        try:
            with session.begin_nested():
                session.add(LearningDay(user_id=user_id, day=day, seconds=seconds))
        except IntegrityError:  # another report created the row meanwhile
            session.execute(sa.update(LearningDay).where(LearningDay.user_id == user_id, LearningDay.day == day)
                            .values(seconds=LearningDay.seconds + seconds))


def record_progress(session: Session, hook: Any, user_id: int, lesson: Lesson, course: Course, *,
                    progress_percent: Decimal, last_position: int | None, is_completed: bool | None,
                    threshold: int) -> Progress:
    """Record a progress report on ``lesson``.

    ``progress_percent`` keeps the furthest point reached; ``last_position``
    is where to resume.  The lesson is completed at ``threshold`` percent,
    or (documents and quizzes, not videos) when the report says so, once
    and for good; the first completion
    updates the enrolment's figures and fires ``learnsail_lesson_completed``
    (and ``learnsail_course_completed`` with the last lesson)."""
    now = utcnow()
    # the row is locked: two reports of one viewer cannot both complete the lesson
    progress = session.scalar(sa.select(Progress).where(Progress.user_id == user_id,
                                                        Progress.lesson_id == lesson.id).with_for_update())
    if progress is None:
        progress = Progress(user_id=user_id, lesson_id=lesson.id, course_id=course.id, progress_percent=Decimal(0),
                            last_position=0, is_completed=False, learned_seconds=0)
        try:
            with session.begin_nested():
                session.add(progress)
                session.flush()
        except IntegrityError:
            progress = session.scalar(sa.select(Progress).where(Progress.user_id == user_id,
                                                                Progress.lesson_id == lesson.id))
    previous_position = progress.last_position or 0
    percent = Decimal(progress_percent).quantize(Decimal("0.01"))
    progress.progress_percent = max(Decimal(progress.progress_percent or 0), percent)
    if last_position is not None:
        credit = min(max(0, last_position - previous_position), MAX_CREDIT_PER_REPORT)
        progress.learned_seconds = (progress.learned_seconds or 0) + credit
        progress.last_position = last_position
        _credit_day(session, user_id, credit, now)
    progress.updated_at = now
    # a video is completed by watching it; a document or a quiz when the client says so
    said_done = bool(is_completed) and lesson.type != "video"
    newly_completed = not progress.is_completed and (said_done or percent >= threshold)
    if newly_completed:
        progress.is_completed = True
        progress.completion_date = now
        if said_done:
            progress.progress_percent = Decimal(100)
    session.flush()
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.user_id == user_id,
                                                          Enrolment.course_id == course.id, usable(now)))
    if enrolment is not None:
        enrolment.last_accessed_at = now
        if newly_completed:
            total, done = lesson_counts(session, user_id, course.id)
            enrolment.completed_lessons = done
            enrolment.progress_percent = _percent(done, total)
        session.flush()
    if newly_completed:
        hook.learnsail_lesson_completed(progress=progress, session=session)
        if enrolment is not None and enrolment.completed_at is None \
                and enrolment.completed_lessons >= lesson_counts(session, user_id, course.id)[0] > 0:
            enrolment.completed_at = now
            session.flush()
            hook.learnsail_course_completed(enrolment=enrolment, session=session)
    return progress


def report_progress(session: Session, hook: Any, cache: Any, settings: Any, user_id: int, lesson: Lesson,
                    course: Course, *, progress_percent: Decimal, last_position: int | None,
                    is_completed: bool | None) -> dict:
    """A progress report on ``lesson`` (the caller checked the user may
    study it), buffered in the cache when heartbeat buffering is on
    (:mod:`learnsail_courses.heartbeat`), else written at once.  Returns the
    answer of ``POST /lessons/{id}/progress``: ``{"id", "lesson_id",
    "user_id", "progress_percent", "last_position", "is_completed",
    "updated_at"}``, always the latest state."""
    from learnsail_courses import heartbeat
    from learnsail_courses.settings import COMPLETION_THRESHOLD, PROGRESS_BUFFER_SECONDS

    threshold = course.completion_threshold or settings.get(COMPLETION_THRESHOLD, 90)
    interval = int(settings.get(PROGRESS_BUFFER_SECONDS) or 0)
    percent = Decimal(progress_percent)
    if interval:
        state = heartbeat.buffer_report(
            session, cache, user_id, lesson.id, percent=percent, position=last_position,
            is_completed=is_completed, threshold=threshold, interval=interval, max_credit=MAX_CREDIT_PER_REPORT)
        if state is not None:
            return {"id": state["id"], "lesson_id": lesson.id, "user_id": user_id,
                    "progress_percent": float(state["percent"]), "last_position": state["position"],
                    "is_completed": state["completed"], "updated_at": dt.datetime.fromisoformat(state["at"])}
        heartbeat.flush_pair(session, cache, user_id, lesson.id, interval)
    progress = record_progress(session, hook, user_id, lesson, course, progress_percent=percent,
                               last_position=last_position, is_completed=is_completed, threshold=threshold)
    return {"id": progress.id, "lesson_id": progress.lesson_id, "user_id": progress.user_id,
            "progress_percent": float(progress.progress_percent or 0), "last_position": progress.last_position,
            "is_completed": progress.is_completed, "updated_at": progress.updated_at}


def lesson_counts(session: Session, user_id: int, course_id: int) -> tuple[int, int]:
    """(lessons in the course, of them completed by ``user_id``)."""
    total = session.scalar(sa.select(sa.func.count()).select_from(Lesson).where(Lesson.course_id == course_id))
    done = session.scalar(sa.select(sa.func.count()).select_from(Progress)
                          .join(Lesson, Lesson.id == Progress.lesson_id)
                          .where(Progress.user_id == user_id, Progress.course_id == course_id,
                                 Progress.is_completed.is_(True)))
    return int(total or 0), int(done or 0)


def refresh_enrolments(session: Session, course_id: int) -> None:
    """Recompute every enrolment's completed_lessons and progress_percent
    of ``course_id`` after its lessons changed (one UPDATE)."""
    total = session.scalar(sa.select(sa.func.count()).select_from(Lesson).where(Lesson.course_id == course_id))
    done = (sa.select(sa.func.count()).select_from(Progress)
            .join(Lesson, Lesson.id == Progress.lesson_id)
            .where(Progress.user_id == Enrolment.user_id, Progress.course_id == course_id,
                   Progress.is_completed.is_(True))
            .scalar_subquery())
    percent = sa.literal(0) if not total else sa.func.round(done * 100.0 / total, 2)
    session.execute(sa.update(Enrolment).where(Enrolment.course_id == course_id)
                    .values(completed_lessons=done, progress_percent=percent)
                    .execution_options(synchronize_session=False))
    session.expire_all()


def course_progress(session: Session, user_id: int, course_id: int) -> dict:
    """000's GET /users/courses/{id}/progress: figures for the course and
    each chapter (four queries whatever the number of chapters)."""
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.user_id == user_id,
                                                          Enrolment.course_id == course_id))
    if enrolment is None:
        raise NotFound("You are not enrolled in this course.")
    chapters = session.execute(sa.select(Chapter.id, Chapter.title).where(Chapter.course_id == course_id)
                               .order_by(Chapter.sort_order, Chapter.id)).all()
    lessons = session.execute(sa.select(Lesson.id, Lesson.chapter_id).where(Lesson.course_id == course_id)).all()
    completed = set(session.scalars(sa.select(Progress.lesson_id).where(
        Progress.user_id == user_id, Progress.course_id == course_id, Progress.is_completed.is_(True))))
    per_chapter: dict[int, list[int]] = {}
    for lesson_id, chapter_id in lessons:
        per_chapter.setdefault(chapter_id, []).append(lesson_id)
    rows = []
    for chapter_id, title in chapters:
        ids = per_chapter.get(chapter_id, [])
        done = sum(1 for i in ids if i in completed)
        rows.append({"id": chapter_id, "title": title, "total_lessons": len(ids), "completed_lessons": done,
                     "progress_percent": float(_percent(done, len(ids)))})
    done = sum(1 for lesson_id, _ in lessons if lesson_id in completed)
    return {"course_id": course_id, "total_lessons": len(lessons), "completed_lessons": done,
            "progress_percent": float(_percent(done, len(lessons))),
            "last_accessed": enrolment.last_accessed_at, "chapters": rows}


# --- notes ----------------------------------------------------------------------

def notes_of(session: Session, user_id: int, lesson_id: int) -> list[Note]:
    return list(session.scalars(sa.select(Note).where(Note.user_id == user_id, Note.lesson_id == lesson_id)
                                .order_by(sa.func.coalesce(Note.position, 0), Note.id)))


def add_note(session: Session, user_id: int, lesson_id: int, content: str, position: int | None) -> Note:
    note = Note(user_id=user_id, lesson_id=lesson_id, content=content, position=position)
    session.add(note)
    session.flush()
    return note


def own_note(session: Session, user_id: int, note_id: int) -> Note:
    note = session.scalar(sa.select(Note).where(Note.id == note_id, Note.user_id == user_id))
    if note is None:
        raise NotFound(f"No note with id {note_id}.")  # someone else's is not found either
    return note


# --- collections ----------------------------------------------------------------

def collect(session: Session, user_id: int, course_id: int) -> None:
    if session.get(Collection, (user_id, course_id)) is not None:
        raise AlreadyCollected({"course_id": ["You have already collected this course."]},
                               "The course is already in your collection.")
    try:
        with session.begin_nested():
            session.add(Collection(user_id=user_id, course_id=course_id, created_at=utcnow()))
    except IntegrityError:
        raise AlreadyCollected({"course_id": ["You have already collected this course."]},
                               "The course is already in your collection.") from None


def uncollect(session: Session, user_id: int, course_id: int) -> None:
    row = session.get(Collection, (user_id, course_id))
    if row is None:
        raise ValidationFailed({"course_id": ["This course is not in your collection."]},
                               "The course is not in your collection.")
    session.delete(row)
    session.flush()


def collections(user_id: int, *, see_all: bool = False) -> sa.Select:
    """The user's collected courses they may still see (``access.may_see``
    in SQL): published ones, their own, those they are enrolled in (not a
    trial); every one for course managers (``see_all``).  A course that was
    unpublished leaves the list, and comes back when it is published again."""
    stmt = (sa.select(Collection, Course).join(Course, Course.id == Collection.course_id)
            .where(Collection.user_id == user_id, Course.deleted_at.is_(None)))
    if not see_all:
        enrolled = sa.exists().where(Enrolment.user_id == user_id, Enrolment.course_id == Course.id,
                                     Enrolment.kind != TRIAL, usable())
        stmt = stmt.where(sa.or_(Course.status == PUBLISHED, Course.teacher_id == user_id, enrolled))
    return stmt.order_by(Collection.created_at.desc(), Collection.course_id.desc())


# --- statistics -----------------------------------------------------------------

def stats(session: Session, user_id: int, days: int = 7) -> dict:
    """000's GET /users/learning/stats for ``user_id``; ``learning_trends``
    covers the last ``days`` days (UTC), today included, zero days too."""
    from learnsail_courses.models import Category

    seconds = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Progress.learned_seconds), 0))
                             .where(Progress.user_id == user_id)) or 0
    completed = session.scalar(sa.select(sa.func.count()).select_from(Enrolment)
                               .where(Enrolment.user_id == user_id, Enrolment.completed_at.is_not(None)))
    current = sa.and_(Enrolment.user_id == user_id, usable())
    in_progress = session.scalar(sa.select(sa.func.count()).select_from(Enrolment)
                                 .where(current, Enrolment.completed_at.is_(None),
                                        Enrolment.last_accessed_at.is_not(None)))
    average = session.scalar(sa.select(sa.func.avg(Enrolment.progress_percent)).where(current))
    top = session.execute(
        sa.select(Category.name, sa.func.sum(Progress.learned_seconds).label("learnt"))
        .join(Course, Course.id == Progress.course_id).join(Category, Category.id == Course.category_id)
        .where(Progress.user_id == user_id).group_by(Category.id, Category.name)
        .order_by(sa.desc("learnt"), Category.name).limit(1)).first()
    today = utcnow().date()
    start = today - dt.timedelta(days=days - 1)
    per_day = dict(session.execute(sa.select(LearningDay.day, LearningDay.seconds)
                                   .where(LearningDay.user_id == user_id, LearningDay.day >= start)).all())
    trends = [{"date": (start + dt.timedelta(days=n)).isoformat(),
               "hours": round(per_day.get(start + dt.timedelta(days=n), 0) / 3600, 2)} for n in range(days)]
    return {"total_learning_hours": round(int(seconds) / 3600, 2), "completed_courses": int(completed or 0),
            "in_progress_courses": int(in_progress or 0),
            "avg_completion_rate": round(float(average or 0), 2),
            "most_learned_category": top[0] if top and top[1] else None,
            "learning_trends": trends}


# --- personal data --------------------------------------------------------------

def export_user(session: Session, user_id: int) -> dict | None:
    """The plugin's personal data of ``user_id`` (data portability)."""
    from learnsail_courses.models import Comment

    enrolments = session.scalars(sa.select(Enrolment).where(Enrolment.user_id == user_id)).all()
    notes = session.scalars(sa.select(Note).where(Note.user_id == user_id)).all()
    comments = session.scalars(sa.select(Comment).where(Comment.user_id == user_id)).all()
    progress = session.scalars(sa.select(Progress).where(Progress.user_id == user_id)).all()
    if not (enrolments or notes or comments or progress):
        return None
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return {
        "enrolments": [{"course_id": e.course_id, "kind": e.kind, "status": e.status,
                        "progress_percent": float(e.progress_percent), "created_at": iso(e.created_at),
                        "completed_at": iso(e.completed_at)} for e in enrolments],
        "progress": [{"lesson_id": p.lesson_id, "progress_percent": float(p.progress_percent),
                      "last_position": p.last_position, "is_completed": p.is_completed} for p in progress],
        "notes": [{"lesson_id": n.lesson_id, "content": n.content, "position": n.position,
                   "created_at": iso(n.created_at)} for n in notes],
        "comments": [{"course_id": c.course_id, "content": c.content, "rating": c.rating,
                      "created_at": iso(c.created_at)} for c in comments],
    }


def erase_user(session: Session, user_id: int) -> None:
    """Delete the personal data of ``user_id``: notes, progress, learning
    days, collections, likes, comments (ratings recomputed) and enrolments
    (student counts kept right)."""
    from learnsail_courses.comments import refresh_rating
    from learnsail_courses.models import Comment, CommentLike

    rated = set(session.scalars(sa.select(Comment.course_id).where(Comment.user_id == user_id,
                                                                  Comment.rating.is_not(None))))
    for enrolment in session.scalars(sa.select(Enrolment).where(Enrolment.user_id == user_id,
                                                                Enrolment.status == ACTIVE,
                                                                Enrolment.kind != TRIAL)):
        session.execute(sa.update(Course).where(Course.id == enrolment.course_id, Course.student_count > 0)
                        .values(student_count=Course.student_count - 1))
    liked = list(session.scalars(sa.select(CommentLike.comment_id).where(CommentLike.user_id == user_id)))
    if liked:
        session.execute(sa.update(Comment).where(Comment.id.in_(liked), Comment.like_count > 0)
                        .values(like_count=Comment.like_count - 1))
    for model in (Note, Progress, LearningDay, Collection, CommentLike, Enrolment):
        session.execute(sa.delete(model).where(model.user_id == user_id))
    own = list(session.scalars(sa.select(Comment.id).where(Comment.user_id == user_id)))
    if own:
        session.execute(sa.delete(Comment).where(sa.or_(Comment.root_id.in_(own), Comment.parent_id.in_(own))))
        session.execute(sa.delete(Comment).where(Comment.id.in_(own)))
    for course_id in rated:
        refresh_rating(session, course_id)


def course_stats(session: Session, course: Course) -> dict:
    """A teacher's figures for one course (001 §5): students, trials,
    completions, average progress, learning hours, rating, comments, and
    per lesson how many started and completed it (five queries)."""
    from learnsail_courses.models import Comment

    enrolments = session.execute(
        sa.select(Enrolment.kind, Enrolment.status, sa.func.count(),
                  sa.func.count(Enrolment.completed_at), sa.func.avg(Enrolment.progress_percent))
        .where(Enrolment.course_id == course.id).group_by(Enrolment.kind, Enrolment.status)).all()
    students = sum(n for kind, status, n, _, _ in enrolments if status == ACTIVE and kind != TRIAL)
    weighted = sum(float(avg or 0) * n for kind, status, n, _, avg in enrolments
                   if status == ACTIVE and kind != TRIAL)
    per_lesson = {lesson_id: (started, done) for lesson_id, started, done in session.execute(
        sa.select(Progress.lesson_id, sa.func.count(),
                  sa.func.sum(sa.case((Progress.is_completed.is_(True), 1), else_=0)))
        .where(Progress.course_id == course.id).group_by(Progress.lesson_id))}
    seconds = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Progress.learned_seconds), 0))
                             .where(Progress.course_id == course.id)) or 0
    comments = session.scalar(sa.select(sa.func.count()).select_from(Comment)
                              .where(Comment.course_id == course.id, Comment.is_hidden.is_(False))) or 0
    lessons = session.execute(sa.select(Lesson.id, Lesson.title).join(Chapter, Chapter.id == Lesson.chapter_id)
                              .where(Lesson.course_id == course.id)
                              .order_by(Chapter.sort_order, Chapter.id, Lesson.sort_order, Lesson.id)).all()
    return {
        "course_id": course.id, "status": course.status, "student_count": students,
        "trial_count": sum(n for kind, status, n, _, _ in enrolments if status == ACTIVE and kind == TRIAL),
        "ended_count": sum(n for _, status, n, _, _ in enrolments if status == ENDED),
        "completed_count": sum(done for _, _, _, done, _ in enrolments),
        "avg_progress_percent": round(weighted / students, 2) if students else 0.0,
        "total_learning_hours": round(int(seconds) / 3600, 2),
        "rating": float(course.rating or 0), "rating_count": course.rating_count, "comment_count": comments,
        "lessons": [{"id": lesson_id, "title": title, "started": per_lesson.get(lesson_id, (0, 0))[0],
                     "completed": int(per_lesson.get(lesson_id, (0, 0))[1] or 0)} for lesson_id, title in lessons],
    }
