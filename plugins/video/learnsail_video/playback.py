"""Playback: who may watch a video, and the signed, expiring URLs they get.

Access follows the lesson the video is attached to (courses'
``lesson_access``, spec 001 §3): a free lesson or chapter, a usable
enrolment (within its validity), a member of a member-only course
(``learnsail_member_until``) -> **full**; a trial lesson for anyone else
signed in -> **trial**; otherwise nothing (403).  The video's owner, its
course's teacher and course managers **preview** it (full, not counted in
the statistics).

What is signed:

- a **playback token** (a JWT of type ``video_play``, ``learnsail.video.url_ttl``
  seconds) in the path of the playlists the app serves:
  ``/api/v1/videos/{id}/hls/{token}/master.m3u8``, ``.../{quality}/index.m3u8``
  and ``.../thumbnails.vtt``.  It names the viewer, the video, the run
  whose outputs it plays and the mode (full or trial with its limit);
  anything altered or expired is 403.
- every **segment** (and the MP4, poster and sprites) through the
  storage's own signed URLs (local: the app's ``/api/v1/storage/<token>``;
  MinIO/S3: presigned), valid for the TTL plus the video's duration, so a
  started video plays to its end.

The trial limit is enforced by what is signed: a trial viewer's media
playlists list only the segments that end within
``learnsail.video.trial_seconds`` and then ``#EXT-X-ENDLIST``, the
thumbnails track stops there too, and there is no MP4 fallback.  The
client cannot ask for more: it holds no signature for any later segment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import sqlalchemy as sa

from learnsail.errors import APIError, Conflict, NotFound, PermissionDenied, ValidationFailed
from learnsail_video import settings as S
from learnsail_video.media_models import Rendition
from learnsail_video.models import COMPLETED, Video
from learnsail_video.permissions import MANAGE_ANY

TOKEN_KIND = "video_play"
FULL, TRIAL, PREVIEW = "full", "trial", "preview"
QUALITY = re.compile(r"^[a-z0-9]{1,10}$")

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
VTT_TYPE = "text/vtt"


# --- the video info (cached, 001 video:info:{id}) ------------------------------------------


def info_key(video_id: int) -> str:
    return f"video:info:{int(video_id)}"


def forget_video(target: Any, video_id: int) -> None:
    """Drop the cached info of ``video_id`` once ``target``'s transaction commits."""
    from learnsail.aftercommit import registry_of

    registry_of(target)["learnsail.cache"].invalidate(target, info_key(video_id))


def _load_info(session: Any, video_id: int) -> dict | None:
    video = session.get(Video, video_id)
    if video is None:
        return None
    renditions = []
    if video.hls_prefix:
        renditions = [{"quality": r.quality, "width": r.width, "height": r.height, "bandwidth": r.bandwidth,
                       "codecs": r.codecs}
                      for r in session.scalars(sa.select(Rendition).where(
                          Rendition.video_id == video.id, Rendition.playlist_key.startswith(video.hls_prefix))
                          .order_by(Rendition.width * Rendition.height))]
    return {"id": video.id, "owner_id": video.owner_id, "course_id": video.course_id, "title": video.title,
            "status": video.status, "deleted": video.deleted_at is not None,
            "duration": (video.duration_ms / 1000.0) if video.duration_ms else float(video.duration or 0),
            "width": video.width, "height": video.height, "hls_prefix": video.hls_prefix,
            "master_key": video.master_key, "mp4_key": video.mp4_key, "thumbnail_key": video.thumbnail_key,
            "sprite_key": video.sprite_key, "renditions": renditions}


def video_info(request: Any, video_id: int) -> dict:
    """What playback needs to know of a video (cached for
    ``learnsail.video.info_cache_ttl``); NotFound for unknown or deleted ones."""
    ttl = int(request.registry.settings.get(S.INFO_CACHE_TTL, 300) or 0)
    cache = request.registry["learnsail.cache"]
    info = cache.get(info_key(video_id)) if ttl else None
    if info is None:
        info = _load_info(request.db, video_id)
        if info is not None and ttl:
            cache.set(info_key(video_id), info, ttl=ttl)
    if info is None or info["deleted"]:
        raise NotFound(f"No video with id {video_id}.")
    return info


def playable(info: dict) -> None:
    if info["status"] != COMPLETED or not info["master_key"]:
        raise Conflict(f"The video is {info['status']}: it can be played once processing has completed.",
                       {"status": info["status"]})


# --- who may watch ------------------------------------------------------------------------------


@dataclasses.dataclass
class Access:
    mode: str                 #: full, trial or preview
    lesson: Any = None        #: the lesson it is watched in (None: a preview of an unattached video)
    course: Any = None

    @property
    def counted(self) -> bool:
        """Do this viewer's reports count in statistics and courses progress?"""
        return self.mode != PREVIEW


def may(request: Any, permission: str) -> bool:
    """Does the caller's active role hold ``permission``?"""
    return request.identity is not None and bool(request.has_permission(permission, _RoleOnly()))


class _RoleOnly:
    """A context without an ACL: the caller's role alone decides."""


def manages(request: Any, info: dict, course: Any = None) -> bool:
    """The video's owner, holders of ``video:video:manage_any``, and those
    who may edit the course it belongs to or is watched in."""
    from learnsail_courses import api as courses

    if request.identity is None:
        return False
    if info["owner_id"] == request.identity.id or may(request, MANAGE_ANY):
        return True
    if course is not None and courses.may_edit(request, course):
        return True
    if info.get("course_id") and (course is None or course.id != info["course_id"]):
        from learnsail_courses.models import Course

        own = request.db.get(Course, info["course_id"])
        return own is not None and courses.may_edit(request, own)
    return False


def lessons_of(session: Any, video_id: int) -> list[tuple[Any, Any]]:
    """``(lesson, course)`` of every lesson showing ``video_id`` (live courses)."""
    from learnsail_courses.models import Course, Lesson

    return list(session.execute(sa.select(Lesson, Course).join(Course, Course.id == Lesson.course_id)
                                .where(Lesson.video_id == video_id, Course.deleted_at.is_(None))
                                .order_by(Lesson.id)).all())


def access_in_lesson(request: Any, info: dict, lesson: Any, course: Any) -> Access:
    """How the caller may watch ``info``'s video in ``lesson``; 403 (401
    anonymous) when not at all."""
    from learnsail_courses import api as courses

    if manages(request, info, course):
        return Access(PREVIEW, lesson, course)
    granted = courses.lesson_access(request, course, lesson)
    if granted == courses.FULL:
        return Access(FULL, lesson, course)
    if granted == courses.TRIAL:
        return Access(TRIAL, lesson, course)
    raise PermissionDenied("Enrol in the course to watch this video.", {"lesson_id": lesson.id,
                                                                        "course_id": course.id})


def access_to_video(request: Any, info: dict, lesson_id: int | None = None) -> Access:
    """The best way the caller may watch the video: through ``lesson_id``
    when given (it must show this video), else through any lesson showing
    it (full before trial); a manager previews it anyway."""
    from learnsail_courses import api as courses

    rows = lessons_of(request.db, info["id"])
    if lesson_id is not None:
        rows = [(lesson, course) for lesson, course in rows if lesson.id == lesson_id]
        if not rows:
            raise ValidationFailed({"lesson_id": ["This lesson does not show this video."]})
    visible = [(lesson, course) for lesson, course in rows if courses.may_see(request, course)]
    best: Access | None = None
    for lesson, course in visible:
        try:
            found = access_in_lesson(request, info, lesson, course)
        except PermissionDenied:
            continue
        if found.mode in (PREVIEW, FULL):
            return found
        best = best or found
    if best is not None:
        return best
    if manages(request, info):
        return Access(PREVIEW, rows[0][0] if rows else None, rows[0][1] if rows else None)
    if not visible:  # no lesson the caller can see shows it: not for the caller's eyes
        raise NotFound(f"No video with id {info['id']}.")
    raise PermissionDenied("Enrol in the course to watch this video.")


def trial_limit(request: Any, access: Access, info: dict) -> float | None:
    if access.mode != TRIAL:
        return None
    return min(float(request.registry.settings.get(S.TRIAL_SECONDS, 300)), info["duration"] or 0.0)


# --- tokens --------------------------------------------------------------------------------


class InvalidLink(PermissionDenied):
    default_message = "This playback link is not valid."


def issue_token(request: Any, info: dict, access: Access, ttl: int) -> str:
    from learnsail.identity import tokens

    claims = {"v": info["id"], "p": info["hls_prefix"], "m": TRIAL if access.mode == TRIAL else FULL}
    limit = trial_limit(request, access, info)
    if limit is not None:
        claims["l"] = limit
    return tokens.issue(request.registry.settings, request.identity.id, TOKEN_KIND, ttl, **claims)


def read_token(request: Any, video_id: int, token: str) -> dict:
    """The claims of a playback token for ``video_id``; 403 when it was
    altered, expired or made for another video."""
    from learnsail.identity import tokens

    try:
        claims = tokens.decode(request.registry.settings, token, TOKEN_KIND)
    except tokens.TokenError as exc:
        expired = "expired" in str(exc).lower()
        raise InvalidLink("This playback link has expired; ask for a new one." if expired
                          else "This playback link is not valid.", {"reason": "expired" if expired else "invalid"})
    if claims.get("v") != video_id or not isinstance(claims.get("p"), str):
        raise InvalidLink("This playback link is for another video.", {"reason": "invalid"})
    return claims


# --- URLs ---------------------------------------------------------------------------------------


def _storage(request: Any) -> Any:
    return request.registry["learnsail.storage"]


def media_ttl(request: Any, info: dict) -> int:
    """Segments and files: the URL TTL plus the duration (a started video plays to its end)."""
    return int(request.registry.settings.get(S.URL_TTL, 7200)) + int(info["duration"] or 0) + 60


def sign(request: Any, key: str, ttl: int, content_type: str, filename: str | None = None) -> str:
    return _storage(request).signed_url(key, ttl, filename=filename, disposition="inline",
                                        content_type=content_type, base_url=request.application_url)


def playlist_url(request: Any, video_id: int, token: str, quality: str | None = None) -> str:
    if quality is None:
        return request.route_url("video.hls_master", id=video_id, token=token)
    return request.route_url("video.hls_media", id=video_id, token=token, quality=quality)


def next_in_course(session: Any, lesson: Any) -> tuple[int | None, int | None]:
    """``(lesson id, video id)`` of the next lesson of the course, in course
    order, that shows a playable video."""
    from learnsail_courses.models import Chapter, Lesson

    rows = session.execute(
        sa.select(Lesson.id, Lesson.video_id, Video.status, Video.deleted_at)
        .join(Chapter, Chapter.id == Lesson.chapter_id)
        .outerjoin(Video, Video.id == Lesson.video_id)
        .where(Lesson.course_id == lesson.course_id)
        .order_by(Chapter.sort_order, Chapter.id, Lesson.sort_order, Lesson.id)).all()
    seen = False
    for lesson_id, video_id, status, deleted_at in rows:
        if seen and video_id is not None and status == COMPLETED and deleted_at is None:
            return lesson_id, video_id
        if lesson_id == lesson.id:
            seen = True
    return None, None


def play(request: Any, info: dict, access: Access, quality: str | None = None) -> dict:
    """The answer of ``GET /videos/{id}/play`` and ``GET /lessons/{id}/video``."""
    import time
    import uuid

    from learnsail_courses import api as courses

    playable(info)
    names = [r["quality"] for r in info["renditions"]]
    if quality is not None and quality not in names:
        raise ValidationFailed({"quality": [f"Not available; this video comes in {', '.join(names)}."]})
    ttl = int(request.registry.settings.get(S.URL_TTL, 7200))
    token = issue_token(request, info, access, ttl)
    files_ttl = media_ttl(request, info)
    limit = trial_limit(request, access, info)
    master = playlist_url(request, info["id"], token)
    qualities = [{"quality": r["quality"], "width": r["width"], "height": r["height"], "bandwidth": r["bandwidth"],
                  "url": playlist_url(request, info["id"], token, r["quality"])} for r in info["renditions"]]
    chosen = next((q for q in qualities if q["quality"] == quality), None)
    top = chosen or (qualities[-1] if qualities else None)
    last_position = None
    next_lesson_id = next_video_id = None
    if access.lesson is not None:
        progress = courses.lesson_progress(request, access.lesson)
        last_position = progress["last_position"] if progress else None
        next_lesson_id, next_video_id = next_in_course(request.db, access.lesson)
    if limit is not None and last_position is not None:
        last_position = min(last_position, int(limit))
    title = re.sub(r"[^\w .-]+", "_", info["title"] or "video").strip() or "video"
    return {
        "video_id": info["id"],
        "lesson_id": access.lesson.id if access.lesson is not None else None,
        "course_id": access.course.id if access.course is not None else None,
        "title": info["title"],
        "video_url": chosen["url"] if chosen else master,
        "hls_url": master,
        "mp4_url": None if limit is not None or not info["mp4_key"] else
        sign(request, info["mp4_key"], files_ttl, "video/mp4", f"{title}.mp4"),
        "format": "hls",
        "quality": quality or "auto",
        "available_qualities": names,
        "qualities": qualities,
        "resolution": f"{top['width']}x{top['height']}" if top else None,
        "duration": int(round(info["duration"] or 0)),
        "thumbnail_url": sign(request, info["thumbnail_key"], files_ttl, "image/jpeg")
        if info["thumbnail_key"] else None,
        "thumbnails_url": request.route_url("video.hls_thumbnails", id=info["id"], token=token)
        if info["sprite_key"] else None,
        "access": access.mode,
        "trial_seconds": int(limit) if limit is not None else None,
        "expires_at": dt.datetime.fromtimestamp(int(time.time()) + ttl, dt.timezone.utc),
        "last_position": last_position,
        "next_lesson_id": next_lesson_id,
        "next_video_id": next_video_id,
        "session_id": uuid.uuid4().hex,
    }


# --- the playlists the app serves ----------------------------------------------------------------


def _read_text(request: Any, key: str) -> str:
    """A playlist or track from storage (cached: a run's outputs never change)."""
    from learnsail.storage.backends import InvalidKey, ObjectNotFound

    cache = request.registry["learnsail.cache"]
    cache_key = f"video:file:{key}"
    text = cache.get(cache_key)
    if text is None:
        try:
            with _storage(request).open(key) as stream:
                text = stream.read(4 * 1024 * 1024).decode("utf-8")
        except (ObjectNotFound, InvalidKey):
            raise NotFound("No such playlist.") from None
        cache.set(cache_key, text, ttl=3600)
    return text


def _checked(request: Any, video_id: int, token: str) -> tuple[dict, dict]:
    claims = read_token(request, video_id, token)
    info = video_info(request, video_id)
    return claims, info


def master_playlist(request: Any, video_id: int, token: str) -> str:
    """The master playlist; its variant URIs stay relative (they resolve
    under the same token path)."""
    claims, _ = _checked(request, video_id, token)
    text = _read_text(request, claims["p"] + "hls/master.m3u8")
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            quality = stripped.split("/", 1)[0]
            if not QUALITY.match(quality):
                continue
            line = f"{quality}/index.m3u8"
        out.append(line)
    return "\n".join(out) + "\n"


def media_playlist(request: Any, video_id: int, token: str, quality: str) -> str:
    """A rung's media playlist with every segment URI signed; for a trial,
    only the segments ending within the limit, then ``#EXT-X-ENDLIST``."""
    if not QUALITY.match(quality or ""):
        raise NotFound("No such playlist.")
    claims, info = _checked(request, video_id, token)
    base = f"{claims['p']}hls/{quality}/"
    text = _read_text(request, base + "index.m3u8")
    limit = claims.get("l") if claims.get("m") == TRIAL else None
    ttl = media_ttl(request, info)
    out, total, pending, segments = [], 0.0, None, 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "#EXT-X-ENDLIST":
            continue
        if stripped.startswith("#EXTINF:"):
            pending = float(stripped[len("#EXTINF:"):].split(",", 1)[0])
            if limit is not None and segments and total + pending > float(limit) + 0.05:
                break
            out.append(line)
            continue
        if stripped and not stripped.startswith("#"):
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", stripped):
                raise APIError("The stored playlist is malformed.")
            out.append(sign(request, base + stripped, ttl, "video/mp2t"))
            total += pending or 0.0
            segments += 1
            pending = None
            continue
        out.append(line)
    if out and out[-1].startswith("#EXTINF:"):
        out.pop()
    out.append("#EXT-X-ENDLIST")
    return "\n".join(out) + "\n"


def thumbnails_track(request: Any, video_id: int, token: str) -> str:
    """The WebVTT thumbnails track with signed sprite URLs (a trial's stops at its limit)."""
    claims, info = _checked(request, video_id, token)
    if not info["sprite_key"]:
        raise NotFound("This video has no thumbnails track.")
    base = f"{claims['p']}thumbs/"
    text = _read_text(request, base + "thumbnails.vtt")
    limit = claims.get("l") if claims.get("m") == TRIAL else None
    ttl = media_ttl(request, info)
    signed: dict[str, str] = {}
    out, skip = [], False
    for line in text.splitlines():
        if "-->" in line:
            start = _vtt_seconds(line.split("-->", 1)[0])
            skip = limit is not None and start >= float(limit)
        if skip:
            continue
        name, hash_, fragment = line.partition("#xywh=")
        if hash_ and re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            if name not in signed:
                signed[name] = sign(request, base + name, ttl, "image/jpeg")
            line = f"{signed[name]}#xywh={fragment}"
        out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


def _vtt_seconds(text: str) -> float:
    parts = text.strip().split(":")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds
