"""Progress heartbeats buffered in the cache, flushed to the database by a
periodic task (``courses.flush_progress``).

Off by default (``learnsail.courses.progress_buffer_seconds`` = 0: every
report is written at once).  With an interval of N seconds, a report that
only moves an existing progress row forward (no completion) is stored in
the cache under the key of the current *epoch* (``now // N``) instead of
the database; the answer, and ``GET /lessons/{id}``, read the cache first,
so they always show the latest position.  The task writes the entries of
the epochs that are over, oldest first, and deletes them once committed:
a crash of the cache loses at most one interval of positions.  Reports
that complete a lesson, and first reports, are written at once (after the
pair's buffered entries), so completions, hooks and counts are never late.

Each entry holds the absolute state (furthest percent, latest position,
when) and the learning seconds credited during its epoch, so applying
several epochs in order is exact: percent by maximum, position by time,
seconds by sum.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.aftercommit import on_commit
from learnsail.db import utcnow
from learnsail_courses.models import Enrolment, Progress

PREFIX = "courses:hb:"
MARKER = "courses:hb-flushed"
#: a due epoch is looked at most this many epochs back (older entries have expired)
LOOKBACK = 360
#: the most entries one epoch may hold (viewers x lessons they report on in one interval)
MAX_KEYS = 200_000


def epoch_of(now: dt.datetime, interval: int) -> int:
    return int(now.timestamp()) // int(interval)


def key(epoch: int, user_id: int, lesson_id: int) -> str:
    return f"{PREFIX}{epoch}:{user_id}:{lesson_id}"


def ttl_for(interval: int) -> int:
    return max(3600, 10 * int(interval))


def latest(cache: Any, user_id: int, lesson_id: int, interval: int, now: dt.datetime | None = None) -> dict | None:
    """The newest buffered state of ``user_id`` in ``lesson_id`` (this epoch
    or the previous one), or None."""
    epoch = epoch_of(now or utcnow(), interval)
    current, previous = cache.get_many([key(epoch, user_id, lesson_id), key(epoch - 1, user_id, lesson_id)])
    return current or previous


def buffer_report(session: Session, cache: Any, user_id: int, lesson_id: int, *, percent: Decimal,
                  position: int | None, is_completed: bool | None, threshold: int, interval: int,
                  max_credit: int, now: dt.datetime | None = None) -> dict | None:
    """Buffer a report when it may be: returns the new state
    ``{"id", "percent", "position", "credit", "at", "course_id", ...}``, or
    None when it must be written at once (no row yet, a completion, or the
    cache is unavailable)."""
    if not cache.available:
        return None
    now = now or utcnow()
    epoch = epoch_of(now, interval)
    current, previous = cache.get_many([key(epoch, user_id, lesson_id), key(epoch - 1, user_id, lesson_id)])
    state = current or previous
    if state is None:
        row = session.execute(sa.select(Progress.id, Progress.course_id, Progress.progress_percent,
                                        Progress.last_position, Progress.is_completed)
                              .where(Progress.user_id == user_id, Progress.lesson_id == lesson_id)).first()
        if row is None:
            return None
        state = {"id": row.id, "course_id": row.course_id, "percent": str(row.progress_percent),
                 "position": row.last_position, "completed": bool(row.is_completed)}
    if not state["completed"] and (bool(is_completed) or percent >= threshold):
        return None  # may complete the lesson: written at once
    entry = dict(current) if current else {**state, "credit": 0}
    if position is not None:
        entry["credit"] = int(entry.get("credit", 0)) + min(max(0, position - int(state["position"])), max_credit)
        entry["position"] = position
    entry["percent"] = str(max(Decimal(state["percent"]), percent.quantize(Decimal("0.01"))))
    entry.update(user_id=user_id, lesson_id=lesson_id, at=now.isoformat())
    cache.set(key(epoch, user_id, lesson_id), entry, ttl_for(interval))
    return entry


def _apply(session: Session, entries: list[dict]) -> None:
    """Write buffered entries (of one or more epochs, oldest first): the
    progress rows (locked, one query), then the learning seconds per user
    and day and the last access per enrolment, each gathered over the
    entries and written as one statement run for many rows."""
    from learnsail_courses.learning import _credit_day

    if not entries:
        return
    rows = {p.id: p for p in session.scalars(sa.select(Progress).where(
        Progress.id.in_({int(e["id"]) for e in entries})).with_for_update())}
    credits: dict[tuple[int, dt.date], tuple[int, dt.datetime]] = {}
    accessed: dict[tuple[int, int], dt.datetime] = {}
    for entry in entries:
        row = rows.get(int(entry["id"]))
        if row is None:  # the lesson was deleted meanwhile
            continue
        at = dt.datetime.fromisoformat(entry["at"])
        row.progress_percent = max(Decimal(row.progress_percent or 0), Decimal(entry["percent"]))
        if row.updated_at is None or at > row.updated_at:
            row.last_position = int(entry["position"])
            row.updated_at = at
        credit = int(entry.get("credit", 0))
        if credit:
            row.learned_seconds = (row.learned_seconds or 0) + credit
            seconds, _ = credits.get((row.user_id, at.date()), (0, at))
            credits[(row.user_id, at.date())] = (seconds + credit, at)
        pair = (row.user_id, row.course_id)
        accessed[pair] = max(at, accessed.get(pair, at))
    session.flush()
    for (user_id, _day), (seconds, at) in credits.items():
        _credit_day(session, user_id, seconds, at)
    if accessed:
        session.connection().execute(
            sa.update(Enrolment.__table__)
            .where(Enrolment.user_id == sa.bindparam("u"), Enrolment.course_id == sa.bindparam("c"),
                   sa.or_(Enrolment.last_accessed_at.is_(None), Enrolment.last_accessed_at < sa.bindparam("at")))
            .values(last_accessed_at=sa.bindparam("at")),
            [{"u": u, "c": c, "at": at} for (u, c), at in accessed.items()])


def flush_pair(session: Session, cache: Any, user_id: int, lesson_id: int, interval: int,
               now: dt.datetime | None = None) -> None:
    """Write the buffered entries of one viewer in one lesson now (before a
    report that is written at once); their keys go when the session's
    transaction commits."""
    epoch = epoch_of(now or utcnow(), interval)
    keys = [key(epoch - 1, user_id, lesson_id), key(epoch, user_id, lesson_id)]
    entries = [e for e in cache.get_many(keys) if e]
    if entries:
        _apply(session, entries)
        on_commit(session, cache.delete, *keys, what="courses: drop flushed heartbeats")


def flush(session: Session, cache: Any, interval: int, now: dt.datetime | None = None) -> int:
    """Write every buffered entry of the epochs that are over; returns how
    many.  Keys are deleted after the session's transaction commits."""
    current = epoch_of(now or utcnow(), interval)
    last = cache.get(MARKER)
    start = current - LOOKBACK if last is None else max(int(last) + 1, current - LOOKBACK)
    written = 0
    for epoch in range(start, current):
        # a finished epoch gets no new keys: one listing holds them all
        keys = [k["key"] for k in cache.keys(f"{PREFIX}{epoch}:", limit=MAX_KEYS)]
        if not keys:
            continue
        entries = [e for e in cache.get_many(keys) if e]
        _apply(session, entries)
        written += len(entries)
        on_commit(session, cache.delete, *keys, what="courses: drop flushed heartbeats")
    on_commit(session, cache.set, MARKER, current - 1, ttl_for(interval), what="courses: heartbeat marker")
    return written
