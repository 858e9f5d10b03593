"""Playback (000 ``GET /api/v1/lessons/{id}/video``; 001 ``GET
/api/v1/videos/{id}/play``) and the signed playlists the app serves."""

from __future__ import annotations

from typing import Any

from pyramid.response import Response

from learnsail.api import PUBLIC, Service
from learnsail.errors import NotFound
from learnsail_video import playback
from learnsail_video.media_schemas import (LessonPath, LessonVideoSchema, MediaPlaylistPath, PlayQuery, PlaylistPath,
                                           PlaySchema, VideoPath)
from learnsail_video.permissions import PLAY

play = Service(name="video.play", path="/api/v1/videos/{id}/play",
               description="Signed playback URLs of a video (001).")
lesson_video = Service(name="video.lesson_video", path="/api/v1/lessons/{id}/video",
                       description="Signed playback URLs of a lesson's video (000).")
hls_master = Service(name="video.hls_master", path="/api/v1/videos/{id}/hls/{token}/master.m3u8",
                     description="The HLS master playlist behind a playback token.")
hls_media = Service(name="video.hls_media", path="/api/v1/videos/{id}/hls/{token}/{quality}/index.m3u8",
                    description="One rung's HLS media playlist, its segments signed.")
hls_thumbnails = Service(name="video.hls_thumbnails", path="/api/v1/videos/{id}/hls/{token}/thumbnails.vtt",
                         description="The WebVTT thumbnails track (sprites) behind a playback token.")

PLAYLIST_DOC = {"application/vnd.apple.mpegurl": None}


@play.get(permission=PLAY, schema={"path": VideoPath, "querystring": PlayQuery}, errors=(409,),
          responses={200: (PlaySchema, "Signed, expiring URLs and where the viewer stands.")})
def play_video(request: Any) -> dict:
    """001's play answer: video_url (the signed HLS master, or the rung of
    ?quality=), the MP4 fallback, available_qualities, duration,
    last_position, next_video_id.

    Access is that of the lessons showing the video (free, enrolled within
    its validity, member-only through membership, trial limited to
    learnsail.video.trial_seconds); its owner and course managers preview
    it.  403 without access, 404 when no lesson the caller can see shows it,
    409 while it is not processed."""
    info = playback.video_info(request, request.validated["path"]["id"])
    query = request.validated["querystring"]
    access = playback.access_to_video(request, info, query.get("lesson_id"))
    return playback.play(request, info, access, query.get("quality"))


@lesson_video.get(permission=PLAY, schema={"path": LessonPath, "querystring": PlayQuery}, errors=(409,),
                  responses={200: (LessonVideoSchema, "000's fields (video_url, thumbnail_url, duration, format, "
                                                      "resolution) and those of the play answer.")})
def get_lesson_video(request: Any) -> dict:
    """The signed playback URLs of a lesson's video (000): 403 without
    access to the lesson, 404 when it has none or the caller cannot see the
    course."""
    from learnsail_courses import api as courses

    lesson, course = courses.get_lesson(request.db, request.validated["path"]["id"])
    if not courses.may_see(request, course):
        raise NotFound(f"No lesson with id {lesson.id}.")
    if lesson.video_id is None:
        raise NotFound("This lesson has no video.")
    info = playback.video_info(request, lesson.video_id)
    access = playback.access_in_lesson(request, info, lesson, course)
    return playback.play(request, info, access, request.validated["querystring"].get("quality"))


def _playlist(body: str, content_type: str) -> Response:
    response = Response(body=body.encode("utf-8"), content_type=content_type, charset="utf-8")
    # the body holds signed links for one viewer: never kept by a shared cache
    response.cache_control = "private, no-store"
    return response


@hls_master.get(permission=PUBLIC, schema={"path": PlaylistPath}, errors=(403,),
                responses={200: (None, "The master playlist (application/vnd.apple.mpegurl).")})
def get_master(request: Any) -> Response:
    """The HLS master playlist (BANDWIDTH, RESOLUTION, CODECS per rung);
    the token in the path is the authorisation: altered or expired is 403."""
    path = request.validated["path"]
    return _playlist(playback.master_playlist(request, path["id"], path["token"]), playback.PLAYLIST_TYPE)


@hls_media.get(permission=PUBLIC, schema={"path": MediaPlaylistPath}, errors=(403,),
               responses={200: (None, "The media playlist (application/vnd.apple.mpegurl).")})
def get_media(request: Any) -> Response:
    """A rung's media playlist, every segment a signed URL; for a trial it
    stops at the trial limit (#EXT-X-ENDLIST)."""
    path = request.validated["path"]
    return _playlist(playback.media_playlist(request, path["id"], path["token"], path["quality"]),
                     playback.PLAYLIST_TYPE)


@hls_thumbnails.get(permission=PUBLIC, schema={"path": PlaylistPath}, errors=(403,),
                    responses={200: (None, "A WebVTT track (text/vtt): sprite URL#xywh=x,y,w,h per cue.")})
def get_thumbnails(request: Any) -> Response:
    """The thumbnails track for scrubbing previews, its sprites signed."""
    path = request.validated["path"]
    return _playlist(playback.thumbnails_track(request, path["id"], path["token"]), playback.VTT_TYPE)


SERVICES = (play, lesson_video, hls_master, hls_media, hls_thumbnails)
