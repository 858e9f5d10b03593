"""Teacher tools and processing (000 §六 八 ``GET /api/v1/videos/{id}/status``;
the videos list, detail, edit, delete and re-transcode)."""

from __future__ import annotations

from typing import Any

from learnsail.api import Service, no_content, page_of
from learnsail.db.pagination import paginate
from learnsail.errors import NotFound
from learnsail_video import playback, processing, teacher
from learnsail_video.media_schemas import (VideoDetailSchema, VideoListQuery, VideoPath, VideoSchema,
                                           VideoStatusSchema, VideoUpdateSchema)
from learnsail_video.models import COMPLETED
from learnsail_video.permissions import EDIT, MANAGE_ANY, VIEW

videos = Service(name="video.videos", path="/api/v1/videos",
                 description="The caller's videos (everyone's for video managers).")
video = Service(name="video.video", path="/api/v1/videos/{id}", description="One video: details, edit, delete.")
status = Service(name="video.status", path="/api/v1/videos/{id}/status",
                 description="A video's processing status (000 §六 八).")
retranscode = Service(name="video.retranscode", path="/api/v1/videos/{id}/retranscode",
                      description="Process a video again from its original.")


def _thumbnail(request: Any, item: Any) -> str | None:
    if not item.thumbnail_key or item.status != COMPLETED:
        return None
    info = {"duration": (item.duration_ms or 0) / 1000.0}
    return playback.sign(request, item.thumbnail_key, playback.media_ttl(request, info), "image/jpeg")


def video_out(request: Any, item: Any) -> dict:
    return {"id": item.id, "title": item.title, "description": item.description, "owner_id": item.owner_id,
            "course_id": item.course_id, "chapter_id": item.chapter_id, "file_name": item.original_filename,
            "size": item.size, "format": item.format, "status": item.status, "progress": item.progress,
            "error_message": item.error_message, "duration": item.duration,
            "resolution": f"{item.width}x{item.height}" if item.width and item.height else None,
            "qualities": list(item.qualities or []), "thumbnail_url": _thumbnail(request, item),
            "created_at": item.created_at, "updated_at": item.updated_at, "processed_at": item.processed_at}


def _managed(request: Any) -> Any:
    """The video named in the path, if the caller manages it (404 otherwise)."""
    found = teacher.get_video(request.db, request.validated["path"]["id"])
    info = {"owner_id": found.owner_id, "course_id": found.course_id, "id": found.id}
    if not playback.manages(request, info):
        raise NotFound(f"No video with id {found.id}.")
    return found


def _preview_url(request: Any, item: Any) -> str | None:
    if item.status != COMPLETED or not item.master_key:
        return None
    info = playback.video_info(request, item.id)
    ttl = int(request.registry.settings.get("learnsail.video.url_ttl", 7200))
    token = playback.issue_token(request, info, playback.Access(playback.PREVIEW), ttl)
    return playback.playlist_url(request, item.id, token)


@videos.get(permission=VIEW, schema={"querystring": VideoListQuery},
            responses={200: (page_of(VideoSchema), "A page of videos, newest first.")})
def list_videos(request: Any) -> dict:
    """The caller's videos with their status, newest first (video managers: everyone's, or owner_id's).

    Filters: status (uploading, processing, completed, failed), course_id,
    q (words of the title).  Deleted videos are not listed."""
    query = request.validated["querystring"]
    everyone = playback.may(request, MANAGE_ANY)
    stmt = teacher.listing(None if everyone else request.identity.id, status=query.get("status"),
                           course_id=query.get("course_id"), query=query.get("q"),
                           owner_id=query.get("owner_id") if everyone else None)
    return paginate(request, request.db, stmt, lambda item: video_out(request, item))


@video.get(permission=VIEW, schema={"path": VideoPath},
           responses={200: (VideoDetailSchema, "The video, the lessons showing it, its transcode jobs.")})
def get_video(request: Any) -> dict:
    """A video's details: what ffprobe found, the lessons showing it and its
    latest transcode job per quality (its owner, course managers)."""
    found = _managed(request)
    out = video_out(request, found)
    out.update(width=found.width, height=found.height, video_codec=found.video_codec,
               audio_codec=found.audio_codec, bitrate=found.bitrate,
               frame_rate=float(found.frame_rate) if found.frame_rate is not None else None,
               rotation=found.rotation, lessons=teacher.attached_lessons(request.db, found.id),
               transcode_jobs=processing.jobs_of(request.db, found))
    return out


@video.patch(permission=EDIT, schema={"path": VideoPath, "body": VideoUpdateSchema},
             responses={200: (VideoSchema, "The updated video.")})
@video.put(permission=EDIT, schema={"path": VideoPath, "body": VideoUpdateSchema},
           responses={200: (VideoSchema, "The updated video.")})
def update_video(request: Any) -> dict:
    """Change a video's title or description (its owner, course managers)."""
    found = _managed(request)
    return video_out(request, teacher.update(request.db, found, request.validated["body"]))


@video.delete(permission=EDIT, schema={"path": VideoPath}, errors=(409,), responses={204: None})
def delete_video(request: Any) -> Any:
    """Delete a video: 409 while a lesson shows it (detach it first) or it is
    uploading; otherwise it is gone at once and its files are removed from
    storage in the background."""
    teacher.delete(request.db, _managed(request))
    return no_content(request)


@status.get(permission=VIEW, schema={"path": VideoPath},
            responses={200: (VideoStatusSchema, "Where processing stands.")})
def video_status(request: Any) -> dict:
    """000's processing status: status, progress 0-100, file_url and
    thumbnail_url once completed, error_message when failed; plus 001's
    transcode_jobs (one per quality)."""
    found = _managed(request)
    return {"id": found.id, "status": found.status, "progress": found.progress,
            "file_url": _preview_url(request, found), "thumbnail_url": _thumbnail(request, found),
            "error_message": found.error_message, "transcode_jobs": processing.jobs_of(request.db, found)}


@retranscode.post(permission=EDIT, schema={"path": VideoPath}, errors=(409,),
                  responses={202: (VideoStatusSchema, "Queued: the status as it is now.")})
def retranscode_video(request: Any) -> dict:
    """Process the video again from its original (its owner, course
    managers); 409 while it is uploading or processing.  The current
    renditions play until the new ones are ready."""
    found = _managed(request)
    processing.retranscode(request.db, found, requested_by=request.identity.id)
    request.response.status = 202
    return {"id": found.id, "status": found.status, "progress": found.progress, "file_url": None,
            "thumbnail_url": None, "error_message": None, "transcode_jobs": processing.jobs_of(request.db, found)}


SERVICES = (videos, video, status, retranscode)
