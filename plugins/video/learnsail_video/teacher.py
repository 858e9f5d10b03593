"""Teacher tools: one's videos, editing, attaching to lessons, deleting.

- Listing: a teacher sees their own videos (holders of
  ``video:video:manage_any``, admins by default, see everyone's).
- Attaching: courses calls ``learnsail_lesson_video`` when a lesson's
  ``video_id`` is set through ``PUT /api/v1/lessons/{id}`` (or a lesson is
  created with one); :func:`check_attach` accepts a video that exists, is
  not deleted, belongs to the teacher (or the caller manages every course)
  and has completed processing, and answers its duration.  ``video_id``
  null detaches.  Replacing a lesson's video is setting another id: the
  lesson's progress in courses stays as it was.
- Deleting: refused (409, naming the lessons) while a lesson shows the
  video, and while it is uploading (cancel the upload instead).  Otherwise
  the video is marked deleted at once (404 from then on, any transcode of
  it stops) and its objects -- the original and every output -- are
  removed from storage by the task ``video.purge_media`` after the commit.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from learnsail.db import utcnow
from learnsail.errors import Conflict, NotFound, ValidationFailed
from learnsail.tasks import enqueue
from learnsail_video import processing
from learnsail_video.media_models import ACTIVE_JOB_STATUSES, SUPERSEDED, TranscodeJob
from learnsail_video.models import COMPLETED, UPLOADING, VIDEO_STATUSES, Video


def listing(user_id: int | None, *, status: str | None = None, course_id: int | None = None,
            query: str | None = None, owner_id: int | None = None) -> sa.Select:
    """Videos not deleted, newest first: ``user_id``'s own, or everyone's
    when ``user_id`` is None (then ``owner_id`` filters)."""
    stmt = sa.select(Video).where(Video.deleted_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(Video.owner_id == user_id)
    elif owner_id is not None:
        stmt = stmt.where(Video.owner_id == owner_id)
    if status:
        if status not in VIDEO_STATUSES:
            raise ValidationFailed({"status": [f"One of {', '.join(VIDEO_STATUSES)}."]})
        stmt = stmt.where(Video.status == status)
    if course_id is not None:
        stmt = stmt.where(Video.course_id == course_id)
    if query:
        escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(sa.func.lower(Video.title).like(f"%{escaped}%", escape="\\"))
    return stmt.order_by(Video.id.desc())


def get_video(session: Any, video_id: int) -> Video:
    video = session.get(Video, video_id)
    if video is None or video.deleted_at is not None:
        raise NotFound(f"No video with id {video_id}.")
    return video


def attached_lessons(session: Any, video_id: int) -> list[dict]:
    from learnsail_courses.models import Course, Lesson

    rows = session.execute(sa.select(Lesson.id, Lesson.title, Lesson.course_id, Course.title)
                           .join(Course, Course.id == Lesson.course_id)
                           .where(Lesson.video_id == video_id).order_by(Lesson.id)).all()
    return [{"lesson_id": lesson_id, "title": title, "course_id": course_id, "course_title": course_title}
            for lesson_id, title, course_id, course_title in rows]


def update(session: Any, video: Video, changes: dict) -> Video:
    for field in ("title", "description"):
        if field in changes:
            setattr(video, field, changes[field])
    session.flush()
    processing._forget(session, video.id)
    return video


def delete(session: Any, video: Video) -> None:
    """Mark ``video`` deleted and have its objects removed (see the module's docstring)."""
    lessons = attached_lessons(session, video.id)
    if lessons:
        ids = [row["lesson_id"] for row in lessons]
        raise Conflict(f"Lessons show this video ({', '.join(map(str, ids))}): detach it from them first "
                       f"(PUT /api/v1/lessons/{{id}} with video_id null) or give them another video.",
                       {"lesson_ids": ids})
    if video.status == UPLOADING:
        raise Conflict("The video is still uploading: cancel its upload instead.", {"status": video.status})
    now = utcnow()
    prefixes = set(session.scalars(sa.select(TranscodeJob.output_prefix).where(
        TranscodeJob.video_id == video.id, TranscodeJob.output_prefix.is_not(None))))
    if video.hls_prefix:
        prefixes.add(video.hls_prefix)
    session.execute(sa.update(TranscodeJob)
                    .where(TranscodeJob.video_id == video.id, TranscodeJob.status.in_(ACTIVE_JOB_STATUSES))
                    .values(status=SUPERSEDED, run_id=None, finished_at=now,
                            error_message="The video was deleted.")
                    .execution_options(synchronize_session=False))
    video.deleted_at = now
    session.flush()
    processing._forget(session, video.id)
    enqueue(session, processing.PURGE_TASK, sorted(prefixes), [video.source_key] if video.source_key else [])


# --- attaching (the learnsail_lesson_video hook) -----------------------------------------------


def _manages_every_course(session: Any, user_id: int) -> bool:
    """May ``user_id`` edit every course (courses:course:edit_any)?  The
    caller's active identity when this runs in their request, else any of
    their roles."""
    from pyramid.threadlocal import get_current_request

    from learnsail_courses.permissions import COURSE_EDIT_ANY

    request = get_current_request()
    if request is not None and request.identity is not None and request.identity.id == user_id:
        from learnsail_video.playback import may

        return may(request, COURSE_EDIT_ANY)
    from learnsail.aftercommit import registry_of
    from learnsail.identity import rbac

    registry = registry_of(session)
    try:
        user = rbac.get_user(session, user_id)
    except Exception:
        return False
    roles = [role.name for role in rbac.identities(session, user)]
    return any(name == rbac.ADMIN_ROLE or COURSE_EDIT_ANY in rbac.permissions_for(registry, session, name)
               for name in roles)


def check_attach(session: Any, lesson: Any, course: Any, video_id: int | None, user_id: int | None) -> dict:
    """What ``learnsail_lesson_video`` answers: ``{"duration": seconds}``
    for a video that may be attached; 400 (unknown, deleted or someone
    else's) or 409 (not processed yet) otherwise; ``{}`` for a detach."""
    if video_id is None:
        return {}
    video = session.get(Video, video_id)
    if video is None or video.deleted_at is not None or (
            video.owner_id != user_id and not (user_id is not None and _manages_every_course(session, user_id))):
        raise ValidationFailed({"video_id": [f"You have no video with id {video_id}."]})
    if video.status != COMPLETED:
        raise Conflict(f"Video {video_id} is {video.status}: attach it once processing has completed.",
                       {"video_id": video_id, "status": video.status})
    return {"duration": int(video.duration or 0)}
