"""Uploads: 000 §六 八 ``POST /api/v1/videos/upload`` (the whole file in one
request) and 001's chunked, resumable upload tasks (``/api/v1/videos/upload/
init``, ``/chunk``, ``/status/{task_id}``, ``/complete``, cancel).  The
tus endpoint over the same tasks is in :mod:`.tus`.

Views read the multipart bodies themselves (streamed, never held in
memory) and call :mod:`learnsail_video.uploads`.
"""

from __future__ import annotations

from typing import Any

import marshmallow
import sqlalchemy as sa
from marshmallow import fields, validate

from learnsail import errors
from learnsail.api import Service, no_content, page_of
from learnsail.api.errorviews import render_envelope
from learnsail.api.validation import Id, QuerySchema, Schema, _flatten
from learnsail.db.pagination import MAX_PAGE, paginate
from learnsail.storage import multipart
from learnsail.storage.services import FileTooLarge
from learnsail.storage.views import FORM_OVERHEAD, UnsupportedMediaType

from learnsail_courses import api as courses
from learnsail_video import uploads
from learnsail_video.models import TASK_STATUSES, UploadPart, UploadTask, Video
from learnsail_video.parts import PieceTooLarge
from learnsail_video.permissions import UPLOAD

UPLOAD_PATH = "/api/v1/videos/upload"
CHUNK_PATH = "/api/v1/videos/upload/chunk"
TOKEN = r"^[A-Za-z0-9_-]{16,64}$"


# --- schemas ----------------------------------------------------------------------------------

class PlaceFields(Schema):
    title = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(validate=validate.Length(max=10_000), allow_none=True)
    course_id = Id(allow_none=True)
    chapter_id = Id(allow_none=True)


class SingleFields(PlaceFields):
    """The form fields sent beside ``file``."""

    file_md5 = fields.String(validate=validate.Regexp(r"^[0-9a-fA-F]{32}$"),
                             metadata={"description": "Optional: the file's MD5, checked (409 when it differs)."})


class SingleForm(SingleFields):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "The video (its type is read from the content)."})


class VideoUploadedSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    file_name = fields.String()
    size = fields.Integer()
    status = fields.String(metadata={"description": "processing: every byte is in and ffprobe found a video; "
                                                    "processing has been queued."})
    progress = fields.Integer()
    mime_type = fields.String()
    format = fields.String()
    duration = fields.Integer(allow_none=True)
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    course_id = fields.Integer(allow_none=True)
    chapter_id = fields.Integer(allow_none=True)
    task_id = fields.String()
    created_at = fields.DateTime()


class InitSchema(PlaceFields):
    filename = fields.String(required=True, validate=validate.Length(min=1, max=255))
    file_size = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    file_md5 = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-fA-F]{32}$"))
    chunk_size = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    total_chunks = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class ChunkFields(Schema):
    task_id = fields.String(required=True, validate=validate.Regexp(TOKEN))
    chunk_index = fields.Integer(required=True, validate=validate.Range(min=0, max=10_000))
    chunk_md5 = fields.String(validate=validate.Regexp(r"^[0-9a-fA-F]{32}$"))


class ChunkForm(ChunkFields):
    chunk_data = fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "The chunk's bytes: chunk_size of them, the last chunk the rest. Send task_id and "
                       "chunk_index before it."})


class TaskPath(Schema):
    task_id = fields.String(required=True, validate=validate.Regexp(TOKEN))


class CompleteSchema(Schema):
    task_id = fields.String(required=True, validate=validate.Regexp(TOKEN))


class TaskQuery(QuerySchema):
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    page = fields.Integer(validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(validate=validate.Range(min=1))


class TaskSchema(Schema):
    task_id = fields.String(metadata={"description": "Unguessable; names the task in every other call."})
    video_id = fields.Integer()
    protocol = fields.String(metadata={"description": "chunks, tus or single"})
    status = fields.String(metadata={"description": "001's: uploading, processing, completed or failed."})
    task_status = fields.String(metadata={"description": ", ".join(TASK_STATUSES)})
    progress = fields.Integer(metadata={"description": "0-100: of the upload while uploading, of processing "
                                                       "after."})
    upload_progress = fields.Integer()
    filename = fields.String()
    file_size = fields.Integer()
    file_md5 = fields.String(allow_none=True)
    chunk_size = fields.Integer(allow_none=True)
    total_chunks = fields.Integer(allow_none=True)
    uploaded_count = fields.Integer()
    received_bytes = fields.Integer()
    error_message = fields.String(allow_none=True)
    expires_at = fields.DateTime()
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)


class TaskStatusSchema(TaskSchema):
    uploaded_chunks = fields.List(fields.Integer(), metadata={
        "description": "Indexes of the chunks received, ascending: send the others to resume."})
    transcode_jobs = fields.List(fields.Dict(), metadata={"description": "001's transcode jobs (empty until "
                                                                         "processing starts)."})


class TaskCreatedSchema(TaskStatusSchema):
    upload_url = fields.String(metadata={"description": "Where to POST the chunks."})
    status_url = fields.String()
    complete_url = fields.String()
    cancel_url = fields.String()


class ChunkResultSchema(Schema):
    task_id = fields.String()
    chunk_index = fields.Integer()
    duplicate = fields.Boolean(metadata={"description": "The chunk was received before with the same bytes: "
                                                        "accepted once, nothing changed."})
    replaced = fields.Boolean(metadata={"description": "The chunk was received before with other bytes, which "
                                                       "these replace."})
    progress = fields.Integer()
    uploaded_chunks = fields.Integer(metadata={"description": "How many chunks are in (001)."})
    total_chunks = fields.Integer()
    status = fields.String()
    video_id = fields.Integer()


# --- helpers ------------------------------------------------------------------------------------

def _may_edit(request: Any) -> Any:
    return lambda course: courses.may_edit(request, course)


def _load(schema: type[Schema], data: dict, form: multipart.Form | None = None) -> dict:
    try:
        return schema().load(data)
    except marshmallow.ValidationError as exc:
        if form is not None:
            form.close()
        raise errors.ValidationFailed(_flatten(exc.messages)) from None


def _form_error(exc: multipart.FormError) -> errors.APIError:
    if exc.field == "content_type":
        return UnsupportedMediaType(str(exc), {"content_type": [str(exc)]})
    return errors.ValidationFailed({exc.field: [str(exc)]})


def task_out(request: Any, task: UploadTask, video: Video | None, *, numbers: list[int] | None = None,
             jobs: list[dict] | None = None) -> dict:
    out = {
        "task_id": task.token, "video_id": task.video_id, "protocol": task.protocol,
        "status": uploads.public_status(task, video), "task_status": task.status,
        "progress": uploads.upload_progress(task) if task.status != "uploaded" or video is None else video.progress,
        "upload_progress": uploads.upload_progress(task), "filename": task.filename, "file_size": task.file_size,
        "file_md5": task.file_md5, "chunk_size": task.chunk_size, "total_chunks": task.total_chunks,
        "uploaded_count": task.received_chunks, "received_bytes": task.received_bytes,
        "error_message": task.error_message or (video.error_message if video is not None else None),
        "expires_at": task.expires_at, "created_at": task.created_at, "completed_at": task.completed_at,
    }
    if numbers is not None:
        out["uploaded_chunks"] = numbers
    if jobs is not None:
        out["transcode_jobs"] = jobs
    return out


def status_out(request: Any, task: UploadTask) -> dict:
    """The full status of a task: four queries whatever its number of chunks."""
    video = request.db.get(Video, task.video_id)
    numbers = list(request.db.scalars(sa.select(UploadPart.number).where(UploadPart.task_id == task.id)
                                      .order_by(UploadPart.number))) if task.protocol == "chunks" else []
    return task_out(request, task, video, numbers=numbers, jobs=uploads.transcode_jobs(request.db, video))


def video_uploaded_out(video: Video, task: UploadTask) -> dict:
    return {"id": video.id, "title": video.title, "file_name": video.original_filename, "size": video.size,
            "status": video.status, "progress": video.progress, "mime_type": video.mime_type,
            "format": video.format, "duration": video.duration, "width": video.width, "height": video.height,
            "course_id": video.course_id, "chapter_id": video.chapter_id, "task_id": task.token,
            "created_at": video.created_at}


# --- services ------------------------------------------------------------------------------------

upload = Service(name="video.upload", path=UPLOAD_PATH, description="Upload a video in one request.")
upload_init = Service(name="video.upload_init", path="/api/v1/videos/upload/init",
                      description="Start a chunked, resumable upload.")
upload_chunk = Service(name="video.upload_chunk", path=CHUNK_PATH, description="Send one chunk of an upload.")
upload_complete = Service(name="video.upload_complete", path="/api/v1/videos/upload/complete",
                          description="Complete a chunked upload.")
upload_tasks = Service(name="video.upload_tasks", path="/api/v1/videos/upload/tasks",
                       description="The caller's upload tasks.")
upload_status = Service(name="video.upload_status", path="/api/v1/videos/upload/status/{task_id}",
                        description="Where an upload stands.")
upload_task = Service(name="video.upload_task", path="/api/v1/videos/upload/{task_id}",
                      description="One upload task.")


@upload.post(permission=UPLOAD, request_body={"multipart/form-data": SingleForm}, errors=(400, 409, 413, 415, 503),
             responses={201: (VideoUploadedSchema, "Every byte is in and ffprobe found a video: status "
                                                   "processing.")})
def upload_video(request: Any) -> dict:
    """Upload a video in one request (000).

    multipart/form-data with the video in ``file``; optional fields
    ``title`` (default: the file name), ``description``, ``course_id``,
    ``chapter_id`` (one of the caller's courses) and ``file_md5``.  The
    file is streamed to storage as it arrives (413 past
    ``learnsail.video.max_upload_size``), then checked by its content: 400
    naming the detected type when it is not a video.  The answer comes once
    the video is stored and probed, so its ``status`` is ``processing``.
    For large files prefer the chunked or tus uploads, which resume.
    """
    store = uploads.store_of(request)
    state: dict[str, Any] = {}

    def sink(form: multipart.Form, name: str, filename: str, content_type: str) -> Any:
        task, writer = uploads.begin_single(request.db, store, owner_id=request.identity.id, filename=filename)
        state.update(task=task, writer=writer)
        return writer

    limit = uploads.limits_of(request.registry.settings).max_size
    try:
        form = multipart.read_form(request.body_file, request.headers.get("Content-Type", ""),
                                   request.content_length, file_fields=("file",), max_file_size=limit,
                                   file_sink=sink)
    except (multipart.FormTooLarge, PieceTooLarge):
        raise FileTooLarge(limit, "video") from None
    except multipart.FormError as exc:
        raise _form_error(exc) from None
    if "file" not in form.files:
        raise errors.ValidationFailed({"file": ["Send the video in the multipart field 'file'."]})
    values = _load(SingleFields, form.fields, form)
    video = uploads.record_single(request.db, store, state["task"], state["writer"], title=values.get("title"),
                                  description=values.get("description"), course_id=values.get("course_id"),
                                  chapter_id=values.get("chapter_id"), file_md5=values.get("file_md5"),
                                  may_edit=_may_edit(request))
    request.response.status = 201
    return video_uploaded_out(video, state["task"])


@upload_init.post(permission=UPLOAD, schema=InitSchema, errors=(403, 413),
                  responses={201: (TaskCreatedSchema, "The task: send its chunks.")})
def init_upload(request: Any) -> dict:
    """Start a chunked upload (001).

    ``filename``, ``file_size`` (at most ``learnsail.video.max_upload_size``,
    else 413), ``file_md5`` (checked once every chunk is in),
    ``chunk_size`` and ``total_chunks`` (which must be
    ``ceil(file_size / chunk_size)``); optional ``title``, ``description``,
    ``course_id``, ``chapter_id`` (the caller's own course, or any for course
    managers).  The answer names the task (``task_id``, unguessable) and
    where to send its chunks; it expires ``learnsail.video.upload_ttl_hours``
    after the last chunk received.
    """
    body = request.validated["body"]
    task = uploads.create_task(
        request.db, owner_id=request.identity.id, protocol="chunks", filename=body["filename"],
        file_size=body["file_size"], file_md5=body["file_md5"], chunk_size=body["chunk_size"],
        total_chunks=body["total_chunks"], title=body.get("title"), description=body.get("description"),
        course_id=body.get("course_id"), chapter_id=body.get("chapter_id"), may_edit=_may_edit(request))
    request.response.status = 201
    out = task_out(request, task, request.db.get(Video, task.video_id), numbers=[], jobs=[])
    out.update(upload_url=request.route_url("video.upload_chunk"),
               status_url=request.route_url("video.upload_status", task_id=task.token),
               complete_url=request.route_url("video.upload_complete"),
               cancel_url=request.route_url("video.upload_task", task_id=task.token))
    return out


@upload_chunk.post(permission=UPLOAD, request_body={"multipart/form-data": ChunkForm},
                   errors=(400, 404, 409, 413, 415, 503),
                   responses={200: (ChunkResultSchema, "The chunk is counted (or was already).")})
def upload_chunk_view(request: Any) -> Any:
    """Send one chunk (001).

    multipart/form-data: ``task_id``, ``chunk_index`` (from 0), then
    ``chunk_data`` (the fields first: the chunk is written straight to its
    place as it arrives); optional ``chunk_md5``.  Every chunk is
    ``chunk_size`` bytes but the last; a chunk of another size or an index
    out of range is 400 and is not kept, and so is a chunk not matching its
    ``chunk_md5``.  A chunk sent again with the same bytes is accepted once
    (``duplicate``); with other bytes it replaces the first copy.  The
    chunk that makes the file whole completes the upload: its answer is
    then 409 when the file's MD5 does not match (the chunks stay: send the
    wrong ones again), or 400 when the file is not a video.
    """
    store = uploads.store_of(request)
    state: dict[str, Any] = {}

    def sink(form: multipart.Form, name: str, filename: str, content_type: str) -> Any:
        missing = [field for field in ("task_id", "chunk_index") if field not in form.fields]
        if missing:
            raise multipart.FormError(f"Send {' and '.join(missing)} before chunk_data.", missing[0])
        values = _load(ChunkFields, {k: v for k, v in form.fields.items() if k in ("task_id", "chunk_index")})
        task = uploads.get_task(request.db, request.identity.id, values["task_id"])
        writer, existing = uploads.begin_chunk(request.db, store, task, values["chunk_index"],
                                               want_md5="chunk_md5" in form.fields)
        state.update(task=task, writer=writer, existing=existing)
        return writer

    limit = uploads.limits_of(request.registry.settings).max_chunk
    try:
        form = multipart.read_form(request.body_file, request.headers.get("Content-Type", ""),
                                   request.content_length, file_fields=("chunk_data",), max_file_size=limit,
                                   file_sink=sink)
    except PieceTooLarge as exc:
        store.drop(state["task"].prefix, state["writer"])
        raise uploads.ChunkRejected({"chunk_data": [f"Chunk {state['writer'].spec.number} must hold {exc.limit} "
                                                    "bytes; more arrived."], "expected_size": exc.limit}) from None
    except multipart.FormTooLarge as exc:
        raise FileTooLarge(exc.limit) from None
    except multipart.FormError as exc:
        if "writer" in state:
            store.drop(state["task"].prefix, state["writer"])
        raise _form_error(exc) from None
    if "chunk_data" not in form.files:
        raise errors.ValidationFailed({"chunk_data": ["Send the chunk in the multipart field 'chunk_data'."]})
    try:
        values = _load(ChunkFields, form.fields)
    except errors.APIError:
        store.drop(state["task"].prefix, state["writer"])
        raise
    task = state["task"]
    outcome = uploads.record_chunk(request.db, store, task, state["writer"], state["existing"],
                                   chunk_md5=values.get("chunk_md5"))
    failure = uploads.finish(request.db, task) if outcome.complete else None
    video = request.db.get(Video, task.video_id)
    if failure is not None:
        # the chunk is counted: the answer is the completion's problem
        return render_envelope(request, failure.status, failure.code, failure.message, failure.details,
                               failure.headers)
    return {"task_id": task.token, "chunk_index": values["chunk_index"], "duplicate": outcome.duplicate,
            "replaced": outcome.replaced, "progress": uploads.upload_progress(task),
            "uploaded_chunks": task.received_chunks, "total_chunks": task.total_chunks,
            "status": uploads.public_status(task, video), "video_id": task.video_id}


@upload_complete.post(permission=UPLOAD, schema=CompleteSchema, errors=(404, 409, 503),
                      responses={200: (TaskStatusSchema, "Complete: the video is processing.")})
def complete_upload(request: Any) -> Any:
    """Complete a chunked upload explicitly (the chunk that makes the file
    whole does it already; call this after replacing chunks, or after a 503).
    A complete upload answers its status again.

    409 when chunks are missing (``missing_chunks``) or the file's MD5 does
    not match; 400 when it is not a video (the task then ends as failed).
    """
    task = uploads.get_task(request.db, request.identity.id, request.validated["body"]["task_id"])
    if task.status == "uploaded":
        return status_out(request, task)  # done already (the last chunk's answer was lost?): say so again
    failure = uploads.finish(request.db, task)
    if failure is not None:
        return render_envelope(request, failure.status, failure.code, failure.message, failure.details,
                               failure.headers)
    return status_out(request, task)


@upload_tasks.get(permission=UPLOAD, schema={"querystring": TaskQuery}, responses={200: page_of(TaskSchema)})
def list_upload_tasks(request: Any) -> dict:
    """The caller's upload tasks, newest first (``status`` filters), e.g. to
    find an unfinished one to resume."""
    query = request.validated["querystring"]
    stmt = (sa.select(UploadTask, Video).join(Video, Video.id == UploadTask.video_id)
            .where(UploadTask.owner_id == request.identity.id,
                   UploadTask.status.not_in(("cancelled", "expired")))
            .order_by(UploadTask.created_at.desc(), UploadTask.id.desc()))
    if query.get("status"):
        stmt = stmt.where(UploadTask.status == query["status"])
    return paginate(request, request.db, stmt, lambda row: task_out(request, row[0], row[1]), scalars=False)


@upload_status.get(permission=UPLOAD, schema={"path": TaskPath}, responses={200: TaskStatusSchema})
def get_upload_status(request: Any) -> dict:
    """Where an upload stands (001): ``uploaded_chunks`` (the indexes
    received, to resume: send the others), ``progress``, ``status``
    (uploading, processing, completed, failed) and ``transcode_jobs``.
    Another user's task is 404."""
    task = uploads.get_task(request.db, request.identity.id, request.validated["path"]["task_id"])
    return status_out(request, task)


@upload_task.delete(permission=UPLOAD, schema={"path": TaskPath}, errors=(409,), responses={204: None})
def cancel_upload(request: Any) -> Any:
    """Cancel an upload: its chunks are removed from storage (after the
    commit) and the task is gone (404 from now on).  409 once it is complete."""
    task = uploads.get_task(request.db, request.identity.id, request.validated["path"]["task_id"])
    uploads.cancel(request.db, task)
    return no_content(request)


SERVICES = (upload, upload_init, upload_chunk, upload_complete, upload_tasks, upload_status, upload_task)


def includeme(config: Any) -> None:
    """The upload routes read their bodies as streams and stop at their own limits."""
    limits = uploads.limits_of(config.get_settings())
    body_limits = config.registry.setdefault("learnsail.body_limits", {})
    body_limits[UPLOAD_PATH] = limits.max_size + FORM_OVERHEAD
    body_limits[CHUNK_PATH] = limits.max_chunk + FORM_OVERHEAD
