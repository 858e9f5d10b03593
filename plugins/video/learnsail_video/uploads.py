"""Upload rules: upload tasks, chunks, tus PATCHes, completion, cancel,
expiry, and the hand-off to processing.

An upload task (:class:`~learnsail_video.models.UploadTask`) is created
with its video (status ``uploading``) and receives the bytes of one file:

- **chunks** (001): the client announces ``file_size``, ``file_md5``,
  ``chunk_size`` and ``total_chunks``, then sends numbered chunks in any
  order; every chunk but the last is exactly ``chunk_size`` bytes.
- **tus** (1.0): the client announces ``Upload-Length`` and appends bytes
  at the upload's offset.
- **single**: the whole file in one request (000 ``POST /videos/upload``).

When every byte is in, :func:`finish` verifies the announced MD5, checks
the content is a video (sniffing, then ffprobe), stores the whole file at
the video's ``source_key`` and hands the video to processing
(``learnsail_video.processing.start``).

Functions take a session and plain values, raise :mod:`learnsail.errors`
and never see a request.  Bytes are written to storage as they arrive
(:mod:`learnsail_video.parts`); a request that fails after writing leaves
bytes nobody counts, removed with the task's parts.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import importlib.util
import io
import logging
import math
import re
import secrets
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from learnsail.aftercommit import manager_of, on_commit, registry_of
from learnsail.db import utcnow
from learnsail.errors import APIError, Conflict, NotFound, PermissionDenied, ValidationFailed
from learnsail.storage import sniff
from learnsail.storage.backends import MAX_PARTS, LocalStorage, StorageError, new_key
from learnsail.storage.services import FileTooLarge, UnsupportedFile, clean_name

from learnsail_video import md5 as resumable_md5
from learnsail_video import probe, settings as video_settings
from learnsail_video.models import (CHUNKS, FAILED, PROCESSING, SINGLE, TASK_CANCELLED, TASK_EXPIRED,
                                    TASK_REJECTED, TASK_UPLOADED, TASK_UPLOADING, TUS, UploadPart, UploadTask,
                                    Video)
from learnsail_video.parts import PartRef, PartStore, PieceSpec, PieceWriter, part_store

log = logging.getLogger("learnsail.video")

_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
#: tus checksum algorithms (Tus-Checksum-Algorithm)
CHECKSUM_ALGORITHMS = ("md5", "sha1")
#: the ffprobe container names of video formats sniffing does not know
_PROBED_TYPES = {"mpegts": ("video/mp2t", ".ts"), "mpeg": ("video/mpeg", ".mpg"), "asf": ("video/x-ms-asf", ".wmv")}
_VIDEO_EXTENSIONS = {".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".wmv", ".vob"}


# --- errors ----------------------------------------------------------------------------

class ChunkRejected(ValidationFailed):
    """A chunk of the wrong size, an index out of range, a chunk whose MD5
    is not the one sent with it (400); it is not kept."""


class Md5Mismatch(Conflict):
    """The whole file's MD5 is not the one announced (409)."""


class NotAccepting(Conflict):
    """The task takes no more bytes (it is complete, or rejected)."""


class OffsetMismatch(Conflict):
    """tus: the PATCH does not start where the upload stands (409)."""


class ChecksumMismatch(APIError):
    """tus: the PATCH's bytes do not match its Upload-Checksum (460); they were discarded."""

    status = 460
    code = "CHECKSUM_MISMATCH"
    default_message = "The data does not match its Upload-Checksum; it was discarded."


class ProbeUnavailableError(APIError):
    """ffprobe cannot run now (missing, or too slow): nothing changed, try again."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Videos cannot be checked right now; complete the upload again later."


# --- settings ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Limits:
    max_size: int
    min_chunk: int
    max_chunk: int
    ttl_hours: int
    ffprobe: str
    probe_timeout: int

    @property
    def ttl(self) -> dt.timedelta:
        return dt.timedelta(hours=self.ttl_hours)


def limits_of(settings: Mapping[str, Any]) -> Limits:
    return Limits(int(settings[video_settings.MAX_UPLOAD_SIZE]), int(settings[video_settings.MIN_CHUNK_SIZE]),
                  int(settings[video_settings.MAX_CHUNK_SIZE]), int(settings[video_settings.UPLOAD_TTL_HOURS]),
                  str(settings[video_settings.FFPROBE]), int(settings[video_settings.PROBE_TIMEOUT]))


def _limits(session: Any) -> Limits:
    return limits_of(registry_of(session).settings)


def store_of(target: Any) -> PartStore:
    """The part store of the app's storage."""
    return part_store(registry_of(target)["learnsail.storage"])


# --- where a video belongs -------------------------------------------------------------------

def check_place(session: Any, user_id: int, course_id: int | None, chapter_id: int | None,
                may_edit: Callable[[Any], bool]) -> tuple[int | None, int | None]:
    """The course and chapter a new video names: they exist, the chapter is
    the course's (the course is the chapter's when only the chapter is
    given), and the uploader may edit the course (``may_edit(course)``:
    its teacher, or a course manager) -- else 400 or 403."""
    from learnsail_courses.models import Chapter, Course

    if chapter_id is not None:
        chapter = session.get(Chapter, chapter_id)
        if chapter is None:
            raise ValidationFailed({"chapter_id": [f"No chapter with id {chapter_id}."]})
        if course_id is not None and chapter.course_id != course_id:
            raise ValidationFailed({"chapter_id": [f"Chapter {chapter_id} is not a chapter of course {course_id}."]})
        course_id = chapter.course_id
    if course_id is None:
        return None, None
    course = session.get(Course, course_id)
    if course is None or course.deleted_at is not None:
        raise ValidationFailed({"course_id": [f"No course with id {course_id}."]})
    if not may_edit(course):
        raise PermissionDenied("You may only upload videos to your own courses.",
                               {"course_id": ["Not one of your courses."]})
    return course_id, chapter_id


# --- tasks ----------------------------------------------------------------------------------

def _default_title(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return (stem.strip() or "Video")[:100]


def expected_chunks(file_size: int, chunk_size: int) -> int:
    return max(1, math.ceil(file_size / chunk_size))


def create_task(session: Any, *, owner_id: int, protocol: str, filename: str, file_size: int,
                file_md5: str | None = None, chunk_size: int | None = None, total_chunks: int | None = None,
                title: str | None = None, description: str | None = None, course_id: int | None = None,
                chapter_id: int | None = None, may_edit: Callable[[Any], bool] = lambda course: False,
                tus_metadata: dict | None = None) -> UploadTask:
    """A new upload task and its video (``uploading``).

    Checks the size against ``learnsail.video.max_upload_size`` (413), the
    MD5's form, the chunk layout (``total_chunks`` must be
    ``ceil(file_size / chunk_size)``, ``chunk_size`` within the settings,
    at most 10,000 chunks) and the course (:func:`check_place`)."""
    limits = _limits(session)
    problems: dict[str, list[str]] = {}
    name = clean_name(filename, default="video")
    if file_size < 1 and protocol != SINGLE:
        problems["file_size"] = ["An empty file is not a video."]
    if file_size > limits.max_size:
        raise FileTooLarge(limits.max_size, "video")
    if file_md5 is not None and not _MD5.match(file_md5):
        problems["file_md5"] = ["32 hexadecimal digits (the file's MD5)."]
    if protocol == CHUNKS:
        if file_md5 is None:
            problems["file_md5"] = ["Required: the whole file's MD5, checked once every chunk is in."]
        if chunk_size is None or chunk_size > limits.max_chunk:
            problems["chunk_size"] = [f"At most {limits.max_chunk} bytes."]
        elif chunk_size < limits.min_chunk and chunk_size < file_size:
            problems["chunk_size"] = [f"At least {limits.min_chunk} bytes (unless one chunk holds the file)."]
        elif file_size >= 1:
            expected = expected_chunks(file_size, chunk_size)
            if expected > MAX_PARTS:
                problems["chunk_size"] = [f"{file_size} bytes in chunks of {chunk_size} make {expected} chunks; "
                                          f"at most {MAX_PARTS}: use larger chunks."]
            elif total_chunks != expected:
                problems["total_chunks"] = [f"{file_size} bytes in chunks of {chunk_size} make {expected} chunks, "
                                            f"not {total_chunks}."]
    if problems:
        raise ValidationFailed(problems)
    course_id, chapter_id = check_place(session, owner_id, course_id, chapter_id, may_edit)
    now = utcnow()
    video = Video(owner_id=owner_id, title=(title or _default_title(name))[:100], description=description,
                  course_id=course_id, chapter_id=chapter_id, original_filename=name, size=file_size,
                  status="uploading", progress=0, qualities=[], attempts=0)
    session.add(video)
    session.flush()
    storage = registry_of(session)["learnsail.storage"]
    task = UploadTask(token=secrets.token_urlsafe(24), owner_id=owner_id, video_id=video.id, protocol=protocol,
                      backend="local" if isinstance(storage, LocalStorage) else "s3", filename=name,
                      file_size=file_size, file_md5=file_md5.lower() if file_md5 else None,
                      chunk_size=chunk_size if protocol == CHUNKS else None,
                      total_chunks=total_chunks if protocol == CHUNKS else None, received_bytes=0,
                      received_chunks=0, md5_offset=0, status=TASK_UPLOADING, md5_failures=0,
                      expires_at=now + limits.ttl, parts_removed=False, tus_metadata=tus_metadata)
    session.add(task)
    session.flush()
    return task


def get_task(session: Any, owner_id: int, token: str, *, for_update: bool = False) -> UploadTask:
    """The caller's task ``token``; another user's, a cancelled or an
    expired one is "not found" (404)."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise NotFound("No such upload task.")
    stmt = sa.select(UploadTask).where(UploadTask.token == token)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    task = session.scalar(stmt)
    if task is None or task.owner_id != owner_id or task.status in (TASK_CANCELLED, TASK_EXPIRED):
        raise NotFound("No such upload task.")
    return task


def _lock(session: Any, task: UploadTask) -> UploadTask:
    """``task`` again, locked for this transaction (other requests on the
    same task wait), with its current values."""
    return session.scalar(sa.select(UploadTask).where(UploadTask.id == task.id).with_for_update()
                          .execution_options(populate_existing=True))


def parts_of(session: Any, task: UploadTask) -> list[UploadPart]:
    return list(session.scalars(sa.select(UploadPart).where(UploadPart.task_id == task.id)
                                .order_by(UploadPart.start)))


def _refs(parts: Sequence[UploadPart]) -> list[PartRef]:
    return [PartRef(part.number, part.start, part.size, part.object_key) for part in parts]


def _accepting(task: UploadTask) -> None:
    if task.status != TASK_UPLOADING:
        state = {TASK_UPLOADED: "complete", TASK_REJECTED: "rejected"}.get(task.status, task.status)
        raise NotAccepting(f"The upload is {state}; it takes no more data.", {"status": task.status})


def _continues_md5(task: UploadTask, start: int) -> Any:
    """The upload's MD5 continued from its saved state, when a piece
    starting at ``start`` extends it (else None: it is hashed at completion)."""
    if not task.file_md5 or task.md5_offset != start:
        return None
    if start == 0:
        return resumable_md5.ResumableMD5()
    return resumable_md5.resume(task.md5_state)


def _touch(session: Any, task: UploadTask, video: Video | None = None) -> None:
    task.expires_at = utcnow() + _limits(session).ttl
    video = video or session.get(Video, task.video_id)
    if video is not None and task.file_size:
        video.progress = min(100, task.received_bytes * 100 // task.file_size)


def _advance_md5(task: UploadTask, writer: PieceWriter) -> None:
    if writer.resumable is None or task.md5_offset != writer.spec.start:
        return
    state = writer.resumable.state()
    if state is not None:
        task.md5_state, task.md5_offset = state, writer.spec.start + writer.count


# --- chunks ---------------------------------------------------------------------------------

def chunk_size_of(task: UploadTask, index: int) -> int:
    """The size chunk ``index`` must have: ``chunk_size``, the last one the rest."""
    assert task.chunk_size is not None and task.total_chunks is not None
    if index < task.total_chunks - 1:
        return task.chunk_size
    return task.file_size - task.chunk_size * (task.total_chunks - 1)


def begin_chunk(session: Any, store: PartStore, task: UploadTask, index: int, *,
                want_md5: bool = False) -> tuple[PieceWriter, UploadPart | None]:
    """A writer for chunk ``index`` of ``task`` (400 when out of range, 409
    when the task takes no more chunks), and the chunk as already received,
    if it was: then the new copy is written aside and compared.

    The chunk's own MD5 is computed as it streams only when it will be
    needed (``want_md5``: the client sent one to compare; a copy of a chunk
    received before); otherwise only the upload's MD5 is, and the chunk's
    is read back later if ever asked for."""
    if task.protocol != CHUNKS:
        raise ChunkRejected({"task_id": ["This upload is not sent in chunks."]})
    _accepting(task)
    if not 0 <= index < (task.total_chunks or 0):
        raise ChunkRejected({"chunk_index": [f"Out of range: this upload has chunks 0 to {task.total_chunks - 1}."]})
    existing = session.get(UploadPart, (task.id, index))
    start = index * (task.chunk_size or 0)
    spec = PieceSpec(number=index, start=start, limit=chunk_size_of(task, index), replacing=existing is not None)
    resumable = None if existing is not None else _continues_md5(task, start)
    return store.writer(task.prefix, spec, resumable=resumable,
                        piece_md5=want_md5 or existing is not None), existing


@dataclasses.dataclass
class ChunkOutcome:
    duplicate: bool = False
    replaced: bool = False
    #: every chunk is in and this request changed something: time to complete
    complete: bool = False


def record_chunk(session: Any, store: PartStore, task: UploadTask, writer: PieceWriter,
                 existing: UploadPart | None, chunk_md5: str | None = None) -> ChunkOutcome:
    """Keep (or drop) what ``writer`` received for its chunk.

    - A chunk of the wrong size, or not matching ``chunk_md5`` when one was
      sent, is dropped: 400 (:class:`ChunkRejected`).
    - A chunk received before is accepted once: the same bytes again change
      nothing (``duplicate``); different bytes replace the first copy
      (``replaced``, how an upload whose MD5 did not match is repaired).
    """
    expected = writer.spec.limit
    index = writer.spec.number
    if writer.count != expected:
        store.drop(task.prefix, writer)
        raise ChunkRejected({"chunk_data": [f"Chunk {index} must hold {expected} bytes, not {writer.count}."],
                             "expected_size": expected})
    digest = writer.digest()
    if not digest and chunk_md5 is not None:
        digest = store.written_digest(task.prefix, writer)  # chunk_md5 came after the data
    if chunk_md5 is not None and chunk_md5.lower() != digest:
        store.drop(task.prefix, writer)
        raise ChunkRejected({"chunk_md5": [f"Chunk {index} arrived with MD5 {digest}, not {chunk_md5.lower()}; "
                                           "it was not kept: send it again."]})
    if existing is not None:
        if not existing.md5:
            existing.md5 = store.part_digest(task.prefix, _ref(existing))
        if existing.md5 == digest:
            store.drop(task.prefix, writer)
            return ChunkOutcome(duplicate=True)
    try:
        key = store.keep(task.prefix, writer, _ref(existing))
    except BaseException:
        store.drop(task.prefix, writer)
        raise
    task = _lock(session, task)
    outcome = ChunkOutcome()
    if existing is not None:
        old = _ref(existing)
        existing.md5, existing.object_key = digest, key
        existing.created_at = utcnow()
        on_commit(session, store.forget_replaced, old, key, what="remove a replaced chunk")
        if existing.start < task.md5_offset:
            task.md5_state, task.md5_offset = None, 0  # the saved MD5 covered the old bytes
        outcome.replaced = True
    else:
        try:
            with session.begin_nested():
                session.add(UploadPart(task_id=task.id, number=index, start=writer.spec.start, size=writer.count,
                                       md5=digest, object_key=key))
        except IntegrityError:
            # the same chunk arrived twice at once: the other request counted it
            return ChunkOutcome(duplicate=True)
        task.received_chunks += 1
        task.received_bytes += writer.count
        _advance_md5(task, writer)
    _touch(session, task)
    session.flush()
    outcome.complete = task.status == TASK_UPLOADING and task.received_chunks == task.total_chunks
    return outcome


def _ref(part: UploadPart | None) -> PartRef | None:
    return None if part is None else PartRef(part.number, part.start, part.size, part.object_key)


def missing_chunks(session: Any, task: UploadTask) -> list[int]:
    have = set(session.scalars(sa.select(UploadPart.number).where(UploadPart.task_id == task.id)))
    return [index for index in range(task.total_chunks or 0) if index not in have]


# --- tus ------------------------------------------------------------------------------------

def parse_tus_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: ``key base64value,key2 base64value,key3`` (400 when malformed)."""
    out: dict[str, str] = {}
    for item in (header or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition(" ")
        if not re.fullmatch(r"[!-~]{1,100}", key) or " " in value.strip() or key in out:
            raise ValidationFailed({"Upload-Metadata": [f"Malformed pair {item[:50]!r}: 'key base64value', "
                                                        "keys unique."]})
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (binascii.Error, UnicodeDecodeError):
            raise ValidationFailed({"Upload-Metadata": [f"The value of {key!r} is not base64 of UTF-8 text."]}) \
                from None
    return out


def _metadata_id(metadata: Mapping[str, str], name: str) -> int | None:
    value = metadata.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit() or not 1 <= int(value) <= 2 ** 31 - 1:
        raise ValidationFailed({"Upload-Metadata": [f"{name} must be a positive whole number."]})
    return int(value)


def create_tus_upload(session: Any, *, owner_id: int, length: int, metadata: Mapping[str, str],
                      may_edit: Callable[[Any], bool]) -> UploadTask:
    """A tus upload of ``length`` bytes.  Metadata the server reads:
    ``filename`` (or ``name``), ``title``, ``description``, ``course_id``,
    ``chapter_id`` and ``file_md5`` (hex; then checked at completion)."""
    title = metadata.get("title") or None
    description = metadata.get("description") or None
    problems: dict[str, list[str]] = {}
    if title is not None and len(title) > 100:
        problems["title"] = ["At most 100 characters."]
    if description is not None and len(description) > 10_000:
        problems["description"] = ["At most 10000 characters."]
    if problems:
        raise ValidationFailed(problems)
    return create_task(session, owner_id=owner_id, protocol=TUS,
                       filename=metadata.get("filename") or metadata.get("name") or "video",
                       file_size=length, file_md5=metadata.get("file_md5") or metadata.get("md5") or None,
                       title=title, description=description, course_id=_metadata_id(metadata, "course_id"),
                       chapter_id=_metadata_id(metadata, "chapter_id"), may_edit=may_edit,
                       tus_metadata=dict(metadata))


def checksum_hasher(header: str | None) -> tuple[Any, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` -> (hasher, digest),
    None without the header; 400 for an algorithm not offered or a bad value."""
    if not header:
        return None
    algorithm, _, value = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ValidationFailed({"Upload-Checksum": [f"Algorithm {algorithm!r} is not supported: use "
                                                    f"{' or '.join(CHECKSUM_ALGORITHMS)}."]})
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise ValidationFailed({"Upload-Checksum": ["The digest is not base64."]}) from None
    import hashlib

    return hashlib.new(algorithm), digest


def begin_patch(session: Any, store: PartStore, task: UploadTask, offset: int, checksum: Any = None) -> PieceWriter:
    """A writer for a tus PATCH starting at ``offset`` (409 when that is not
    where the upload stands)."""
    if task.protocol != TUS:
        raise NotAccepting("This upload is not a tus upload.", {"protocol": task.protocol})
    _accepting(task)
    if offset != task.received_bytes:
        raise OffsetMismatch(f"The upload stands at byte {task.received_bytes}, not {offset}: send from there "
                             "(HEAD tells the offset).", {"offset": task.received_bytes})
    number = session.scalar(sa.select(sa.func.count()).select_from(UploadPart)
                            .where(UploadPart.task_id == task.id)) or 0
    spec = PieceSpec(number=number, start=offset, limit=task.file_size - offset, truncate_on_drop=True)
    # a PATCH written in place needs no MD5 of its own (S3 records each piece with one)
    return store.writer(task.prefix, spec, resumable=_continues_md5(task, offset), checksum=checksum,
                        piece_md5=not store.in_place)


def record_patch(session: Any, store: PartStore, task: UploadTask, writer: PieceWriter,
                 expected_checksum: bytes | None = None) -> bool:
    """Keep what a PATCH brought (checked against its Upload-Checksum, 460
    and discarded on a mismatch) and move the offset on; True when the
    upload is now complete."""
    if expected_checksum is not None and writer.checksum is not None \
            and writer.checksum.digest() != expected_checksum:
        store.drop(task.prefix, writer)
        raise ChecksumMismatch(None, {"Upload-Checksum": ["The data received does not match it; the offset "
                                                          f"stays at {writer.spec.start}: send it again."],
                                      "offset": writer.spec.start})
    if writer.count == 0:
        writer.close()
        return False
    locked = _lock(session, task)
    if locked.received_bytes != writer.spec.start:
        # another PATCH moved the offset meanwhile: it wins
        writer.close()
        raise OffsetMismatch("Another request sent data to this upload meanwhile.", {"offset": locked.received_bytes})
    try:
        key = store.keep(task.prefix, writer)
    except BaseException:
        store.drop(task.prefix, writer)
        raise
    if key is not None:
        session.add(UploadPart(task_id=locked.id, number=writer.spec.number, start=writer.spec.start,
                               size=writer.count, md5=writer.digest(), object_key=key))
    locked.received_bytes += writer.count
    _advance_md5(locked, writer)
    _touch(session, locked)
    session.flush()
    return locked.received_bytes == locked.file_size


# --- single-request uploads -------------------------------------------------------------------

def begin_single(session: Any, store: PartStore, *, owner_id: int, filename: str) -> tuple[UploadTask, PieceWriter]:
    """A task for a file sent whole (``POST /videos/upload``), its size
    known only once it is in; the writer stops at the size limit (413)."""
    task = create_task(session, owner_id=owner_id, protocol=SINGLE, filename=filename, file_size=0)
    delete_if_aborted(session, store.storage, prefix=task.prefix)
    limit = _limits(session).max_size
    return task, store.writer(task.prefix, PieceSpec(number=0, start=0, limit=limit))


def record_single(session: Any, store: PartStore, task: UploadTask, writer: PieceWriter, *, title: str | None,
                  description: str | None, course_id: int | None, chapter_id: int | None, file_md5: str | None,
                  may_edit: Callable[[Any], bool]) -> Video:
    """The whole file is in: name its course, keep it, complete (raising on
    any problem, which leaves nothing behind)."""
    video = session.get(Video, task.video_id)
    course_id, chapter_id = check_place(session, task.owner_id, course_id, chapter_id, may_edit)
    if writer.count == 0:
        store.drop(task.prefix, writer)
        raise UnsupportedFile("The file is empty.", "application/x-empty")
    if file_md5 is not None:
        if not _MD5.match(file_md5):
            raise ValidationFailed({"file_md5": ["32 hexadecimal digits (the file's MD5)."]})
        if writer.digest() != file_md5.lower():
            store.drop(task.prefix, writer)
            raise Md5Mismatch(f"The file received has MD5 {writer.digest()}, not {file_md5.lower()}.",
                              {"file_md5": ["Does not match the file received."], "received_md5": writer.digest()})
    key = store.keep(task.prefix, writer)
    session.add(UploadPart(task_id=task.id, number=0, start=0, size=writer.count, md5=writer.digest(),
                           object_key=key))
    task.file_size = task.received_bytes = video.size = writer.count
    task.received_chunks = 1
    task.file_md5 = writer.digest()
    task.md5_state, task.md5_offset = None, 0
    if title:
        video.title = title
    video.description, video.course_id, video.chapter_id = description, course_id, chapter_id
    session.flush()
    complete(session, task, verified_md5=writer.digest())
    return video


# --- completion -----------------------------------------------------------------------------

def delete_if_aborted(session: Any, storage: Any, *, prefix: str | None = None, key: str | None = None,
                      undo: Callable[[], None] | None = None) -> None:
    """What a request wrote to storage for rows that never commit is removed again."""

    def clean(*_: Any) -> None:
        try:
            if undo is not None:
                undo()
            elif key is not None:
                storage.delete(key)
            if prefix is not None:
                storage.delete_prefix(prefix)
        except (StorageError, OSError) as exc:
            log.warning("could not remove what an aborted upload wrote (%s): %s", prefix or key, exc)

    txn = manager_of(session).get()
    txn.addAfterCommitHook(lambda committed: None if committed else clean())
    txn.addAfterAbortHook(clean)


def _whole_md5(store: PartStore, task: UploadTask, refs: list[PartRef]) -> str:
    """The file's MD5: its saved state continued over what it does not cover."""
    hasher = _continues_md5(task, task.md5_offset) if task.md5_offset else None
    start = task.md5_offset if hasher is not None else 0
    if hasher is None:
        hasher = resumable_md5.ResumableMD5()
    for block in store.read(task.prefix, refs, task.file_size, start):
        hasher.update(block)
    return hasher.hexdigest()


def _video_type(ftype: sniff.FileType, filename: str, result: probe.ProbeResult | None = None) -> tuple[str, str]:
    """(MIME type, extension) of the stored original."""
    if ftype.kind == "video":
        return ftype.mime, ftype.ext
    if result is not None and result.format_name.split(",")[0] in _PROBED_TYPES:
        return _PROBED_TYPES[result.format_name.split(",")[0]]
    ext = sniff.extension_of(filename)
    return "application/octet-stream", ext if ext in _VIDEO_EXTENSIONS else ".bin"


def complete(session: Any, task: UploadTask, *, verified_md5: str | None = None) -> Video:
    """Every byte is in: verify, check, store and hand the video over.

    1. the file's MD5 against the announced one (409 :class:`Md5Mismatch`);
    2. its content: sniffed (a PDF or a text named .mp4 is refused at once),
       then ffprobe must find a video stream (400 :class:`UnsupportedFile`
       naming the detected type);
    3. the parts become the video's original at ``source_key`` (a rename on
       local storage, a server-side compose on S3);
    4. the probe's metadata go into the video, which is handed to processing.

    Raises on the first problem and changes nothing; see :func:`finish`.
    """
    registry = registry_of(session)
    storage = registry["learnsail.storage"]
    limits = limits_of(registry.settings)
    store = part_store(storage)
    _accepting(task)
    if task.protocol == CHUNKS:
        missing = missing_chunks(session, task)
        if missing:
            raise Conflict(f"{len(missing)} chunk(s) are missing.", {"missing_chunks": missing[:100],
                                                                    "missing_count": len(missing)})
    elif task.received_bytes != task.file_size:
        raise Conflict(f"The upload holds {task.received_bytes} of {task.file_size} bytes.",
                       {"offset": task.received_bytes})
    parts = parts_of(session, task)
    refs = _refs(parts)
    if task.file_md5 and verified_md5 is None:
        digest = _whole_md5(store, task, refs)
        if digest != task.file_md5:
            raise Md5Mismatch(
                f"The file received has MD5 {digest}, not {task.file_md5}. Send the chunks again: a chunk whose "
                "content differs replaces the one received, and the upload completes once they all match.",
                {"file_md5": ["Does not match the file received."], "received_md5": digest,
                 "chunk_md5s": {str(part.number): part.md5 or store.part_digest(task.prefix, ref)
                                for part, ref in zip(parts, refs)} if task.protocol == CHUNKS else {}})
    head = store.head(task.prefix, refs, task.file_size, sniff.HEAD_SIZE)
    ftype = sniff.detect(io.BytesIO(head))
    if ftype.kind != "video" and ftype.mime != "application/octet-stream":
        raise UnsupportedFile(f"The file is {ftype.mime}, not a video.", ftype.mime)
    mime, ext = _video_type(ftype, task.filename)
    key = new_key("video", ext)

    def check(target: str) -> probe.ProbeResult:
        return probe.probe(target, ffprobe=limits.ffprobe, timeout=limits.probe_timeout)

    try:
        info, result = store.assemble(task.prefix, refs, task.file_size, key, mime, check)
    except probe.NotAVideo as exc:
        detected = ftype.mime if ftype.kind != "video" else (
            ftype.mime.replace("video/", "audio/") if exc.has_audio else exc.detected_type)
        if ftype.mime == "application/octet-stream" and exc.detected_type != "unknown":
            detected = exc.detected_type
        raise UnsupportedFile(f"Not a video: {exc.reason}", detected) from None
    except probe.ProbeUnavailable as exc:
        log.error("ffprobe unavailable: %s", exc)
        raise ProbeUnavailableError(None, {"retry_after": 30}) from None
    try:
        if ftype.kind != "video":
            mime, _ = _video_type(ftype, task.filename, result)
        video = session.get(Video, task.video_id)
        _fill(video, result, key=key, size=info.size, mime=mime)
        task.status = TASK_UPLOADED
        task.completed_at = utcnow()
        task.received_bytes = task.file_size
        task.md5_state = None
        session.flush()
        start_processing(session, video)
    except BaseException:
        store.undo_assemble(task.prefix, key)
        raise
    # only once nothing can fail any more: what follows the commit, or its abort
    if task.protocol == SINGLE:
        delete_if_aborted(session, storage, key=key)  # the task itself goes too: nothing to put back
    else:
        delete_if_aborted(session, storage, undo=lambda: store.undo_assemble(task.prefix, key))
    on_commit(session, _remove_parts, storage, task.prefix, what="remove the parts of a finished upload")
    return video


def _fill(video: Video, result: probe.ProbeResult, *, key: str, size: int, mime: str) -> None:
    video.source_key = key
    video.size = size
    video.mime_type = mime
    video.format = result.format_name
    video.duration = result.duration
    video.duration_ms = result.duration_ms
    video.width, video.height = result.width, result.height
    video.video_codec, video.audio_codec = result.video_codec, result.audio_codec
    video.bitrate = result.bitrate
    video.frame_rate = result.frame_rate
    video.rotation = result.rotation
    video.status = PROCESSING
    video.progress = 0
    video.error_message = None


def start_processing(session: Any, video: Video) -> None:
    """The hand-off: ``learnsail_video.processing.start(session, video)``
    queues the transcode (sent after the commit)."""
    video.status, video.progress = PROCESSING, 0
    if importlib.util.find_spec("learnsail_video.processing") is None:
        log.warning("video %s is uploaded but no processing module is installed", video.id)
        return
    from learnsail_video import processing

    processing.start(session, video)


def finish(session: Any, task: UploadTask) -> APIError | None:
    """:func:`complete`, keeping what the request brought when it fails: the
    error is returned (for the view to answer with) instead of raised, so the
    chunk or PATCH that made the upload whole stays counted.  A file that is
    not a video ends the task (``rejected``; its parts are removed) and the
    video is ``failed``; an MD5 mismatch leaves the task open for repair."""
    try:
        with session.begin_nested():
            complete(session, task)
    except Md5Mismatch as exc:
        task = _lock(session, task)
        task.md5_failures += 1
        session.flush()
        return exc
    except UnsupportedFile as exc:
        task = _lock(session, task)
        reject(session, task, exc.message + " " + " ".join(exc.details.get("file", [])))
        return exc
    except APIError as exc:
        return exc
    return None


def reject(session: Any, task: UploadTask, message: str) -> None:
    """The file is not a video: the task ends, its parts go, the video fails."""
    task.status = TASK_REJECTED
    task.error_message = message.strip()[:2000]
    task.completed_at = utcnow()
    video = session.get(Video, task.video_id)
    if video is not None:
        video.status, video.error_message = FAILED, task.error_message
    on_commit(session, _remove_parts, registry_of(session)["learnsail.storage"], task.prefix,
              what="remove the parts of a rejected upload")
    session.flush()


def _remove_parts(storage: Any, prefix: str) -> None:
    storage.delete_prefix(prefix)


# --- cancel and expiry ------------------------------------------------------------------------

def cancel(session: Any, task: UploadTask) -> None:
    """The uploader gives up (also tus termination): the task and its video
    are gone for the client (404 from now on), the parts leave storage
    after the commit.  A complete upload cannot be cancelled (409: delete
    the video instead)."""
    task = _lock(session, task)
    if task.status == TASK_UPLOADED:
        raise Conflict("The upload is complete; delete the video instead.", {"status": task.status})
    _end(session, task, TASK_CANCELLED, "The upload was cancelled.")
    on_commit(session, _remove_parts, registry_of(session)["learnsail.storage"], task.prefix,
              what="remove the parts of a cancelled upload")


def _end(session: Any, task: UploadTask, status: str, message: str) -> None:
    now = utcnow()
    task.status = status
    task.completed_at = task.completed_at or now
    task.md5_state = None
    video = session.get(Video, task.video_id)
    if video is not None and video.deleted_at is None and video.source_key is None:
        video.status, video.error_message, video.deleted_at = FAILED, message, now
    session.flush()


def expire_abandoned(session: Any, registry: Any, now: dt.datetime | None = None, batch: int = 200) -> dict:
    """The periodic sweep (task ``video.expire_uploads``):

    - unfinished tasks past ``expires_at`` become ``expired`` (their
      videos deleted) and their parts are removed;
    - finished tasks whose parts were not removed yet (the removal after
      their commit failed) get them removed.
    """
    now = now or utcnow()
    storage = registry["learnsail.storage"]
    expired = cleaned = 0
    for task in session.scalars(sa.select(UploadTask).where(UploadTask.status == TASK_UPLOADING,
                                                            UploadTask.expires_at < now)
                                .order_by(UploadTask.expires_at).limit(batch)):
        storage.delete_prefix(task.prefix)
        _end(session, task, TASK_EXPIRED, "The upload expired before it was complete.")
        task.parts_removed = True
        expired += 1
    settled = now - dt.timedelta(minutes=10)
    for task in session.scalars(sa.select(UploadTask).where(UploadTask.status != TASK_UPLOADING,
                                                            UploadTask.parts_removed.is_(False),
                                                            UploadTask.updated_at < settled)
                                .order_by(UploadTask.id).limit(batch)):
        storage.delete_prefix(task.prefix)
        task.parts_removed = True
        cleaned += 1
    session.flush()
    if expired or cleaned:
        log.info("upload sweep: %d expired, %d cleaned", expired, cleaned)
    return {"expired": expired, "cleaned": cleaned}


def erase_user(session: Any, user_id: int) -> int:
    """``learnsail_user_erased``: the account's unfinished uploads are
    cancelled (their parts removed after the commit) and its upload tasks
    deleted (file names are personal data; the videos stay with their
    courses, which the media side decides about).  Returns how many."""
    storage = registry_of(session)["learnsail.storage"]
    tasks = list(session.scalars(sa.select(UploadTask).where(UploadTask.owner_id == user_id)))
    for task in tasks:
        if task.status == TASK_UPLOADING:
            _end(session, task, TASK_CANCELLED, "The uploader's account was erased.")
        if not task.parts_removed:
            on_commit(session, _remove_parts, storage, task.prefix, what="remove the parts of an erased user")
        session.delete(task)
    session.flush()
    return len(tasks)


def export_user(session: Any, user_id: int) -> list[dict]:
    """``learnsail_user_export``: the account's upload tasks."""
    return [{"task_id": task.token, "video_id": task.video_id, "protocol": task.protocol, "filename": task.filename,
             "file_size": task.file_size, "status": task.status, "created_at": task.created_at.isoformat(),
             "completed_at": task.completed_at.isoformat() if task.completed_at else None}
            for task in session.scalars(sa.select(UploadTask).where(UploadTask.owner_id == user_id)
                                        .order_by(UploadTask.id))]


# --- what clients see -----------------------------------------------------------------------------

def transcode_jobs(session: Any, video: Video | None) -> list[dict]:
    """001's ``transcode_jobs`` (``learnsail_video.processing.jobs_of``;
    empty until processing starts)."""
    if video is None or importlib.util.find_spec("learnsail_video.processing") is None:
        return []
    from learnsail_video import processing

    jobs_of = getattr(processing, "jobs_of", None)
    return jobs_of(session, video) if jobs_of is not None else []


def public_status(task: UploadTask, video: Video | None) -> str:
    """001's upload status: uploading, processing, completed or failed."""
    if task.status == TASK_UPLOADING:
        return "uploading"
    if task.status == TASK_UPLOADED and video is not None:
        return video.status
    return FAILED


def upload_progress(task: UploadTask) -> int:
    if task.status == TASK_UPLOADED:
        return 100
    return min(100, task.received_bytes * 100 // task.file_size) if task.file_size else 0
