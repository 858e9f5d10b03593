"""The plugin's core tables: videos (001 ``videos``, 000 §六 八) and the
upload tasks that bring their bytes in (001 ``video_upload_tasks``).

Every table name starts with ``video_``, so it belongs to the plugin's
alembic branch.  Processing, playback and watching keep their own tables
in :mod:`learnsail_video.media_models` (revision ``video_0002``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from learnsail.db import Base, TimestampMixin, UTCDateTime, utcnow

# --- vocabularies -------------------------------------------------------------

#: a video's life: its bytes arrive, it is probed and transcoded, it plays (or failed)
UPLOADING, PROCESSING, COMPLETED, FAILED = "uploading", "processing", "completed", "failed"
VIDEO_STATUSES = (UPLOADING, PROCESSING, COMPLETED, FAILED)

#: how an upload task receives its bytes
CHUNKS, TUS, SINGLE = "chunks", "tus", "single"
PROTOCOLS = (CHUNKS, TUS, SINGLE)

#: an upload task's life: ``uploading`` (accepting bytes) until every byte
#: is in, verified and probed (``uploaded``: the video is handed to
#: processing); ``rejected`` when the file is not a video; ``cancelled`` by
#: its uploader; ``expired`` when abandoned past learnsail.video.upload_ttl_hours
TASK_UPLOADING, TASK_UPLOADED, TASK_REJECTED, TASK_CANCELLED, TASK_EXPIRED = (
    "uploading", "uploaded", "rejected", "cancelled", "expired")
TASK_STATUSES = (TASK_UPLOADING, TASK_UPLOADED, TASK_REJECTED, TASK_CANCELLED, TASK_EXPIRED)


class Video(TimestampMixin, Base):
    """One uploaded video: who owns it, where its original and renditions
    are stored, what ffprobe found, and how far processing is."""

    __tablename__ = "video_videos"
    __table_args__ = (
        # a teacher's own videos, newest first, without the deleted ones
        sa.Index("ix_video_videos_owner_id_deleted_at", "owner_id", "deleted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the teacher who uploaded it
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    course_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("courses_courses.id", ondelete="SET NULL"), index=True)
    chapter_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("courses_chapters.id", ondelete="SET NULL"), index=True)
    original_filename: Mapped[str] = mapped_column(sa.String(255))
    #: bytes of the original
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    #: container as ffprobe names it, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    format: Mapped[str | None] = mapped_column(sa.String(50))
    mime_type: Mapped[str | None] = mapped_column(sa.String(100))
    #: storage key of the original (set once every byte is in)
    source_key: Mapped[str | None] = mapped_column(sa.String(512))
    status: Mapped[str] = mapped_column(sa.String(20), default=UPLOADING, index=True)
    #: 0-100, of the upload while uploading, of processing after
    progress: Mapped[int] = mapped_column(default=0)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    #: seconds (rounded), and milliseconds
    duration: Mapped[int | None]
    duration_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    width: Mapped[int | None]
    height: Mapped[int | None]
    video_codec: Mapped[str | None] = mapped_column(sa.String(50))
    audio_codec: Mapped[str | None] = mapped_column(sa.String(50))
    #: bits per second
    bitrate: Mapped[int | None]
    frame_rate: Mapped[Decimal | None] = mapped_column(sa.Numeric(8, 3, asdecimal=True))
    #: degrees the picture is to be turned for display (display matrix or rotate tag)
    rotation: Mapped[int | None]
    #: storage prefix of the renditions
    hls_prefix: Mapped[str | None] = mapped_column(sa.String(512))
    master_key: Mapped[str | None] = mapped_column(sa.String(512))
    mp4_key: Mapped[str | None] = mapped_column(sa.String(512))
    thumbnail_key: Mapped[str | None] = mapped_column(sa.String(512))
    sprite_key: Mapped[str | None] = mapped_column(sa.String(512))
    #: names of the renditions made, e.g. ["sd", "hd"]
    qualities: Mapped[list[str] | None] = mapped_column(sa.JSON, default=list)
    #: transcode attempts
    attempts: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class UploadTask(TimestampMixin, Base):
    """An upload in progress (or finished): the bytes of one video arriving
    in numbered chunks, through tus, or in a single request.

    ``token`` is the public ``task_id``: random and unguessable, so a task
    is named without revealing how many exist; it is also the storage
    prefix of its parts (``video-uploads/<token>/``).
    """

    __tablename__ = "video_upload_tasks"
    __table_args__ = (
        # the expiry sweep: unfinished tasks past their expiry
        sa.Index("ix_video_upload_tasks_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    video_id: Mapped[int] = mapped_column(sa.ForeignKey("video_videos.id", ondelete="CASCADE"), index=True)
    protocol: Mapped[str] = mapped_column(sa.String(10), default=CHUNKS)
    #: "local" (one part file written in place) or "s3" (one object per chunk)
    backend: Mapped[str] = mapped_column(sa.String(10), default="local")
    filename: Mapped[str] = mapped_column(sa.String(255))
    file_size: Mapped[int] = mapped_column(sa.BigInteger)
    #: the whole file's MD5 as the client announced it (hex); None for tus without one
    file_md5: Mapped[str | None] = mapped_column(sa.String(32))
    chunk_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    total_chunks: Mapped[int | None]
    #: bytes received: the sum of the chunks' sizes, or the tus offset
    received_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    received_chunks: Mapped[int] = mapped_column(default=0)
    #: the MD5 of the file's first ``md5_offset`` bytes, as a resumable
    #: state (see learnsail_video.md5): chunks arriving in order are hashed
    #: as they stream by, so completion reads only what was not hashed yet
    md5_state: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    md5_offset: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[str] = mapped_column(sa.String(20), default=TASK_UPLOADING)
    #: completions refused because the MD5 did not match
    md5_failures: Mapped[int] = mapped_column(default=0)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    #: an unfinished task past this moment is expired by the sweep (each
    #: received chunk pushes it back by learnsail.video.upload_ttl_hours)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: the parts left storage (a task's parts are removed after it ends)
    parts_removed: Mapped[bool] = mapped_column(default=False)
    #: tus: the Upload-Metadata the client sent, decoded
    tus_metadata: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    @property
    def prefix(self) -> str:
        """Where the task's parts are stored."""
        return f"video-uploads/{self.token}/"


class UploadPart(Base):
    """A piece of an upload that is in storage: a numbered chunk (chunked
    uploads), or the body of one tus PATCH kept as its own object (S3).
    The primary key makes a chunk count once however often it is sent."""

    __tablename__ = "video_upload_parts"

    task_id: Mapped[int] = mapped_column(sa.ForeignKey("video_upload_tasks.id", ondelete="CASCADE"),
                                         primary_key=True)
    #: the chunk's index (chunked uploads), or the PATCH's sequence number (tus on S3)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    #: where the piece starts in the file
    start: Mapped[int] = mapped_column(sa.BigInteger)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    #: MD5 of the piece (hex); empty until it is needed (a chunk's own MD5 is
    #: computed only to compare a copy sent again, or to report a mismatch)
    md5: Mapped[str] = mapped_column(sa.String(32))
    #: the object holding the piece (S3); None when it is written in place in the part file (local)
    object_key: Mapped[str | None] = mapped_column(sa.String(512))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
