"""HTTP endpoints of the storage service.

- ``POST /api/v1/upload/image``, ``POST /api/v1/upload/file`` (000 §六 七):
  multipart field ``file``; 201 with ``file_url``, ``file_name``,
  ``file_size``, ``mime_type`` (and the rest of the file's record).
- ``GET /api/v1/files`` (one's own; admins everyone's), ``GET|PATCH|PUT|DELETE
  /api/v1/files/{id}``, ``GET /api/v1/files/{id}/download`` and ``/preview``
  (302 to a signed URL, or ``?redirect=false`` for JSON) (004 §2.9).
- ``POST /api/v1/users/me/avatar``: a new avatar.
- ``GET /api/v1/storage/{token}``: what a local-storage signed URL points at.

Who may do what is decided by :class:`FileResource`'s ACL: the owner reads
and changes; then a plugin's ``learnsail_file_access`` answer for attached
files, else the visibility (reading only); admins by their role.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator

import marshmallow
import sqlalchemy as sa
from marshmallow import fields, validate
from pyramid.authorization import Allow, Everyone
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response

from learnsail import errors
from learnsail.api import PUBLIC, Service, no_content, page_of
from learnsail.api.validation import MAX_ID, Id, QuerySchema, Schema, _flatten
from learnsail.db.pagination import MAX_PAGE, paginate
from learnsail.identity.acl import Resource, owner_acl
from learnsail.storage import KINDS, multipart, services
from learnsail.storage.backends import (CHUNK_SIZE, InvalidKey, LocalStorage, ObjectNotFound,
                                        StorageUnavailable, content_disposition)
from learnsail.storage.models import VISIBILITIES, StoredFile
from learnsail.storage.signing import ExpiredToken, InvalidToken

log = logging.getLogger("learnsail.storage")

UPLOAD = "core:files:upload"
VIEW = "core:files:view"
MANAGE = "core:files:manage"
SELF = "core:account:self"
#: room for the multipart framing and the small fields around the file
FORM_OVERHEAD = 64 * 1024

UPLOAD_IMAGE_PATH = "/api/v1/upload/image"
UPLOAD_FILE_PATH = "/api/v1/upload/file"
AVATAR_PATH = "/api/v1/users/me/avatar"


# --- schemas -------------------------------------------------------------------------

class FileOutSchema(Schema):
    id = fields.Integer()
    file_url = fields.String(metadata={"description": "Stable URL of the file: GET it (with a token unless the "
                                                      "file is public) to be redirected to a signed URL."})
    file_name = fields.String()
    file_size = fields.Integer(metadata={"description": "Bytes (as stored: images are re-encoded)."})
    mime_type = fields.String(metadata={"description": "Detected from the content."})
    kind = fields.String(metadata={"description": ", ".join(KINDS)})
    category = fields.String()
    visibility = fields.String(metadata={"description": ", ".join(VISIBILITIES)})
    sha256 = fields.String()
    owner_id = fields.Integer(allow_none=True)
    related_type = fields.String(allow_none=True)
    related_id = fields.String(allow_none=True)
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    page_count = fields.Integer(allow_none=True)
    preview_url = fields.String(allow_none=True, metadata={"description": "Images and PDFs only."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class UploadFieldsSchema(Schema):
    """The form fields sent beside ``file`` (all optional)."""

    category = fields.String(validate=validate.Length(max=50))
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))


class UploadFormSchema(UploadFieldsSchema):
    """The multipart form of an upload (documentation of the request body)."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "The file (its type is read from the content)."})


class AvatarFormSchema(Schema):
    """The multipart form of an avatar upload (documentation of the request body)."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "The image (JPEG, PNG, GIF or WebP)."})


UPLOAD_BODY = {"multipart/form-data": UploadFormSchema}


class FileQuerySchema(QuerySchema):
    category = fields.String(validate=validate.Length(min=1, max=50))
    kind = fields.String(validate=validate.OneOf(KINDS))
    mime_type = fields.String(validate=validate.Length(min=1, max=100))
    owner_id = Id(metadata={"description": "Admins: another user's files."})
    related_type = fields.String(validate=validate.Length(min=1, max=50))
    related_id = fields.String(validate=validate.Length(min=1, max=64))
    page = fields.Integer(validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(validate=validate.Range(min=1), metadata={"description": "At most 100."})


class FilePathSchema(Schema):
    id = Id(required=True)


class DownloadQuerySchema(QuerySchema):
    redirect = fields.Boolean(load_default=True, metadata={
        "description": "false: answer 200 with the signed URL as JSON instead of a 302."})
    disposition = fields.String(load_default="attachment", validate=validate.OneOf(("attachment", "inline")))


class PreviewQuerySchema(QuerySchema):
    redirect = fields.Boolean(load_default=True)


class SignedURLSchema(Schema):
    url = fields.String()
    expires_at = fields.DateTime()


class FileUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=255))
    category = fields.String(validate=validate.Length(max=50))
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))


# --- the context -----------------------------------------------------------------------

class FileResource(Resource):
    """A file named in the URL (400 for a bad id, 404 if absent or deleted).

    The ACL is produced lazily: the owner's entries first, so the
    ``learnsail_file_access`` hook is asked only about other callers.
    """

    owner_permissions = (VIEW, MANAGE)

    def __init__(self, request: Any) -> None:
        raw = (request.matchdict or {}).get("id")
        try:
            ident = int(raw)
        except (TypeError, ValueError):
            raise errors.ValidationFailed({"id": ["Not a valid integer."]}) from None
        if not 1 <= ident <= MAX_ID:
            raise errors.NotFound(f"No file with id {ident}.")
        self.instance = services.get_file(request.db, ident)
        super().__init__(request, self.instance.owner_id)
        self._answers: dict[str, bool] = {}

    def allows(self, action: str) -> bool:
        if action not in self._answers:
            request = self.request
            self._answers[action] = services.rules_allow(request.db, request.registry["learnsail.pm"],
                                                         request.identity, self.instance, action)
        return self._answers[action]

    @property
    def __acl__(self) -> Iterator[tuple[str, str, str]]:  # type: ignore[override]
        yield from owner_acl(self.owner_id, self.owner_permissions)
        if self.allows("read"):
            yield (Allow, Everyone, VIEW)
        if self.allows("write"):
            yield (Allow, Everyone, MANAGE)


class _RoleOnly:
    """A context without an ACL: only the caller's role decides."""


class UnsupportedMediaType(errors.APIError):
    status = 415
    code = errors.UNSUPPORTED_MEDIA_TYPE
    default_message = "The request body has an unsupported media type."


# --- helpers ---------------------------------------------------------------------------

def file_out(request: Any, file: StoredFile) -> dict[str, Any]:
    return {
        "id": file.id, "file_url": request.route_url("core.file_download", id=file.id),
        "file_name": file.name, "file_size": file.size, "mime_type": file.mime_type, "kind": file.kind,
        "category": file.category, "visibility": file.visibility, "sha256": file.sha256,
        "owner_id": file.owner_id, "related_type": file.related_type, "related_id": file.related_id,
        "width": file.width, "height": file.height, "page_count": file.page_count,
        "preview_url": request.route_url("core.file_preview", id=file.id) if services.has_preview(file) else None,
        "created_at": file.created_at, "updated_at": file.updated_at,
    }


def read_upload(request: Any, accept: tuple[str, ...], max_size: int | None = None) -> multipart.Form:
    """The multipart form of an upload request, streamed into a temporary
    file (413 as soon as the file passes the largest size ``accept`` allows)."""
    limit = services.max_upload_size(request.registry.settings, accept)
    if max_size is not None:
        limit = min(limit, max_size)
    try:
        form = multipart.read_form(request.body_file, request.headers.get("Content-Type", ""),
                                   request.content_length, file_fields=("file",), max_file_size=limit)
    except multipart.FormTooLarge as exc:
        raise services.FileTooLarge(exc.limit) from None
    except multipart.FormError as exc:
        if exc.field == "content_type":
            raise UnsupportedMediaType(str(exc), {"content_type": [str(exc)]}) from None
        raise errors.ValidationFailed({exc.field: [str(exc)]}) from None
    if "file" not in form.files:
        form.close()
        raise errors.ValidationFailed({"file": ["Send the file in the multipart field 'file'."]})
    return form


def _upload_fields(form: multipart.Form) -> dict[str, Any]:
    try:
        return UploadFieldsSchema().load(form.fields)
    except marshmallow.ValidationError as exc:
        form.close()
        raise errors.ValidationFailed(_flatten(exc.messages)) from None


def _upload(request: Any, accept: tuple[str, ...]) -> dict[str, Any]:
    form = read_upload(request, accept)
    try:
        values = _upload_fields(form)
        upload = form.files["file"]
        stored = services.save_upload(request.db, upload.file, upload.filename,
                                      owner_id=request.authenticated_userid, accept=accept,
                                      category=values.get("category", ""),
                                      visibility=values.get("visibility", "private"))
    finally:
        form.close()
    request.response.status = 201
    return file_out(request, stored)


def _signed(request: Any, file: StoredFile, *, disposition: str, preview: bool, redirect: bool) -> Any:
    url, expires_at = services.signed_url(request.registry, file, disposition=disposition, preview=preview,
                                          base_url=request.application_url)
    if redirect:
        response = HTTPFound(location=url)
        response.cache_control = "private, no-store"
        return response
    request.response.cache_control = "private, no-store"
    return {"url": url, "expires_at": expires_at}


def retry_attempts(request: Any) -> int | None:
    """pyramid_retry's ``retry.activate_hook``: upload requests are read once,
    straight from the connection, so they are not replayed (a replay would
    need the whole body copied to disk before the view even starts)."""
    from learnsail.ops import body_limit_of

    environ = request.environ
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return 1 if body_limit_of(request.registry, path) is not None else None


# --- services ----------------------------------------------------------------------------

upload_image = Service(name="core.upload_image", path=UPLOAD_IMAGE_PATH,
                       description="Upload an image (JPEG, PNG, GIF, WebP).")
upload_file = Service(name="core.upload_file", path=UPLOAD_FILE_PATH, description="Upload a file.")
files = Service(name="core.files", path="/api/v1/files", description="Stored files.")
file_item = Service(name="core.file", path="/api/v1/files/{id}", description="One stored file.",
                    factory=FileResource)
file_download = Service(name="core.file_download", path="/api/v1/files/{id}/download",
                        description="Download a file through a signed URL.", factory=FileResource)
file_preview = Service(name="core.file_preview", path="/api/v1/files/{id}/preview",
                       description="Preview an image (thumbnail) or a PDF (inline).", factory=FileResource)
avatar = Service(name="core.users_me_avatar", path=AVATAR_PATH, description="The caller's avatar.")
storage_object = Service(name="core.storage_object", path="/api/v1/storage/{token}",
                         description="An object of local storage, through a signed URL.")


@upload_image.post(permission=UPLOAD, responses={201: FileOutSchema}, errors=(400, 413, 415),
                   request_body=UPLOAD_BODY)
def upload_image_view(request: Any) -> dict:
    """Upload an image (JPEG, PNG, GIF or WebP).

    multipart/form-data with the image in the field ``file``.  Optional
    fields: ``category``, ``visibility`` (private, authenticated, public;
    default private).  The type is read from the content; the image is
    decoded, checked against the size limits and stored re-encoded without
    metadata.  400 names the detected type; 413 when it is over
    ``learnsail.storage_size_limits`` (image).
    """
    return _upload(request, services.IMAGE_TYPES)


@upload_file.post(permission=UPLOAD, responses={201: FileOutSchema}, errors=(400, 413, 415),
                  request_body=UPLOAD_BODY)
def upload_file_view(request: Any) -> dict:
    """Upload a file.

    multipart/form-data with the file in the field ``file``.  Optional
    fields: ``category``, ``visibility``.  Accepted types (detected from
    the content, never the name) are ``learnsail.storage_file_types``; the
    name's extension must suit the content.  400 names the detected type; 413 over the limit of its kind.
    """
    return _upload(request, services.file_types(request.registry.settings))


@files.get(permission=UPLOAD, schema={"querystring": FileQuerySchema}, responses={200: page_of(FileOutSchema)})
def list_files(request: Any) -> dict:
    """The caller's files, newest first (paginated); admins see everyone's.

    Filter by ``category``, ``kind``, ``mime_type``, ``related_type`` /
    ``related_id`` and (admins) ``owner_id``.
    """
    query = request.validated["querystring"]
    stmt = sa.select(StoredFile).where(StoredFile.deleted_at.is_(None))
    me = request.authenticated_userid
    if request.has_permission(VIEW, _RoleOnly()):
        if query.get("owner_id") is not None:
            stmt = stmt.where(StoredFile.owner_id == query["owner_id"])
    else:
        if query.get("owner_id") not in (None, me):
            raise errors.PermissionDenied("Only administrators list other users' files.",
                                          {"owner_id": ["Leave it out to list your own files."]})
        stmt = stmt.where(StoredFile.owner_id == me)
    for name in ("category", "kind", "mime_type", "related_type", "related_id"):
        if query.get(name) is not None:
            stmt = stmt.where(getattr(StoredFile, name) == query[name])
    stmt = stmt.order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
    return paginate(request, request.db, stmt, lambda row: file_out(request, row))


@file_item.get(permission=VIEW, schema={"path": FilePathSchema}, responses={200: FileOutSchema})
def get_file(request: Any) -> dict:
    """A file's metadata (owner, admins, or per its visibility / the plugin it belongs to)."""
    return file_out(request, request.context.instance)


@file_item.patch(permission=MANAGE, schema={"path": FilePathSchema, "body": FileUpdateSchema},
                 responses={200: FileOutSchema})
def update_file(request: Any) -> dict:
    """Rename a file (keeping an extension that suits its type), change its
    ``category`` or ``visibility``."""
    file = services.update_file(request.db, request.context.instance, request.validated["body"])
    return file_out(request, file)


@file_item.put(permission=MANAGE, schema={"path": FilePathSchema, "body": FileUpdateSchema},
               responses={200: FileOutSchema})
def put_file(request: Any) -> dict:
    """Same as PATCH: the fields given are changed."""
    return update_file(request)


@file_item.delete(permission=MANAGE, schema={"path": FilePathSchema}, responses={204: None})
def delete_file(request: Any) -> Any:
    """Delete a file; its object leaves storage once the deletion commits."""
    services.delete_file(request.db, request.context.instance)
    return no_content(request)


@file_download.get(permission=VIEW, schema={"path": FilePathSchema, "querystring": DownloadQuerySchema},
                   responses={302: (None, "Redirect to a signed URL (Location)."),
                              200: (SignedURLSchema, "With redirect=false.")})
def download_file(request: Any) -> Any:
    """Download a file through a signed URL.

    302 to a signed URL valid ``learnsail.storage_url_ttl`` seconds
    (``?redirect=false``: that URL as JSON).  ``disposition=inline`` lets a
    browser show the file instead of saving it."""
    query = request.validated["querystring"]
    return _signed(request, request.context.instance, disposition=query["disposition"], preview=False,
                   redirect=query["redirect"])


@file_preview.get(permission=VIEW, schema={"path": FilePathSchema, "querystring": PreviewQuerySchema},
                  responses={302: (None, "Redirect to a signed URL (Location)."),
                             200: (SignedURLSchema, "With redirect=false.")})
def preview_file(request: Any) -> Any:
    """Preview an image (its thumbnail) or a PDF (shown inline).

    302 to a signed URL of the thumbnail (JPEG of
    ``learnsail.storage_thumbnail_size`` pixels) or of the PDF; 404 for
    other files."""
    file = services.ensure_preview(request.db, request.context.instance)
    return _signed(request, file, disposition="inline", preview=file.preview_key is not None,
                   redirect=request.validated["querystring"]["redirect"])


@avatar.post(permission=SELF, responses={201: FileOutSchema}, errors=(400, 413, 415),
             request_body={"multipart/form-data": AvatarFormSchema})
def upload_avatar(request: Any) -> dict:
    """Set a new avatar for the caller.

    multipart/form-data with the image in the field ``file``.  The image is
    scaled down to ``learnsail.storage_avatar_size`` pixels, stored public, and the account's ``avatar_url`` becomes its
    ``file_url``; the previous avatar file is deleted.
    """
    form = read_upload(request, services.IMAGE_TYPES)
    try:
        upload = form.files["file"]
        stored = services.replace_avatar(request.db, request.identity, upload.file, upload.filename,
                                         url_of=lambda row: request.route_url("core.file_download", id=row.id))
    finally:
        form.close()
    request.response.status = 201
    return file_out(request, stored)


class _FileIter:
    """A file's bytes in chunks; ranges seek instead of reading through."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.left: int | None = None

    def __iter__(self) -> "_FileIter":
        return self

    def __next__(self) -> bytes:
        size = CHUNK_SIZE if self.left is None else min(CHUNK_SIZE, self.left)
        data = self.handle.read(size) if size else b""
        if not data:
            raise StopIteration
        if self.left is not None:
            self.left -= len(data)
        return data

    def app_iter_range(self, start: int, stop: int | None) -> "_FileIter":
        self.handle.seek(start)
        self.left = None if stop is None else max(0, stop - start)
        return self

    def close(self) -> None:
        self.handle.close()


@storage_object.get(permission=PUBLIC, responses={200: (None, "The object's bytes.")}, errors=(403, 404))
def serve_object(request: Any) -> Any:
    """The bytes behind a signed URL of local storage.

    403 when the link was altered or has expired.  Byte ranges are supported."""
    storage = request.storage
    if not isinstance(storage, LocalStorage):
        raise errors.NotFound()
    try:
        grant = storage.read_token(request.matchdict["token"])
    except ExpiredToken:
        raise errors.PermissionDenied("The link has expired.", {"token": ["Expired: ask for a new link."]}) from None
    except InvalidToken:
        raise errors.PermissionDenied("The link is not valid.",
                                      {"token": ["Not issued by this platform, or altered."]}) from None
    try:
        info = storage.stat(grant["key"])
        handle = open(storage.path_of(grant["key"]), "rb")
    except (ObjectNotFound, InvalidKey, FileNotFoundError):
        raise errors.NotFound("The file no longer exists.") from None
    response = Response(conditional_response=True, app_iter=_FileIter(handle))
    response.content_type = grant["content_type"] or info.content_type
    response.content_length = info.size
    response.accept_ranges = "bytes"
    response.etag = info.etag
    response.last_modified = info.modified
    response.headers["Content-Disposition"] = content_disposition(grant["disposition"], grant["filename"])
    remaining = max(0, int(grant["expires_at"] - time.time()))
    response.cache_control = f"private, max-age={min(remaining, 3600)}"
    return response


def storage_unavailable_view(exc: StorageUnavailable, request: Any) -> Response:
    """The storage server is down: 503 with Retry-After, never a 500."""
    from learnsail.api.errorviews import render_envelope

    log.warning("storage unavailable on %s %s: %s", request.method, request.path, exc)
    return render_envelope(request, 503, errors.SERVICE_UNAVAILABLE, "The file storage is unavailable; retry later.",
                           {"retry_after": 30}, {"Retry-After": "30"})


def object_missing_view(exc: ObjectNotFound, request: Any) -> Response:
    """A record whose object is gone (restored database, lost bucket)."""
    from learnsail.api.errorviews import render_envelope

    log.error("missing object on %s %s: %s", request.method, request.path, exc)
    return render_envelope(request, 404, errors.RESOURCE_NOT_FOUND, "The file's content is missing.", {})


def includeme(config: Any) -> None:
    settings = config.get_settings()
    config.add_exception_view(storage_unavailable_view, context=StorageUnavailable)
    config.add_exception_view(object_missing_view, context=ObjectNotFound)
    limits = config.registry.setdefault("learnsail.body_limits", {})
    image_limit = services.max_upload_size(settings, services.IMAGE_TYPES) + FORM_OVERHEAD
    limits[UPLOAD_IMAGE_PATH] = limits[AVATAR_PATH] = image_limit
    limits[UPLOAD_FILE_PATH] = services.max_upload_size(settings, services.file_types(settings)) + FORM_OVERHEAD
    settings.setdefault("retry.activate_hook", "learnsail.storage.views.retry_attempts")
    for service in (upload_image, upload_file, files, file_item, file_download, file_preview, avatar,
                    storage_object):
        config.add_learnsail_service(service)
