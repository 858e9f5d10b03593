"""File services: what views and plugins call to store, find, attach,
change and delete files.  Every function takes a session (a request's or a
task's); the storage and settings come from the session's registry.

    from learnsail.storage import services as files

    stored = files.save_upload(request.db, upload.file, upload.filename,
                               owner_id=request.authenticated_userid,
                               accept=("application/pdf",), category="assignment",
                               related=("exams.submission", submission.id))
    files.files_of(request.db, "exams.submission", submission.id)
    files.delete_related(request.db, "exams.submission", submission.id)

Objects are written to storage during the transaction and deleted again if
it aborts; a deleted file's object is removed by a task once the deletion
commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import queue
import re
import tempfile
import threading
import unicodedata
from typing import Any, BinaryIO, Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.aftercommit import manager_of, registry_of
from learnsail.errors import PAYLOAD_TOO_LARGE, APIError, NotFound, ValidationFailed
from learnsail.storage import KINDS, images, parse_size_limits, sniff
from learnsail.storage.backends import Storage, StorageError, new_key
from learnsail.storage.models import VISIBILITIES, StoredFile

log = logging.getLogger("learnsail.storage")

IMAGE_TYPES = sniff.IMAGE_TYPES
SPOOL_SIZE = 1024 * 1024
HASH_CHUNK = 1024 * 1024
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,49}$")
_RELATED_TYPE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]{0,40}$")
#: the related_type of avatars (the core's own attachment)
AVATAR = "core.user_avatar"


class UnsupportedFile(ValidationFailed):
    """The content is not of an accepted type, or does not match its name,
    or is not a valid file of its type.  ``details`` names the detected type."""

    def __init__(self, reason: str, detected: str, field: str = "file") -> None:
        super().__init__({field: [reason], "detected_type": detected}, "The file is not accepted.")
        self.detected = detected


class FileTooLarge(APIError):
    status = 413
    code = PAYLOAD_TOO_LARGE
    default_message = "The file is too large."

    def __init__(self, limit: int, kind: str | None = None) -> None:
        details: dict[str, Any] = {"max_bytes": limit}
        if kind:
            details["kind"] = kind
        super().__init__(None, details)


# --- small helpers ---------------------------------------------------------------

def _registry(session: Session, registry: Any = None) -> Any:
    registry = registry if registry is not None else registry_of(session)
    if not hasattr(registry, "settings"):
        raise RuntimeError("the session carries no registry: pass registry= (a request's or task's "
                           "session has one)")
    return registry


def clean_name(filename: str | None, default: str = "file") -> str:
    """A display name from what a client sent: the last path segment, NFC,
    without control or formatting characters (such as the right-to-left
    override that disguises ``gpj.exe``), whitespace collapsed, at most 255
    characters (the extension kept)."""
    name = unicodedata.normalize("NFC", filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = " ".join(name.split()).strip(" .")
    if len(name) > 255:
        ext = sniff.extension_of(name)
        ext = ext if len(ext) <= 16 else ""
        name = name[:255 - len(ext)].rstrip(" .") + ext
    return name or default


def size_limits(settings: Mapping[str, Any]) -> dict[str, int]:
    return parse_size_limits(settings.get("learnsail.storage_size_limits") or "")


def max_upload_size(settings: Mapping[str, Any], accept: Iterable[str]) -> int:
    """The largest file one of the types ``accept`` may be (per-kind limits)."""
    limits = size_limits(settings)
    kinds = {sniff.TYPES[mime].kind for mime in accept if mime in sniff.TYPES} or {"other"}
    return max(limits.get(kind, limits["other"]) for kind in kinds)


def file_types(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """What ``POST /api/v1/upload/file`` accepts (``learnsail.storage_file_types``)."""
    return tuple(settings.get("learnsail.storage_file_types") or ())


def _check_labels(category: str | None, visibility: str | None) -> None:
    problems: dict[str, list[str]] = {}
    if category and not _CATEGORY.match(category):
        problems["category"] = ["1 to 50 of a-z, 0-9, '_', '.', '-', starting with a letter or digit."]
    if visibility is not None and visibility not in VISIBILITIES:
        problems["visibility"] = [f"One of {', '.join(VISIBILITIES)}."]
    if problems:
        raise ValidationFailed(problems)


def _check_relation(related_type: str | None, related_id: Any) -> tuple[str | None, str | None]:
    if related_type is None:
        if related_id is not None:
            raise ValueError("related_id needs a related_type")
        return None, None
    if not _RELATED_TYPE.match(related_type):
        raise ValueError(f"related_type {related_type!r} must be '<plugin>.<thing>' in lower case")
    text = str(related_id) if related_id is not None else None
    if text is not None and not 1 <= len(text) <= 64:
        raise ValueError("related_id must be 1 to 64 characters")
    return related_type, text


class _HashingReader:
    """Computes the SHA-256 of what is read through it, in a helper thread:
    hashing a chunk overlaps writing the previous one (hashlib releases the
    GIL), so the checksum costs little more than the copy itself.  At most
    a few chunks wait for the hasher."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._digest = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._hash, name="learnsail-sha256", daemon=True)
        self._thread.start()

    def _hash(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._digest.update(chunk)

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self._chunks.put(data)
        return data

    def hexdigest(self) -> str:
        """The digest of everything read (ends the helper thread)."""
        self.close()
        return self._digest.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()


def _spool(fileobj: BinaryIO, limit: int) -> BinaryIO:
    """A seekable copy of a stream, refusing (413) more than ``limit`` bytes."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE)
    total = 0
    while chunk := fileobj.read(HASH_CHUNK):
        total += len(chunk)
        if total > limit:
            spool.close()
            raise FileTooLarge(limit)
        spool.write(chunk)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def _seekable(fileobj: BinaryIO) -> bool:
    try:
        return bool(fileobj.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def _size_of(fileobj: BinaryIO) -> int:
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


def _delete_if_aborted(session: Session, storage: Storage, keys: Sequence[str]) -> None:
    """Objects written for a row that never commits are deleted again."""

    def delete(*_: Any) -> None:
        for key in keys:
            try:
                storage.delete(key)
            except StorageError as exc:
                log.warning("could not delete the orphaned object %s: %s", key, exc)

    def after_commit(committed: bool) -> None:
        if not committed:
            delete()

    txn = manager_of(session).get()
    txn.addAfterCommitHook(after_commit)
    txn.addAfterAbortHook(delete)


def pdf_page_count(fileobj: BinaryIO) -> int | None:
    """Pages of a PDF; None when they cannot be counted (encrypted);
    :class:`ValueError` when the file is not a readable PDF."""
    import pypdf
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PyPdfError

    fileobj.seek(0)
    try:
        reader = pypdf.PdfReader(fileobj)
        try:
            return len(reader.pages)
        except FileNotDecryptedError:
            return None
    except (PdfReadError, PyPdfError, OSError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError, IndexError) as exc:
        raise ValueError(f"unreadable PDF: {type(exc).__name__}") from None
    finally:
        fileobj.seek(0)


def preview_key_of(key: str) -> str:
    """Where the thumbnail of the object ``key`` is stored."""
    stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
    return f"previews/{stem}.jpg"


# --- storing ---------------------------------------------------------------------

def save_upload(session: Session, fileobj: BinaryIO, filename: str | None, *, owner_id: int | None,
                accept: Iterable[str] | None = None, category: str = "", visibility: str = "private",
                related: tuple[str, Any] | None = None, max_size: int | None = None, fit: int | None = None,
                registry: Any = None) -> StoredFile:
    """Store a file a user sent and record it; returns the flushed row.

    - The type is detected from the content (:mod:`sniff`); it must be one of
      ``accept`` (default: ``learnsail.storage_file_types``), and a name
      with an extension must suit it: otherwise :class:`UnsupportedFile` (400,
      the detected type in the details).
    - Over the limit of its kind (``learnsail.storage_size_limits``) or
      ``max_size``: :class:`FileTooLarge` (413).
    - Images are decoded, checked and re-encoded without metadata (scaled
      to fit ``fit`` pixels if given), and get a thumbnail; PDFs get their
      page count.
    - ``related=("<plugin>.<thing>", id)`` attaches it to an object.

    ``fileobj`` is read from its start if seekable, otherwise copied to a
    temporary file first; it is never read whole into memory.
    """
    registry = _registry(session, registry)
    settings = registry.settings
    storage: Storage = registry["learnsail.storage"]
    related_type, related_id = _check_relation(*(related or (None, None)))
    _check_labels(category, visibility)
    allowed = tuple(accept) if accept is not None else file_types(settings)
    ceiling = max_upload_size(settings, allowed)
    if max_size is not None:
        ceiling = min(ceiling, max_size)
    name = clean_name(filename)
    owned: list[BinaryIO] = []
    src = fileobj
    if not _seekable(fileobj):
        src = _spool(fileobj, ceiling)
        owned.append(src)
    try:
        size = _size_of(src)
        ftype = sniff.detect(src)
        if ftype.mime == "application/x-empty":
            raise UnsupportedFile("The file is empty.", ftype.mime)
        if ftype.mime not in allowed:
            raise UnsupportedFile(f"Files of type {ftype.mime} are not accepted here (accepted: "
                                  f"{', '.join(allowed)}).", ftype.mime)
        if not ftype.name_fits(name):
            raise UnsupportedFile(f"The name ends in {sniff.extension_of(name)} but the content is "
                                  f"{ftype.mime}.", ftype.mime)
        limit = size_limits(settings).get(ftype.kind, ceiling)
        if max_size is not None:
            limit = min(limit, max_size)
        if size > limit:
            raise FileTooLarge(limit, ftype.kind)
        width = height = pages = None
        thumb: bytes | None = None
        if ftype.mime in images.FORMATS:
            bounds = {"max_side": int(settings["learnsail.storage_image_max_side"]),
                      "max_pixels": int(settings["learnsail.storage_image_max_pixels"])}
            try:
                clean = images.clean_image(src, ftype.mime, fit=fit, **bounds)
                owned.append(clean.file)
                src, size, width, height = clean.file, clean.size, clean.width, clean.height
                thumb = images.thumbnail(src, ftype.mime, int(settings["learnsail.storage_thumbnail_size"]),
                                         **bounds)
            except images.ImageRejected as exc:
                raise UnsupportedFile(str(exc), ftype.mime) from None
            src.seek(0)
        elif ftype.mime == "application/pdf":
            try:
                pages = pdf_page_count(src)
            except ValueError:
                raise UnsupportedFile("The PDF cannot be read (damaged?).", ftype.mime) from None
        if not sniff.extension_of(name) and ftype.ext:
            name = clean_name(name + ftype.ext)
        key = new_key(ftype.kind, ftype.ext)
        written = [key]
        reader = _HashingReader(src)
        try:
            info = storage.put(key, reader, size, ftype.mime)  # type: ignore[arg-type]
            sha256 = reader.hexdigest()
            preview_key = None
            if thumb is not None:
                preview_key = preview_key_of(key)
                written.append(preview_key)
                storage.put(preview_key, io.BytesIO(thumb), len(thumb), "image/jpeg")
        finally:
            reader.close()
            _delete_if_aborted(session, storage, written)
        row = StoredFile(storage_key=key, name=name, size=info.size, mime_type=ftype.mime, kind=ftype.kind,
                         category=category or "", sha256=sha256, owner_id=owner_id,
                         visibility=visibility, related_type=related_type, related_id=related_id,
                         width=width, height=height, page_count=pages, preview_key=preview_key)
        session.add(row)
        session.flush()
        return row
    finally:
        for stream in owned:
            stream.close()


def replace_avatar(session: Session, user: Any, fileobj: BinaryIO, filename: str | None, *,
                   url_of: Any, registry: Any = None) -> StoredFile:
    """Store a new avatar for ``user`` (an image, scaled down to
    ``learnsail.storage_avatar_size``, public), make ``url_of(file)`` their
    ``avatar_url`` and delete their previous avatar files."""
    registry = _registry(session, registry)
    stored = save_upload(session, fileobj, filename, owner_id=user.id, accept=IMAGE_TYPES, category="avatar",
                         visibility="public", related=(AVATAR, user.id),
                         fit=int(registry.settings["learnsail.storage_avatar_size"]), registry=registry)
    for old in files_of(session, AVATAR, user.id):
        if old.id != stored.id:
            delete_file(session, old)
    user.avatar_url = url_of(stored)
    session.flush()
    return stored


def register_object(session: Session, key: str, *, name: str, owner_id: int | None, mime_type: str | None = None,
                    kind: str | None = None, sha256: str | None = None, category: str = "",
                    visibility: str = "private", related: tuple[str, Any] | None = None,
                    registry: Any = None) -> StoredFile:
    """Record an object a plugin wrote to storage itself (a transcoded video,
    an object assembled with ``storage.compose``) so it gets an id, access
    rules and download URLs like an upload.  The type is taken as given
    (the object's content type otherwise); ``sha256`` is computed by
    reading the object when not given."""
    registry = _registry(session, registry)
    storage: Storage = registry["learnsail.storage"]
    related_type, related_id = _check_relation(*(related or (None, None)))
    _check_labels(category, visibility)
    info = storage.stat(key)
    mime = mime_type or info.content_type
    if sha256 is None:
        digest = hashlib.sha256()
        with storage.open(key) as stream:
            while chunk := stream.read(HASH_CHUNK):
                digest.update(chunk)
        sha256 = digest.hexdigest()
    known = sniff.TYPES.get(mime)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    row = StoredFile(storage_key=key, name=clean_name(name), size=info.size, mime_type=mime,
                     kind=kind or (known.kind if known else "other"), category=category or "", sha256=sha256,
                     owner_id=owner_id, visibility=visibility, related_type=related_type, related_id=related_id)
    session.add(row)
    session.flush()
    return row


# --- finding and changing ---------------------------------------------------------

def get_file(session: Session, file_id: int) -> StoredFile:
    """The live (not deleted) file ``file_id``, or :class:`NotFound`."""
    row = session.get(StoredFile, file_id)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"No file with id {file_id}.")
    return row


def attach(session: Session, file: StoredFile, related_type: str, related_id: Any) -> StoredFile:
    """Attach ``file`` to a plugin's object: from now on the plugin's
    ``learnsail_file_access`` answer decides who (besides the owner and
    admins) may read or change it."""
    file.related_type, file.related_id = _check_relation(related_type, related_id)
    session.flush()
    return file


def detach(session: Session, file: StoredFile) -> StoredFile:
    file.related_type = file.related_id = None
    session.flush()
    return file


def files_of(session: Session, related_type: str, related_id: Any) -> list[StoredFile]:
    """The live files attached to one object, oldest first."""
    related_type, text = _check_relation(related_type, related_id)
    stmt = (sa.select(StoredFile)
            .where(StoredFile.related_type == related_type, StoredFile.related_id == text,
                   StoredFile.deleted_at.is_(None))
            .order_by(StoredFile.id))
    return list(session.scalars(stmt))


def update_file(session: Session, file: StoredFile, values: Mapping[str, Any]) -> StoredFile:
    """Rename (the new name must still suit the content's type), re-label
    (``category``) or change ``visibility``."""
    _check_labels(values.get("category"), values.get("visibility"))
    if "name" in values:
        name = clean_name(values["name"], default="")
        if not name:
            raise ValidationFailed({"name": ["Give the file a name."]})
        ftype = sniff.TYPES.get(file.mime_type)
        if ftype is not None and not ftype.name_fits(name):
            reason = (f"A {file.mime_type} file cannot be named *{sniff.extension_of(name)}; "
                      f"use {', '.join(sorted(ftype.extensions))}.")
            raise ValidationFailed({"name": [reason]})
        file.name = name
    if "category" in values:
        file.category = values["category"] or ""
    if "visibility" in values:
        file.visibility = values["visibility"]
    session.flush()
    return file


def delete_file(session: Session, file: StoredFile) -> None:
    """Mark ``file`` deleted; its object (and thumbnail) is removed from
    storage by a task once the deletion commits.  An avatar that is deleted
    stops being its user's avatar."""
    from learnsail.tasks import enqueue

    file.deleted_at = dt.datetime.now(dt.timezone.utc)
    if file.related_type == AVATAR and file.related_id and file.related_id.isdigit():
        from learnsail.identity.models import User

        user = session.get(User, int(file.related_id))
        if user is not None and user.avatar_url and user.avatar_url.endswith(f"/files/{file.id}/download"):
            user.avatar_url = None
    session.flush()
    keys = [key for key in (file.storage_key, file.preview_key) if key]
    enqueue(session, "core.storage_delete", keys)


def delete_related(session: Session, related_type: str, related_id: Any) -> int:
    """Delete every file attached to one object (when the plugin deletes
    the object); returns how many."""
    found = files_of(session, related_type, related_id)
    for file in found:
        delete_file(session, file)
    return len(found)


# --- access ------------------------------------------------------------------------

def hook_answer(session: Session, pm: Any, user: Any, file: StoredFile, action: str) -> bool | None:
    """What the plugin owning ``file.related_type`` says about ``user``
    doing ``action`` ("read" or "write"); None for unattached files or
    when no plugin answers."""
    if not file.related_type or pm is None:
        return None
    answer = pm.hook.learnsail_file_access(user=user, file=file, action=action, session=session)
    return None if answer is None else bool(answer)


def rules_allow(session: Session, pm: Any, user: Any, file: StoredFile, action: str) -> bool:
    """The rules after ownership: the plugin's answer for attached files,
    else the file's visibility (which only ever grants reading)."""
    answer = hook_answer(session, pm, user, file, action)
    if answer is not None:
        return answer
    if action != "read":
        return False
    return file.visibility == "public" or (file.visibility == "authenticated" and user is not None)


def may_access(session: Session, pm: Any, user: Any, file: StoredFile, action: str = "read") -> bool:
    """May ``user`` (None: anonymous) ``action`` the file?  The owner always
    may; then :func:`rules_allow`.  (Admins' rights come from their role and
    are checked by the views; a plugin asks this for its own users.)"""
    if user is not None and file.owner_id is not None and file.owner_id == user.id:
        return True
    return rules_allow(session, pm, user, file, action)


# --- URLs and previews ---------------------------------------------------------------

def has_preview(file: StoredFile) -> bool:
    return file.mime_type in images.FORMATS or file.mime_type == "application/pdf"


def signed_url(registry: Any, file: StoredFile, *, disposition: str = "attachment", preview: bool = False,
               base_url: str = "") -> tuple[str, dt.datetime]:
    """A URL that serves the file (or its thumbnail) to whoever holds it,
    until the returned instant (``learnsail.storage_url_ttl`` from now)."""
    ttl = int(registry.settings["learnsail.storage_url_ttl"])
    storage: Storage = registry["learnsail.storage"]
    if preview and file.preview_key:
        key, content_type = file.preview_key, "image/jpeg"
        filename = clean_name(file.name.rsplit(".", 1)[0] + "-preview.jpg")
    else:
        key, content_type, filename = file.storage_key, file.mime_type, file.name
    url = storage.signed_url(key, ttl, filename=filename, disposition=disposition, content_type=content_type,
                             base_url=base_url)
    return url, dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=ttl)


def ensure_preview(session: Session, file: StoredFile, registry: Any = None) -> StoredFile:
    """Give an image its thumbnail if it has none yet (files registered by
    plugins, or stored before thumbnails existed).  :class:`NotFound` for
    files that have no preview."""
    if not has_preview(file):
        raise NotFound("This file has no preview (only images and PDFs do).")
    if file.mime_type == "application/pdf" or file.preview_key:
        return file
    registry = _registry(session, registry)
    settings = registry.settings
    storage: Storage = registry["learnsail.storage"]
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE) as copy, storage.open(file.storage_key) as stream:
        while chunk := stream.read(HASH_CHUNK):
            copy.write(chunk)
        try:
            thumb = images.thumbnail(copy, file.mime_type, int(settings["learnsail.storage_thumbnail_size"]),
                                     max_side=int(settings["learnsail.storage_image_max_side"]),
                                     max_pixels=int(settings["learnsail.storage_image_max_pixels"]))
        except images.ImageRejected:
            raise NotFound("This image cannot be previewed.") from None
    key = preview_key_of(file.storage_key)
    storage.put(key, io.BytesIO(thumb), len(thumb), "image/jpeg")
    _delete_if_aborted(session, storage, [key])
    file.preview_key = key
    session.flush()
    return file
