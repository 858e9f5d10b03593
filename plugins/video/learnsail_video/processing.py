"""Processing: from an uploaded original to a playable video.

The upload side hands a video over with :func:`start` (in its own
transaction; the task is sent once that commits).  The task
``video.transcode`` (queue ``video``) then, in short transactions of its
own so the database is never held while ffmpeg works:

1. **claims** the job (a fresh ``run_id``, ``attempts + 1``, a heartbeat);
2. fetches the original from storage into a temporary directory and
   **probes** it (metadata into the Video);
3. runs the **pipeline** of :mod:`learnsail_video.transcode` (one decode,
   the HLS ladder, MP4 fallback, poster, sprites), writing the progress to
   the job and the video at every 5% (and the heartbeat at least every
   ``stale_seconds / 6``);
4. **stores** the outputs under a prefix of the run's own
   (``video-media/<video id>/<run>/``), the master playlist last;
5. **completes**: the video points at the new outputs, its renditions are
   recorded, the cached video info is dropped, the owner is notified, and
   the previous outputs are removed (task ``video.purge_media``).

A failed run records its error; it is retried with backoff while the job
has runs left (``learnsail.video.max_attempts``), then the video is marked
failed.  A source ffprobe cannot read as a video fails at once.  Tasks are
acknowledged late and rejected when their worker is lost, so a killed
worker's job is delivered again; and the periodic sweeper
``video.sweep_stale`` requeues a running job whose heartbeat went stale (or
fails it past the limit), so no video stays ``processing`` forever.  Every
write of a run checks it still holds the job: a run presumed dead and
replaced can never overwrite its successor.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import socket
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from learnsail.db import utcnow
from learnsail.tasks import TaskContext, TransientError, enqueue, task
from learnsail_video import settings as S
from learnsail_video import transcode
from learnsail_video.media_models import (ACTIVE_JOB_STATUSES, DONE, FAILED, FOR_RETRANSCODE, FOR_UPLOAD, QUEUED,
                                          RUNNING, SUPERSEDED, Rendition, TranscodeJob)
from learnsail_video.models import COMPLETED, FAILED as VIDEO_FAILED, PROCESSING, Video

log = logging.getLogger("learnsail.video.processing")

TRANSCODE_TASK = "video.transcode"
SWEEP_TASK = "video.sweep_stale"
PURGE_TASK = "video.purge_media"

#: notification types (declared in plugin.py)
TRANSCODE_FINISHED = "video.transcode_finished"
TRANSCODE_FAILED = "video.transcode_failed"

#: the runs executing in this process (a job held by this process but by no
#: run in this set was left behind by a run that ended without letting go)
_ACTIVE_RUNS: set[str] = set()
_ACTIVE_LOCK = threading.Lock()

CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".mp4": "video/mp4",
                 ".jpg": "image/jpeg", ".vtt": "text/vtt"}


def media_prefix(video_id: int, run_id: str) -> str:
    """Where one run stores its outputs."""
    return f"video-media/{int(video_id)}/{run_id[:16]}/"


def worker_name() -> str:
    return f"{socket.gethostname()[:200]}:{os.getpid()}"


# --- the hand-off -------------------------------------------------------------------


def start(session: Any, video: Video, *, requested_by: int | None = None, reason: str = FOR_UPLOAD) -> TranscodeJob:
    """Queue the processing of ``video`` (its original is in storage at
    ``video.source_key``): a new job replaces any queued or running one, the
    video becomes ``processing`` at 0%, and ``video.transcode`` is sent once
    ``session``'s transaction commits."""
    now = utcnow()
    session.execute(sa.update(TranscodeJob)
                    .where(TranscodeJob.video_id == video.id, TranscodeJob.status.in_(ACTIVE_JOB_STATUSES))
                    .values(status=SUPERSEDED, run_id=None, finished_at=now)
                    .execution_options(synchronize_session=False))
    job = TranscodeJob(video_id=video.id, status=QUEUED, reason=reason, requested_by=requested_by, queued_at=now)
    session.add(job)
    video.status = PROCESSING
    video.progress = 0
    video.error_message = None
    session.flush()
    enqueue(session, TRANSCODE_TASK, video.id, job.id)
    _forget(session, video.id)
    return job


class CannotRetranscode(Exception):
    pass


def retranscode(session: Any, video: Video, *, requested_by: int) -> TranscodeJob:
    """Process ``video`` again from its original (``POST
    /videos/{id}/retranscode``).  Refused (409) while it is uploading or
    already processing, or when its original is gone."""
    from learnsail.errors import Conflict

    if video.status not in (COMPLETED, VIDEO_FAILED):
        raise Conflict(f"The video is {video.status}; it can be transcoded again once that is over.",
                       {"status": video.status})
    if not video.source_key:
        raise Conflict("The video's original is not in storage, so it cannot be transcoded again.",
                       {"source_key": None})
    return start(session, video, requested_by=requested_by, reason=FOR_RETRANSCODE)


def latest_job(session: Any, video_id: int) -> TranscodeJob | None:
    return session.scalar(sa.select(TranscodeJob).where(TranscodeJob.video_id == video_id)
                          .order_by(TranscodeJob.id.desc()).limit(1))


def jobs_of(session: Any, video: Video) -> list[dict]:
    """001's ``transcode_jobs`` of the video's latest job, one entry per
    quality: ``{"quality", "status", "progress", "width", "height",
    "bitrate", "size", "processing_time", "attempts", "error_message",
    "started_at", "finished_at"}``.  Before the source is probed the
    qualities are not known yet: one entry with ``quality`` null."""
    job = latest_job(session, video.id)
    if job is None:
        return []
    renditions = {r.quality: r for r in session.scalars(sa.select(Rendition).where(Rendition.job_id == job.id))}
    common = {"status": job.status, "progress": 100 if job.status == DONE else job.progress,
              "processing_time": round(job.processing_time, 3) if job.processing_time is not None else None,
              "attempts": job.attempts, "error_message": job.error_message,
              "input": {"format": job.input_format, "resolution": job.input_resolution,
                        "bitrate": job.input_bitrate},
              "queued_at": job.queued_at, "started_at": job.started_at, "finished_at": job.finished_at}
    out = []
    for quality in job.qualities or [None]:
        rendition = renditions.get(quality)
        out.append({"quality": quality,
                    "width": rendition.width if rendition else None,
                    "height": rendition.height if rendition else None,
                    "bitrate": rendition.video_bitrate if rendition else None,
                    "size": rendition.size if rendition else None,
                    **common})
    return out


def _forget(target: Any, video_id: int) -> None:
    from learnsail_video.playback import forget_video

    forget_video(target, video_id)


# --- the task -----------------------------------------------------------------------------


def options_from(settings: Any) -> transcode.Options:
    chosen = settings.get(S.LEVELS) or transcode.LEVEL_NAMES
    if isinstance(chosen, str):
        chosen = tuple(chosen.split())
    return transcode.Options(
        ffmpeg=settings.get(S.FFMPEG) or "ffmpeg",
        preset=settings.get(S.PRESET) or "veryfast",
        segment_seconds=int(settings.get(S.SEGMENT_SECONDS) or 4),
        keyframe_seconds=int(settings.get(S.KEYFRAME_SECONDS) or 2),
        audio_bitrate=int(settings.get(S.AUDIO_BITRATE) or 128000),
        sprite_interval=float(settings.get(S.SPRITE_INTERVAL) or 5),
        levels=tuple(level for level in transcode.LEVELS if level.name in chosen),
    )


class Superseded(transcode.Cancelled):
    """This run no longer holds its job (it was presumed dead and replaced,
    or a newer job took over): it stops and writes nothing more."""


class SourceInvalid(Exception):
    """The original is not a video ffmpeg can process: failing at once."""


def _checkpoint(ctx: TaskContext) -> None:
    """Commit what the run wrote so far (progress is seen at once, and no
    lock is held while ffmpeg works), then go on in a new transaction."""
    ctx.tm.commit()
    ctx.tm.begin()


def _abandoned(job: TranscodeJob, now: dt.datetime, stale_seconds: int) -> bool:
    """Is a running job's run gone: no heartbeat for ``stale_seconds``, or
    it was held by this very process by a run that is not running any more
    (a retry, or a redelivery after a crash of a thread)?"""
    if job.heartbeat_at is None or job.heartbeat_at < now - dt.timedelta(seconds=stale_seconds):
        return True
    if job.worker == worker_name():
        with _ACTIVE_LOCK:
            return job.run_id not in _ACTIVE_RUNS
    host, _, pid = (job.worker or "").rpartition(":")
    if host == socket.gethostname()[:200] and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True  # the process that held it on this machine is dead (a killed pool child)
        except OSError:
            return False
    return False


def claim(session: Any, job_id: int, run_id: str, *, stale_seconds: int) -> tuple[TranscodeJob, Video] | None:
    """Take the job for the run ``run_id``; None when there is nothing to do
    (finished, superseded, the video is gone) or a live run holds it."""
    job = session.scalar(sa.select(TranscodeJob).where(TranscodeJob.id == job_id).with_for_update())
    if job is None or job.status not in ACTIVE_JOB_STATUSES:
        return None
    now = utcnow()
    if job.status == RUNNING and not _abandoned(job, now, stale_seconds):
        log.info("video job %s is held by a live run (%s); this delivery does nothing", job.id, job.worker)
        return None
    video = session.get(Video, job.video_id)
    if video is None or video.deleted_at is not None:
        job.status, job.finished_at, job.error_message = SUPERSEDED, now, "The video was deleted."
        return None
    job.status, job.run_id, job.worker = RUNNING, run_id, worker_name()
    job.attempts += 1
    job.progress, job.error_message = 0, None
    job.started_at = job.heartbeat_at = now
    job.output_prefix = media_prefix(video.id, run_id)
    video.status, video.progress = PROCESSING, 0
    video.attempts = (video.attempts or 0) + 1
    session.flush()
    return job, video


class Run:
    """One run of one job (see the module's docstring)."""

    def __init__(self, ctx: TaskContext, video_id: int, job_id: int) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.video_id = video_id
        self.job_id = job_id
        self.run_id = uuid.uuid4().hex
        self.stale_seconds = int(self.settings.get(S.STALE_SECONDS) or 120)
        self.heartbeat_every = max(1.0, self.stale_seconds / 6)
        self.max_attempts = int(self.settings.get(S.MAX_ATTEMPTS) or 3)
        self.written_percent = -100
        self.written_at = 0.0
        self.prefix = ""

    # --- writes, each only while the run holds the job ---

    def _hold(self, **job_values: Any) -> None:
        """Update the job (and the heartbeat) if this run still holds it."""
        session = self.ctx.session
        result = session.execute(sa.update(TranscodeJob)
                                 .where(TranscodeJob.id == self.job_id, TranscodeJob.run_id == self.run_id,
                                        TranscodeJob.status == RUNNING)
                                 .values(heartbeat_at=utcnow(), **job_values)
                                 .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise Superseded(f"job {self.job_id} is no longer held by run {self.run_id}")

    def progress(self, percent: float) -> None:
        """Write the progress at every 5%, and the heartbeat when due."""
        import time

        value = int(percent)
        now = time.monotonic()
        if value < self.written_percent + 5 and now - self.written_at < self.heartbeat_every:
            return
        if value >= self.written_percent + 5:
            self.written_percent = value - value % 5
        self.written_at = now
        shown = min(99, self.written_percent if self.written_percent >= 0 else 0)
        self._hold(progress=shown)
        self.ctx.session.execute(sa.update(Video).where(Video.id == self.video_id).values(progress=shown)
                                 .execution_options(synchronize_session=False))
        _checkpoint(self.ctx)

    # --- the run ---

    def execute(self) -> None:
        ctx = self.ctx
        claimed = claim(ctx.session, self.job_id, self.run_id, stale_seconds=self.stale_seconds)
        if claimed is None:
            return
        job, video = claimed
        self.prefix = job.output_prefix or media_prefix(video.id, self.run_id)
        attempt = job.attempts
        with _ACTIVE_LOCK:
            _ACTIVE_RUNS.add(self.run_id)
        try:
            _checkpoint(ctx)
            self._process()
        except Superseded:
            log.warning("video %s: run %s was replaced; it stops", self.video_id, self.run_id)
            self._abort_transaction()
            self._remove_outputs()
        except SourceInvalid as exc:
            self._abort_transaction()
            self._fail(str(exc))
        except TransientError as exc:
            self._after_error(exc, attempt)
        except Exception as exc:
            from learnsail.tasks import is_transient

            if is_transient(exc) and not isinstance(exc, (transcode.TranscodeFailed, OSError)):
                raise  # the database or cache is unreachable: the core retries the whole task
            self._after_error(exc, attempt)
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE_RUNS.discard(self.run_id)

    def _abort_transaction(self) -> None:
        self.ctx.tm.abort()
        self.ctx.tm.begin()

    def _after_error(self, exc: BaseException, attempt: int) -> None:
        message = _message(exc)
        log.warning("video %s: run %s (attempt %d of %d) failed: %s", self.video_id, self.run_id, attempt,
                    self.max_attempts, message)
        self._abort_transaction()
        self._remove_outputs()
        if attempt >= self.max_attempts:
            self._fail(message if attempt <= 1 else f"{message} (after {attempt} attempts)")
            return
        try:
            self._hold(status=QUEUED, run_id=None, error_message=message[:4000], queued_at=utcnow())
        except Superseded:
            return
        _checkpoint(self.ctx)
        raise TransientError(f"video {self.video_id}: attempt {attempt} failed: {message}")

    def _fail(self, message: str) -> None:
        try:
            self._hold(status=FAILED, run_id=None, error_message=message[:4000], finished_at=utcnow())
        except Superseded:
            return
        video = self.ctx.session.get(Video, self.video_id)
        if video is not None:
            mark_failed(self.ctx, video, message)

    def _remove_outputs(self) -> None:
        if not self.prefix:
            return
        try:
            self.storage.delete_prefix(self.prefix)
        except Exception:  # the sweep of a later purge removes what is left
            log.warning("video %s: could not remove %s", self.video_id, self.prefix, exc_info=True)

    @property
    def storage(self) -> Any:
        from learnsail.storage import get_storage

        return get_storage(self.ctx.registry)

    def _video(self) -> Video:
        """The video, in the current transaction (a checkpoint closes the
        session: rows loaded before it are detached)."""
        return self.ctx.session.get(Video, self.video_id)

    def _process(self) -> None:
        from learnsail_video.probe import NotAVideo, ProbeUnavailable, probe

        storage = self.storage
        video = self._video()
        work_dir = self.settings.get(S.WORK_DIR) or None
        if work_dir:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="learnsail-video-", dir=work_dir) as tmp:
            tmp_path = Path(tmp)
            if not video.source_key:
                raise SourceInvalid("The video has no original in storage.")
            source = self._fetch(storage, video.source_key, tmp_path)
            try:
                found = probe(str(source), ffprobe=self.settings.get(S.FFPROBE) or "ffprobe",
                              timeout=float(self.settings.get(S.PROBE_TIMEOUT) or 60))
            except NotAVideo as exc:
                raise SourceInvalid(f"The file is not a video that can be processed: {exc.reason}") from None
            except ProbeUnavailable as exc:
                raise TransientError(str(exc)) from exc
            if not found.width or not found.height or not found.duration_ms:
                raise SourceInvalid("The file's video stream has no picture size or no duration.")
            options = options_from(self.settings)
            rungs = transcode.plan_ladder(found.width, found.height, found.rotation, levels=options.levels)
            self._record_probe(video, found, [r.quality for r in rungs])
            _checkpoint(self.ctx)
            video = None  # detached by the checkpoint

            out = tmp_path / "out"
            out.mkdir()
            result = transcode.transcode(
                source, out, width=found.width, height=found.height, duration=found.duration_ms / 1000.0,
                rotation=found.rotation, frame_rate=float(found.frame_rate) if found.frame_rate else None,
                has_audio=found.has_audio, options=options, on_progress=self.progress)
            self._store(storage, out, result)
            self._complete(self._video(), result)

    def _fetch(self, storage: Any, key: str, tmp: Path) -> Path:
        """The original as a local file (local storage: the stored file itself)."""
        if getattr(storage, "kind", "") == "local":
            path = storage.path_of(key)
            if not path.is_file():
                raise SourceInvalid("The video's original is missing from storage.")
            return path
        from learnsail.storage.backends import ObjectNotFound

        target = tmp / "source"
        try:
            with storage.open(key) as stream, open(target, "wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
        except ObjectNotFound:
            raise SourceInvalid("The video's original is missing from storage.") from None
        return target

    def _record_probe(self, video: Video, found: Any, qualities: list[str]) -> None:
        video.duration = found.duration
        video.duration_ms = found.duration_ms
        video.width, video.height = found.width, found.height
        video.video_codec, video.audio_codec = found.video_codec, found.audio_codec
        video.bitrate, video.frame_rate, video.rotation = found.bitrate, found.frame_rate, found.rotation
        video.format = found.format_name
        self._hold(qualities=qualities, input_format=found.format_name[:50],
                   input_resolution=f"{found.width}x{found.height}", input_bitrate=found.bitrate)

    def _store(self, storage: Any, out: Path, result: transcode.Result) -> None:
        import time

        files = result.files(out)
        last = time.monotonic()
        for index, relative in enumerate(files, start=1):
            path = out / relative
            with open(path, "rb") as handle:
                storage.put(self.prefix + relative, handle, length=path.stat().st_size,
                            content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
            if time.monotonic() - last >= self.heartbeat_every or index == len(files):
                last = time.monotonic()
                self.progress(97 + 2 * index / len(files))

    def _complete(self, video: Video, result: transcode.Result) -> None:
        session = self.ctx.session
        now = utcnow()
        job = session.get(TranscodeJob, self.job_id)
        elapsed = (now - job.started_at).total_seconds() if job.started_at else result.seconds
        self._hold(status=DONE, progress=100, run_id=None, finished_at=now, processing_time=elapsed,
                   error_message=None)
        previous = video.hls_prefix
        session.execute(sa.delete(Rendition).where(Rendition.job_id == self.job_id))
        for rung in result.rungs:
            session.add(Rendition(video_id=video.id, job_id=self.job_id, quality=rung.quality, width=rung.width,
                                  height=rung.height, video_bitrate=rung.video_bitrate, bandwidth=rung.bandwidth,
                                  codecs=rung.codecs[:100], playlist_key=self.prefix + rung.playlist,
                                  segments=rung.segments, size=rung.size))
        video.hls_prefix = self.prefix
        video.master_key = self.prefix + result.master
        video.mp4_key = self.prefix + result.mp4 if result.mp4 else None
        video.thumbnail_key = self.prefix + result.poster if result.poster else None
        video.sprite_key = self.prefix + result.sprite.vtt if result.sprite else None
        video.qualities = [rung.quality for rung in result.rungs]
        video.status, video.progress, video.error_message = COMPLETED, 100, None
        video.processed_at = now
        session.flush()
        _forget(session, video.id)
        if previous and previous != self.prefix:
            # viewers may hold playlists of the old outputs: remove them once those links expired
            ttl = int(self.settings.get(S.URL_TTL) or 7200) + int(video.duration or 0)
            enqueue(self.ctx, PURGE_TASK, [previous], [], countdown=ttl)
        _notify(self.ctx, video, TRANSCODE_FINISHED, f"“{video.title}” is ready",
                f"It was processed into {', '.join(q.upper() for q in video.qualities)} and can be attached to "
                f"lessons.")


def mark_failed(target: Any, video: Video, message: str) -> None:
    """The video failed processing: its status, the message, the owner told."""
    video.status, video.error_message = VIDEO_FAILED, message[:4000]
    _forget(target, video.id)
    _notify(target, video, TRANSCODE_FAILED, f"“{video.title}” could not be processed", message[:500])


def _notify(target: Any, video: Video, kind: str, title: str, content: str) -> None:
    from learnsail.notifications import notify

    notify(target, video.owner_id, kind, title[:200], content, "video.video", video.id)


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    temp = tempfile.gettempdir()
    return text.replace(temp + os.sep, "").strip()[:4000]


@task(TRANSCODE_TASK, soft_time_limit=3600, time_limit=7200, max_retries=20, background=True)
def transcode_video(ctx: TaskContext, video_id: int, job_id: int) -> None:
    """Process one video (see :mod:`learnsail_video.processing`)."""
    Run(ctx, video_id, job_id).execute()


# --- the sweeper and the purge ----------------------------------------------------------


def sweep(ctx: TaskContext, now: dt.datetime | None = None) -> dict[str, int]:
    """Requeue running jobs whose heartbeat is older than
    ``learnsail.video.stale_seconds`` (fail them when they used their runs),
    and send again jobs queued for longer than ``queued_timeout``."""
    settings = ctx.settings
    now = now or utcnow()
    stale = int(settings.get(S.STALE_SECONDS) or 120)
    limit = int(settings.get(S.MAX_ATTEMPTS) or 3)
    waited = int(settings.get(S.QUEUED_TIMEOUT) or 21600)
    session = ctx.session
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    stuck = list(session.scalars(sa.select(TranscodeJob).where(
        TranscodeJob.status == RUNNING, TranscodeJob.heartbeat_at < now - dt.timedelta(seconds=stale))
        .with_for_update()))
    for job in stuck:
        video = session.get(Video, job.video_id)
        leftovers = [job.output_prefix] if job.output_prefix else []
        if video is None or video.deleted_at is not None:
            job.status, job.run_id, job.finished_at = SUPERSEDED, None, now
        elif job.attempts >= limit:
            message = (f"Processing stopped: the worker handling it stopped responding "
                       f"(after {job.attempts} attempts).")
            job.status, job.run_id, job.finished_at, job.error_message = FAILED, None, now, message
            mark_failed(ctx, video, message)
            counts["failed"] += 1
        else:
            job.status, job.run_id, job.worker, job.queued_at = QUEUED, None, None, now
            job.error_message = "The worker handling it stopped responding; it was queued again."
            video.progress = 0
            enqueue(ctx, TRANSCODE_TASK, job.video_id, job.id)
            counts["requeued"] += 1
        if leftovers:
            enqueue(ctx, PURGE_TASK, leftovers, [])
    lost = session.scalars(sa.select(TranscodeJob).where(
        TranscodeJob.status == QUEUED, TranscodeJob.queued_at < now - dt.timedelta(seconds=waited)))
    for job in lost:
        job.queued_at = now
        enqueue(ctx, TRANSCODE_TASK, job.video_id, job.id)
        counts["resent"] += 1
    session.flush()
    if any(counts.values()):
        log.warning("video sweeper: %s", counts)
    return counts


@task(SWEEP_TASK)
def sweep_stale(ctx: TaskContext) -> dict[str, int]:
    """Requeue or fail transcodes whose worker stopped (periodic)."""
    return sweep(ctx)


@task(PURGE_TASK)
def purge_media(ctx: TaskContext, prefixes: list[str], keys: list[str]) -> int:
    """Remove a video's objects from storage: every object under
    ``prefixes`` and the objects ``keys`` (retried while the storage is
    unreachable)."""
    from learnsail.storage import get_storage
    from learnsail.storage.backends import StorageUnavailable

    storage = get_storage(ctx.registry)
    removed = 0
    try:
        for prefix in prefixes:
            if prefix and prefix.startswith("video-media/"):
                removed += storage.delete_prefix(prefix)
        for key in keys:
            if key:
                storage.delete(key)
                removed += 1
    except StorageUnavailable as exc:
        raise TransientError(str(exc)) from exc
    return removed
