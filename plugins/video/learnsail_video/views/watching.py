"""Watching (001 ``POST /api/v1/videos/{id}/progress``, ``GET
/api/v1/videos/{id}/statistics``)."""

from __future__ import annotations

from typing import Any

from learnsail.api import Service
from learnsail.errors import NotFound
from learnsail_video import playback, watching
from learnsail_video import settings as S
from learnsail_video.media_schemas import (ProgressAnswerSchema, ProgressReportSchema, StatisticsQuery,
                                           StatisticsSchema, VideoPath)
from learnsail_video.permissions import PLAY, STATS

progress = Service(name="video.progress", path="/api/v1/videos/{id}/progress",
                   description="Report where the player is (001).")
statistics = Service(name="video.statistics", path="/api/v1/videos/{id}/statistics",
                     description="Play statistics of a video (001).")


@progress.post(permission=PLAY, schema={"path": VideoPath, "body": ProgressReportSchema}, errors=(409,),
               responses={200: (ProgressAnswerSchema, "Saved; the really-watched share and completion.")})
def report_progress(request: Any) -> dict:
    """A player's heartbeat: position, duration, watch_duration (seconds
    played in this session), device_type, platform, quality, session_id.

    Only what was really watched counts (seeking does not); the
    really-watched share becomes the lesson's progress in courses, and the
    video is completed at learnsail.video.completion_percent (90).  Same
    access as playing it (403 without; a trial counts up to its limit)."""
    body = request.validated["body"]
    info = playback.video_info(request, request.validated["path"]["id"])
    playback.playable(info)
    access = playback.access_to_video(request, info, body.get("lesson_id"))
    return watching.report(request, info, access, body)


@statistics.get(permission=STATS, schema={"path": VideoPath, "querystring": StatisticsQuery},
                responses={200: (StatisticsSchema, "Plays, viewers, completions, daily figures, drop-off.")})
def video_statistics(request: Any) -> dict:
    """001's statistics over the last `days` days (1-365, default 30):
    total_plays, total_unique_viewers, total_completions,
    avg_completion_rate, daily_stats, and drop_off: how many of the period's
    viewers really watched each 5% of the video.  The video's owner and
    course managers only (404 for anyone else)."""
    info = playback.video_info(request, request.validated["path"]["id"])
    if not playback.manages(request, info):
        raise NotFound(f"No video with id {info['id']}.")
    days = request.validated["querystring"]["days"]
    ttl = int(request.registry.settings.get(S.STATS_CACHE_TTL, 60) or 0)
    cache = request.registry["learnsail.cache"]
    key = f"video:stats:{info['id']}:{days}"
    if ttl:
        cached = cache.get(key)
        if cached is not None:
            return cached
    answer = watching.statistics(request.db, info["id"], info["duration"], days)
    if ttl:
        cache.set(key, answer, ttl=ttl)
    return answer


SERVICES = (progress, statistics)
