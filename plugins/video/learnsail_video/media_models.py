"""Tables of processing and watching (revision ``video_0002``).

- :class:`TranscodeJob` -- one request to process a video (001's
  ``VideoTranscodeJob``): queued, running (with a heartbeat), completed or
  failed; the input it found and how long it took.
- :class:`Rendition` -- one quality a job produced (001's output info:
  quality, file, size).
- :class:`WatchSession` -- one viewer's playback session (001's
  ``VideoWatchRecord``): device, platform, quality, position, what it
  really watched.
- :class:`Viewer` -- one viewer of one video, over every session: the
  merged intervals really watched, so jumping to the end is not watching it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from learnsail.db import Base, TimestampMixin, UTCDateTime, utcnow

#: a job's life; ``superseded``: a newer job for the same video replaced it
QUEUED, RUNNING, DONE, FAILED, SUPERSEDED = "queued", "running", "completed", "failed", "superseded"
JOB_STATUSES = (QUEUED, RUNNING, DONE, FAILED, SUPERSEDED)
ACTIVE_JOB_STATUSES = (QUEUED, RUNNING)

#: why a job exists
FOR_UPLOAD, FOR_RETRANSCODE = "upload", "retranscode"

#: the marks of the drop-off curve: every 5% of the video, 0% to 100%
MARKS = 21


class TranscodeJob(TimestampMixin, Base):
    """One processing of one video: probe, the ladder pass, the fallback,
    the poster and sprites, the upload of the outputs.

    ``run_id`` names the run that holds the job (a fresh one each attempt);
    a run writes only while it still holds it, so a run that was presumed
    dead and replaced can never overwrite its successor.  ``heartbeat_at``
    moves while it works; the periodic sweeper requeues (or fails, past
    ``learnsail.video.max_attempts``) a running job whose heartbeat is stale.
    """

    __tablename__ = "video_transcode_jobs"
    __table_args__ = (
        # the sweeper: running jobs by heartbeat, queued jobs by age
        sa.Index("ix_video_transcode_jobs_status_heartbeat_at", "status", "heartbeat_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(sa.ForeignKey("video_videos.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default=QUEUED)
    reason: Mapped[str] = mapped_column(sa.String(20), default=FOR_UPLOAD)
    requested_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    #: 0-100 of this job
    progress: Mapped[int] = mapped_column(default=0)
    #: runs started (each claim of the job is one)
    attempts: Mapped[int] = mapped_column(default=0)
    run_id: Mapped[str | None] = mapped_column(sa.String(32))
    #: "host:pid" of the process holding the job
    worker: Mapped[str | None] = mapped_column(sa.String(255))
    #: the qualities this job makes (known once the source is probed)
    qualities: Mapped[list[str] | None] = mapped_column(sa.JSON)
    #: what the source is (001's input info)
    input_format: Mapped[str | None] = mapped_column(sa.String(50))
    input_resolution: Mapped[str | None] = mapped_column(sa.String(20))
    input_bitrate: Mapped[int | None]
    #: where this run's outputs go in storage
    output_prefix: Mapped[str | None] = mapped_column(sa.String(512))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: seconds the successful run took, start to finish
    processing_time: Mapped[float | None]


class Rendition(Base):
    """One quality of a processed video: its HLS media playlist and size."""

    __tablename__ = "video_renditions"
    __table_args__ = (sa.UniqueConstraint("job_id", "quality"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(sa.ForeignKey("video_videos.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("video_transcode_jobs.id", ondelete="CASCADE"))
    quality: Mapped[str] = mapped_column(sa.String(10))
    width: Mapped[int]
    height: Mapped[int]
    #: the video bitrate asked of the encoder, and the BANDWIDTH of the master playlist (bits/s)
    video_bitrate: Mapped[int]
    bandwidth: Mapped[int]
    codecs: Mapped[str] = mapped_column(sa.String(100), default="")
    playlist_key: Mapped[str] = mapped_column(sa.String(512))
    segments: Mapped[int] = mapped_column(default=0)
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WatchSession(Base):
    """One playback session of one viewer (001 VideoWatchRecord): where it
    stands, what it really watched, on which device, platform and quality."""

    __tablename__ = "video_watch_sessions"
    __table_args__ = (
        sa.UniqueConstraint("video_id", "user_id", "session_key"),
        # statistics: a video's sessions by start
        sa.Index("ix_video_watch_sessions_video_id_started_at", "video_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(sa.ForeignKey("video_videos.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    lesson_id: Mapped[int | None] = mapped_column(sa.ForeignKey("courses_lessons.id", ondelete="SET NULL"))
    #: the client's session id (or one the server chose)
    session_key: Mapped[str] = mapped_column(sa.String(64))
    device_type: Mapped[str | None] = mapped_column(sa.String(20))
    platform: Mapped[str | None] = mapped_column(sa.String(50))
    quality: Mapped[str | None] = mapped_column(sa.String(10))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_report_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reports: Mapped[int] = mapped_column(default=0)
    #: the latest position and the furthest one (seconds)
    position: Mapped[float] = mapped_column(default=0.0)
    max_position: Mapped[float] = mapped_column(default=0.0)
    #: what the client counted (its watch_duration), and what was credited as really watched
    watch_duration: Mapped[float] = mapped_column(default=0.0)
    watched_seconds: Mapped[float] = mapped_column(default=0.0)
    is_completed: Mapped[bool] = mapped_column(default=False)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Viewer(Base):
    """One viewer of one video across sessions: the merged intervals really
    watched (``[[start, end], ...]`` in seconds), their share of the
    duration, and ``marks``: bit ``k`` set when the viewer really watched
    the moment at ``5 * k`` percent (the drop-off curve, k = 0..20)."""

    __tablename__ = "video_viewers"
    __table_args__ = (
        sa.UniqueConstraint("video_id", "user_id"),
        sa.Index("ix_video_viewers_video_id_last_watched_at", "video_id", "last_watched_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(sa.ForeignKey("video_videos.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    intervals: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    watched_seconds: Mapped[float] = mapped_column(default=0.0)
    watched_percent: Mapped[Decimal] = mapped_column(sa.Numeric(5, 2, asdecimal=True), default=Decimal("0"))
    marks: Mapped[int] = mapped_column(default=0)
    last_position: Mapped[float] = mapped_column(default=0.0)
    is_completed: Mapped[bool] = mapped_column(default=False)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    first_watched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_watched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
