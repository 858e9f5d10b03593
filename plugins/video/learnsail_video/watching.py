"""Watching: progress reports, what was really watched, statistics.

A player reports every few seconds (``POST /api/v1/videos/{id}/progress``)
where it is (``position``) and how long it has played in this session
(``watch_duration``).  Each report credits an **interval** of the video as
really watched:

- continuous playback (the position moved forward by no more than the
  time played allows, at up to 2x speed): from the previous position to
  this one;
- otherwise (a seek): only the seconds played since the last report,
  ending at this position.

Whatever the client claims, a report credits at most what the wall-clock
time since the viewer's previous report allows (2x speed, plus a little),
and a viewer's first report at most ``learnsail.video.max_report_seconds``.
The intervals of every session of a viewer are merged, so watching a part
twice counts once and jumping to the end watches nothing in between.  The
really-watched share of the duration is the progress sent to courses
(``report_progress`` of the lesson the video is watched in), and the video
is completed when it reaches ``learnsail.video.completion_percent`` (90).

The write path stays small: two rows (the session, the viewer) read and
written per report, plus courses' own (buffered when its heartbeat
buffering is on).  Statistics are computed from those rows when asked.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from learnsail.db import utcnow
from learnsail_video import settings as S
from learnsail_video.media_models import MARKS, Viewer, WatchSession

#: fastest playback rate a player offers
MAX_RATE = 2.0
#: seconds of slack on the wall-clock bound (network jitter)
SLACK = 2.0
#: a report without session_id continues the viewer's latest session when
#: it reported within this many seconds
SESSION_GAP = 1800
#: most separate watched pieces kept per viewer (beyond, the closest merge)
MAX_INTERVALS = 500

_now = utcnow


def now() -> dt.datetime:
    """The clock of this module (tests move it)."""
    return _now()


# --- intervals ------------------------------------------------------------------------------


def merge(intervals: list[list[float]], start: float, end: float, *, gap: float = 0.25) -> list[list[float]]:
    """``intervals`` (sorted, disjoint) with ``[start, end]`` added; pieces
    that overlap or are within ``gap`` seconds of each other become one."""
    pieces = sorted([list(map(float, piece)) for piece in intervals] + [[start, end]])
    merged: list[list[float]] = []
    for piece in pieces:
        if piece[1] <= piece[0]:
            continue
        if merged and piece[0] <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], piece[1])
        else:
            merged.append(piece)
    while len(merged) > MAX_INTERVALS:  # close the smallest gap
        index = min(range(len(merged) - 1), key=lambda i: merged[i + 1][0] - merged[i][1])
        merged[index][1] = merged.pop(index + 1)[1]
    return [[round(a, 2), round(b, 2)] for a, b in merged]


def covered(intervals: list[list[float]]) -> float:
    return sum(end - start for start, end in intervals)


def marks_of(intervals: list[list[float]], duration: float) -> int:
    """Bit ``k`` set when the moment at ``5 * k`` percent of ``duration``
    (k = 0..20) lies in a watched interval (within half a 5% step, at most
    a second)."""
    if duration <= 0:
        return 0
    tolerance = min(1.0, duration / 40.0)
    bits = 0
    for k in range(MARKS):
        point = duration * k / (MARKS - 1)
        if any(start - tolerance <= point <= end + tolerance for start, end in intervals):
            bits |= 1 << k
    return bits


def percent(part: float, whole: float) -> Decimal:
    if whole <= 0:
        return Decimal("0")
    value = Decimal(str(min(100.0, 100.0 * part / whole)))
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def credit(*, position: float, watched: float | None, previous: float | None, wall: float | None,
           max_report: float) -> tuple[float, float] | None:
    """The interval one report credits (see the module's docstring), or
    None.  ``previous``: the session's last position (None for its first
    report); ``wall``: seconds since the viewer's previous report (None for
    the viewer's first)."""
    budget = max_report if wall is None else min(max(wall, 0.0) * MAX_RATE + SLACK, max_report * MAX_RATE)
    if watched is None:  # no counter from the client: the position's advance, when plausible
        watched = max(0.0, position - previous) if previous is not None else 0.0
    watched = max(0.0, watched)
    reach = min(budget, watched * MAX_RATE + 1.0)
    if previous is not None and 0 < position - previous <= reach:
        return previous, position
    seconds = min(watched, budget)
    if seconds <= 0:
        return None
    return max(0.0, position - seconds), position


# --- a report ---------------------------------------------------------------------------------


def _session(db: Any, video_id: int, user_id: int, key: str | None, at: dt.datetime, lesson_id: int | None,
             fields: dict) -> tuple[WatchSession, bool]:
    """The watch session the report belongs to, and whether it is new."""
    if key is None:
        latest = db.scalar(sa.select(WatchSession).where(
            WatchSession.video_id == video_id, WatchSession.user_id == user_id,
            WatchSession.last_report_at >= at - dt.timedelta(seconds=SESSION_GAP))
            .order_by(WatchSession.last_report_at.desc(), WatchSession.id.desc()).limit(1))
        if latest is not None:
            return latest, False
        key = uuid.uuid4().hex
    found = db.scalar(sa.select(WatchSession).where(WatchSession.video_id == video_id,
                                                    WatchSession.user_id == user_id,
                                                    WatchSession.session_key == key))
    if found is not None:
        return found, False
    session = WatchSession(video_id=video_id, user_id=user_id, session_key=key, lesson_id=lesson_id,
                           started_at=at, last_report_at=at, **fields)
    try:
        with db.begin_nested():
            db.add(session)
            db.flush()
    except IntegrityError:  # the same session's report raced this one
        return db.scalar(sa.select(WatchSession).where(WatchSession.video_id == video_id,
                                                       WatchSession.user_id == user_id,
                                                       WatchSession.session_key == key)), False
    return session, True


def _viewer(db: Any, video_id: int, user_id: int, at: dt.datetime) -> tuple[Viewer, bool]:
    found = db.scalar(sa.select(Viewer).where(Viewer.video_id == video_id, Viewer.user_id == user_id))
    if found is not None:
        return found, False
    viewer = Viewer(video_id=video_id, user_id=user_id, intervals=[], first_watched_at=at, last_watched_at=at)
    try:
        with db.begin_nested():
            db.add(viewer)
            db.flush()
    except IntegrityError:
        return db.scalar(sa.select(Viewer).where(Viewer.video_id == video_id, Viewer.user_id == user_id)), False
    return viewer, True


def record(db: Any, settings: Any, *, video_id: int, user_id: int, duration: float, position: float,
           watch_duration: float | None, session_id: str | None = None, lesson_id: int | None = None,
           limit: float | None = None, device_type: str | None = None, platform: str | None = None,
           quality: str | None = None, at: dt.datetime | None = None) -> dict:
    """Record one progress report (positions in seconds; ``limit``: a
    trial's end, beyond which nothing counts).  Returns the viewer's state:
    ``{"session_id", "progress_percent", "watched_seconds", "is_completed",
    "completed_now", "last_position"}``."""
    at = at or now()
    end = min(duration, limit) if limit is not None else duration
    position = max(0.0, min(float(position), end)) if end > 0 else 0.0
    max_report = float(settings.get(S.MAX_REPORT_SECONDS, 60))
    fields = {"device_type": device_type, "platform": platform, "quality": quality}
    session, new_session = _session(db, video_id, user_id, session_id, at, lesson_id, fields)
    viewer, new_viewer = _viewer(db, video_id, user_id, at)

    watched = None
    if watch_duration is not None:
        counter = float(watch_duration)
        watched = counter - session.watch_duration if counter >= session.watch_duration else counter
        session.watch_duration = counter
    wall = None if new_viewer else (at - viewer.last_watched_at).total_seconds()
    piece = credit(position=position, watched=watched, previous=None if new_session else session.position,
                   wall=wall, max_report=max_report)

    if piece is not None:
        start, stop = piece
        viewer.intervals = merge(viewer.intervals or [], start, min(stop, end))
        session.watched_seconds = round(session.watched_seconds + (min(stop, end) - start), 2)
    watched_total = covered(viewer.intervals or [])
    viewer.watched_seconds = round(watched_total, 2)
    viewer.watched_percent = percent(watched_total, duration)
    viewer.marks = marks_of(viewer.intervals or [], duration)
    viewer.last_position = position
    viewer.last_watched_at = at
    threshold = float(settings.get(S.COMPLETION_PERCENT, 90))
    completed_now = False
    if not viewer.is_completed and duration > 0 and watched_total >= duration * threshold / 100.0 - 1e-6:
        viewer.is_completed, viewer.completed_at, completed_now = True, at, True
    session.position = position
    session.max_position = max(session.max_position, position)
    session.last_report_at = at
    session.reports += 1
    for name, value in fields.items():
        if value is not None:
            setattr(session, name, value)
    if lesson_id is not None:
        session.lesson_id = lesson_id
    if not session.is_completed and duration > 0 and \
            session.watched_seconds >= duration * threshold / 100.0 - 1e-6:
        session.is_completed, session.completed_at = True, at
    db.flush()
    return {"session_id": session.session_key, "progress_percent": float(viewer.watched_percent),
            "watched_seconds": viewer.watched_seconds, "is_completed": viewer.is_completed,
            "completed_now": completed_now, "last_position": position}


def report(request: Any, info: dict, access: Any, body: dict) -> dict:
    """``POST /videos/{id}/progress``: record the report and feed courses'
    progress of the lesson it is watched in.  A preview (the owner, the
    course's teacher) is answered but not recorded."""
    from learnsail_courses import api as courses

    from learnsail_video.playback import trial_limit

    duration = float(info["duration"] or 0)
    if not access.counted:
        return {"message": "Previews are not recorded.", "recorded": False, "is_completed": False,
                "progress_percent": 0.0, "watched_seconds": 0.0, "last_position": body["position"],
                "session_id": body.get("session_id"), "lesson_id": access.lesson.id if access.lesson else None,
                "lesson_progress": None}
    state = record(request.db, request.registry.settings, video_id=info["id"], user_id=request.identity.id,
                   duration=duration, position=body["position"], watch_duration=body.get("watch_duration"),
                   session_id=body.get("session_id"), lesson_id=access.lesson.id if access.lesson else None,
                   limit=trial_limit(request, access, info), device_type=body.get("device_type"),
                   platform=body.get("platform"), quality=body.get("quality"))
    lesson_progress = None
    if access.lesson is not None:
        lesson_progress = courses.report_progress(request, access.lesson, access.course,
                                                  progress_percent=state["progress_percent"],
                                                  last_position=int(state["last_position"]))
    return {"message": "Progress saved", "recorded": True, "is_completed": state["is_completed"],
            "progress_percent": state["progress_percent"], "watched_seconds": state["watched_seconds"],
            "last_position": state["last_position"], "session_id": state["session_id"],
            "lesson_id": access.lesson.id if access.lesson else None, "lesson_progress": lesson_progress}


# --- statistics -------------------------------------------------------------------------------


def _day(value: Any) -> str:
    return str(value)[:10]


def statistics(db: Any, video_id: int, duration: float, days: int, *, today: dt.date | None = None) -> dict:
    """001's ``GET /videos/{id}/statistics?days=``, over the last ``days``
    days (today included, UTC):

    - ``total_plays``: watch sessions started; ``total_unique_viewers``:
      distinct viewers among them; ``total_completions``: viewers who
      completed the video in the period; ``avg_completion_rate``: the mean
      really-watched share (percent) of the viewers active in the period;
    - ``daily_stats``: per day, plays, unique viewers, completions and
      seconds really watched;
    - ``drop_off``: for each 5% of the video, how many of the period's
      viewers really watched that moment (``{"percent", "viewers",
      "share"}``).  Five queries whatever the audience."""
    today = today or now().date()
    first = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time(), dt.timezone.utc)
    in_period = sa.and_(WatchSession.video_id == video_id, WatchSession.started_at >= since)
    totals = db.execute(sa.select(sa.func.count(WatchSession.id), sa.func.count(sa.distinct(WatchSession.user_id)))
                        .where(in_period)).one()
    day = sa.func.date(WatchSession.started_at)
    daily = {_day(d): (plays, viewers, float(seconds or 0)) for d, plays, viewers, seconds in db.execute(
        sa.select(day, sa.func.count(WatchSession.id), sa.func.count(sa.distinct(WatchSession.user_id)),
                  sa.func.sum(WatchSession.watched_seconds)).where(in_period).group_by(day))}
    done_day = sa.func.date(Viewer.completed_at)
    completions = {_day(d): n for d, n in db.execute(
        sa.select(done_day, sa.func.count(Viewer.id)).where(Viewer.video_id == video_id,
                                                            Viewer.completed_at >= since).group_by(done_day))}
    active = sa.and_(Viewer.video_id == video_id, Viewer.last_watched_at >= since)
    columns = [sa.func.count(Viewer.id), sa.func.avg(Viewer.watched_percent)]
    columns += [sa.func.sum(sa.case((Viewer.marks.op("&")(1 << k) != 0, 1), else_=0)) for k in range(MARKS)]
    row = db.execute(sa.select(*columns).where(active)).one()
    viewers, average = int(row[0] or 0), row[1]
    drop_off = [{"percent": 5 * k, "viewers": int(row[2 + k] or 0),
                 "share": float(percent(int(row[2 + k] or 0), viewers)) if viewers else 0.0}
                for k in range(MARKS)]
    daily_stats = []
    for offset in range(days):
        date = (first + dt.timedelta(days=offset)).isoformat()
        plays, unique, seconds = daily.get(date, (0, 0, 0.0))
        daily_stats.append({"date": date, "plays": plays, "unique_viewers": unique,
                            "completions": completions.get(date, 0), "watch_seconds": round(seconds, 1)})
    return {"video_id": video_id, "period_days": days, "duration": int(round(duration)),
            "total_plays": int(totals[0] or 0), "total_unique_viewers": int(totals[1] or 0),
            "total_completions": sum(completions.values()),
            "avg_completion_rate": float(Decimal(str(average)).quantize(Decimal("0.1"))) if average is not None
            else 0.0,
            "viewers": viewers, "daily_stats": daily_stats, "drop_off": drop_off}


def erase_user(db: Any, user_id: int) -> None:
    """An erased account's watch records go (learnsail_user_erased)."""
    db.execute(sa.delete(WatchSession).where(WatchSession.user_id == user_id))
    db.execute(sa.delete(Viewer).where(Viewer.user_id == user_id))


def export_user(db: Any, user_id: int) -> list[dict]:
    """What the account watched (learnsail_user_export)."""
    return [{"video_id": v.video_id, "watched_seconds": v.watched_seconds,
             "watched_percent": float(v.watched_percent), "is_completed": v.is_completed,
             "last_position": v.last_position, "first_watched_at": v.first_watched_at,
             "last_watched_at": v.last_watched_at}
            for v in db.scalars(sa.select(Viewer).where(Viewer.user_id == user_id).order_by(Viewer.id))]
