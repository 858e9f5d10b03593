"""tus 1.0 (https://tus.io/protocols/resumable-upload) over the upload
tasks: the core protocol and the creation, checksum, termination and
expiration extensions, so standard clients (tus-js-client, Uppy, tuspy)
upload videos.

- ``OPTIONS /api/v1/videos/tus``: what the server speaks.
- ``POST /api/v1/videos/tus``: create an upload (``Upload-Length``,
  ``Upload-Metadata``) -> 201 with its ``Location``.
- ``HEAD /api/v1/videos/tus/{task_id}``: ``Upload-Offset``, ``Upload-Length``.
- ``PATCH /api/v1/videos/tus/{task_id}``: append at ``Upload-Offset``
  (``application/offset+octet-stream``, optional ``Upload-Checksum``).
- ``DELETE /api/v1/videos/tus/{task_id}``: terminate.

Every response carries ``Tus-Resumable: 1.0.0``, errors included (they
use the usual envelope).  Signing in is the Bearer token, as everywhere.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate
from pyramid.events import NewResponse
from pyramid.response import Response

from learnsail import errors
from learnsail.api import PUBLIC, Service
from learnsail.api.errorviews import render_envelope
from learnsail.api.validation import Schema
from learnsail.storage.services import FileTooLarge

from learnsail_courses import api as courses
from learnsail_video import uploads
from learnsail_video.parts import PieceTooLarge
from learnsail_video.permissions import UPLOAD
from learnsail_video.views.uploads import TOKEN, TaskPath

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination,expiration"
TUS_PATH = "/api/v1/videos/tus"
OFFSET_TYPE = "application/offset+octet-stream"


class PreconditionFailed(errors.APIError):
    status = 412
    code = "PRECONDITION_FAILED"
    default_message = "This server speaks tus 1.0.0 only."


class TusPath(TaskPath):
    task_id = fields.String(required=True, validate=validate.Regexp(TOKEN))


class TusPatchBody(Schema):
    """A PATCH body: the bytes from Upload-Offset on (documentation)."""

    data = fields.Raw(metadata={"type": "string", "format": "binary"})


def _require_tus(request: Any) -> None:
    version = request.headers.get("Tus-Resumable")
    if version != TUS_VERSION:
        raise PreconditionFailed(None, {"Tus-Resumable": [f"Send Tus-Resumable: {TUS_VERSION}."]},
                                 headers={"Tus-Version": TUS_VERSION})


def _int_header(request: Any, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None or not raw.strip().isdigit():
        raise errors.ValidationFailed({name: ["Required: a whole number of bytes."]})
    return int(raw)


def _expires(task: Any) -> str:
    from email.utils import format_datetime

    return format_datetime(task.expires_at, usegmt=True)


def _offset_response(task: Any, status: int = 204) -> Response:
    response = Response(status=status)
    response.headers.update({"Upload-Offset": str(task.received_bytes), "Upload-Expires": _expires(task)})
    return response


collection = Service(name="video.tus", path=TUS_PATH, description="tus 1.0 uploads of videos.")
item = Service(name="video.tus_upload", path=TUS_PATH + "/{task_id}", description="One tus upload.")


@collection.options(permission=PUBLIC, responses={204: (None, "Tus-Version, Tus-Extension, Tus-Max-Size, "
                                                               "Tus-Checksum-Algorithm.")})
def tus_options(request: Any) -> Response:
    """What this tus server speaks: version 1.0.0, the creation, checksum,
    termination and expiration extensions, md5 and sha1 checksums, and the
    largest upload (``learnsail.video.max_upload_size``)."""
    response = Response(status=204)
    response.headers.update({
        "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(uploads.limits_of(request.registry.settings).max_size),
        "Tus-Checksum-Algorithm": ",".join(uploads.CHECKSUM_ALGORITHMS),
    })
    return response


@collection.post(permission=UPLOAD, errors=(403, 412, 413),
                 responses={201: (None, "Location: the upload's URL; Upload-Expires.")})
def tus_create(request: Any) -> Response:
    """Create a tus upload (creation extension).

    ``Upload-Length`` (required; 413 past ``Tus-Max-Size``; deferred lengths
    are not supported) and ``Upload-Metadata``: ``filename``, ``title``,
    ``description``, ``course_id``, ``chapter_id`` (one of the caller's
    courses) and ``file_md5``.  The upload is an upload task like the
    chunked ones: ``GET /api/v1/videos/upload/status/{task_id}`` shows it.
    """
    _require_tus(request)
    if request.headers.get("Upload-Defer-Length"):
        raise errors.ValidationFailed({"Upload-Defer-Length": ["Not supported: send Upload-Length."]})
    length = _int_header(request, "Upload-Length")
    metadata = uploads.parse_tus_metadata(request.headers.get("Upload-Metadata"))
    task = uploads.create_tus_upload(request.db, owner_id=request.identity.id, length=length, metadata=metadata,
                                     may_edit=lambda course: courses.may_edit(request, course))
    response = Response(status=201)
    response.headers.update({"Location": request.route_url("video.tus_upload", task_id=task.token),
                             "Upload-Expires": _expires(task), "Upload-Offset": "0"})
    return response


@item.options(permission=PUBLIC, schema={"path": TusPath}, responses={204: None})
def tus_item_options(request: Any) -> Response:
    """As ``OPTIONS /api/v1/videos/tus``."""
    return tus_options(request)


@item.decorator("HEAD", permission=UPLOAD, schema={"path": TusPath}, errors=(412,),
           responses={200: (None, "Upload-Offset, Upload-Length, Upload-Metadata; Cache-Control: no-store.")})
def tus_head(request: Any) -> Response:
    """Where the upload stands: ``Upload-Offset`` is where the next PATCH
    starts.  Another user's upload is 404."""
    _require_tus(request)
    task = uploads.get_task(request.db, request.identity.id, request.validated["path"]["task_id"])
    if task.protocol != "tus":
        raise errors.NotFound("No such tus upload.")
    response = Response(status=200)
    response.headers.update({"Upload-Offset": str(task.received_bytes), "Upload-Length": str(task.file_size),
                             "Upload-Expires": _expires(task), "Cache-Control": "no-store"})
    if task.tus_metadata:
        import base64

        response.headers["Upload-Metadata"] = ",".join(
            f"{key} {base64.b64encode(str(value).encode()).decode()}" for key, value in task.tus_metadata.items())
    return response


@item.patch(permission=UPLOAD, schema={"path": TusPath}, errors=(409, 412, 413, 415, 460),
            request_body={OFFSET_TYPE: TusPatchBody},
            responses={204: (None, "The new Upload-Offset (and Upload-Expires).")})
def tus_patch(request: Any) -> Any:
    """Append to the upload from ``Upload-Offset`` (core protocol).

    ``Content-Type: application/offset+octet-stream`` (else 415); 409 when
    ``Upload-Offset`` is not where the upload stands; with
    ``Upload-Checksum: sha1|md5 <base64>``, data that does not match is
    discarded and answered 460.  The PATCH that completes the upload also
    checks it (MD5 when ``file_md5`` was given: 409; not a video: 400).
    """
    _require_tus(request)
    if request.content_type != OFFSET_TYPE:
        _unsupported(f"Send the data as {OFFSET_TYPE}.")
    offset = _int_header(request, "Upload-Offset")
    task = uploads.get_task(request.db, request.identity.id, request.validated["path"]["task_id"])
    checksum = uploads.checksum_hasher(request.headers.get("Upload-Checksum"))
    length = request.content_length
    if task.status == "uploaded" and offset == task.file_size and not length:
        return _offset_response(task)
    store = uploads.store_of(request)
    writer = uploads.begin_patch(request.db, store, task, offset, checksum[0] if checksum else None)
    if length is not None and length > writer.spec.limit:
        store.drop(task.prefix, writer)
        raise FileTooLarge(task.file_size)
    try:
        writer.copy_from(request.body_file, length)
    except PieceTooLarge:
        store.drop(task.prefix, writer)
        raise FileTooLarge(task.file_size) from None
    except BaseException:
        store.drop(task.prefix, writer)
        raise
    done = uploads.record_patch(request.db, store, task, writer, checksum[1] if checksum else None)
    failure = uploads.finish(request.db, task) if done else None
    if failure is not None:
        return render_envelope(request, failure.status, failure.code, failure.message, failure.details,
                               failure.headers)
    return _offset_response(task)


def _unsupported(message: str) -> None:
    from learnsail.storage.views import UnsupportedMediaType

    raise UnsupportedMediaType(message, {"Content-Type": [message]})


@item.delete(permission=UPLOAD, schema={"path": TusPath}, errors=(409, 412), responses={204: None})
def tus_delete(request: Any) -> Response:
    """Terminate the upload (termination extension): its data is removed and
    it is gone (404 from now on)."""
    _require_tus(request)
    task = uploads.get_task(request.db, request.identity.id, request.validated["path"]["task_id"])
    uploads.cancel(request.db, task)
    return Response(status=204)


#: the headers a browser client (tus-js-client, Uppy) must be able to read
EXPOSED = ("Location", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires", "Tus-Resumable",
           "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm")


def add_tus_resumable(event: Any) -> None:
    """``Tus-Resumable`` on every response of the tus endpoint, errors too;
    for a browser on an allowed origin, the tus headers are exposed."""
    request = event.request
    if request.path == TUS_PATH or request.path.startswith(TUS_PATH + "/"):
        headers = event.response.headers
        headers["Tus-Resumable"] = TUS_VERSION
        if "Access-Control-Allow-Origin" in headers:
            exposed = [name.strip() for name in headers.get("Access-Control-Expose-Headers", "").split(",")
                       if name.strip()]
            headers["Access-Control-Expose-Headers"] = ", ".join(exposed + [h for h in EXPOSED if h not in exposed])


SERVICES = (collection, item)


def includeme(config: Any) -> None:
    limits = uploads.limits_of(config.get_settings())
    # a PATCH carries at most the rest of its upload; the view stops there
    config.registry.setdefault("learnsail.body_limits", {})[TUS_PATH + "/"] = limits.max_size
    config.add_subscriber(add_tus_resumable, NewResponse)
