"""Where file bytes live: a local directory or an S3/MinIO bucket, behind one
interface (:class:`Storage`), chosen by ``learnsail.storage_url``.

    storage = request.storage                       # or registry["learnsail.storage"]
    key = new_key("image", ".png")                  # image/2026/05/<uuid>.png
    storage.put(key, fileobj, length=None, content_type="image/png")
    with storage.open(key) as stream: ...
    storage.signed_url(key, expires=600, filename="cat.png")
    storage.compose("video/2026/05/<uuid>.mp4", ["uploads/<id>/1", "uploads/<id>/2"])

Keys are chosen by the platform (:func:`new_key`), never taken from a user's
path: :func:`check_key` refuses anything but ``[A-Za-z0-9._-]`` segments
joined by ``/`` (no ``..``, no hidden segments, no leading ``/``), and the
local backend also refuses a key whose resolved path leaves its root.
Writes stream from file objects in bounded chunks; no whole object is held
in memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import mimetypes
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Mapping

#: S3's rules for assembling an object from parts: every part but the last
#: holds at least 5 MiB, and there are at most 10,000 parts
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10000
#: bytes copied at a time
CHUNK_SIZE = 1024 * 1024
#: where the app serves objects of local storage through signed URLs
LOCAL_URL_PATH = "/api/v1/storage/"

_SEGMENT = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]*$")
MAX_KEY_LENGTH = 512


class StorageError(Exception):
    """A storage operation failed (the message says which and why)."""


class ObjectNotFound(StorageError, KeyError):
    """No object has this key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object not found"


class InvalidKey(StorageError, ValueError):
    """The key is not one the platform could have generated (or leaves the root)."""


class StorageUnavailable(StorageError):
    """The storage server cannot be reached or failed; worth retrying later."""


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """What the storage knows about one object."""

    key: str
    size: int
    content_type: str
    etag: str = ""
    modified: dt.datetime | None = None


def check_key(key: str, *, prefix: bool = False) -> str:
    """``key`` if it is a well-formed object key, else :class:`InvalidKey`.

    With ``prefix=True`` a trailing ``/`` is allowed (a "directory" prefix).
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"invalid object key {key!r}: 1 to {MAX_KEY_LENGTH} characters")
    body = key[:-1] if prefix and key.endswith("/") else key
    segments = body.split("/")
    if not all(_SEGMENT.match(segment) for segment in segments):
        raise InvalidKey(f"invalid object key {key!r}: segments of letters, digits, '.', '_', '-' "
                         "separated by '/', none empty or starting with '.'")
    return key


def new_key(kind: str, ext: str = "", *, now: dt.datetime | None = None) -> str:
    """A fresh key ``<kind>/<yyyy>/<mm>/<uuid><ext>`` (``ext`` with its dot)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    ext = ext.lower() if ext and re.fullmatch(r"\.[A-Za-z0-9]{1,10}", ext) else ""
    return check_key(f"{kind}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}{ext}")


def content_disposition(disposition: str, filename: str | None) -> str:
    """A Content-Disposition value: an ASCII fallback name plus the exact
    name in RFC 5987 form, so every browser shows the original name."""
    if disposition not in ("attachment", "inline"):
        raise ValueError(f"disposition must be 'attachment' or 'inline', not {disposition!r}")
    if not filename:
        return disposition
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in filename)
    quoted = urllib.parse.quote(filename, safe="")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


class _CountingReader:
    """Reads through ``stream``, counting bytes; stops after ``limit`` bytes
    when one is given (the declared length of a put)."""

    def __init__(self, stream: BinaryIO, limit: int | None = None) -> None:
        self.stream = stream
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if self.limit is not None:
            left = self.limit - self.count
            if left <= 0:
                return b""
            size = left if size is None or size < 0 else min(size, left)
        data = self.stream.read(size)
        self.count += len(data)
        return data


class Storage:
    """The interface every backend implements.

    Every method takes platform-generated keys (see :func:`new_key`).
    Errors are :class:`StorageError` subclasses: :class:`ObjectNotFound`,
    :class:`InvalidKey`, :class:`StorageUnavailable` (transient).
    """

    #: ``"local"`` or ``"s3"``
    kind = ""

    def put(self, key: str, fileobj: BinaryIO, length: int | None = None,
            content_type: str = "application/octet-stream") -> ObjectInfo:
        """Store the bytes read from ``fileobj`` (from its current position)
        under ``key``, replacing any object there.  ``length``: how many
        bytes to read (None: until the end).  Streams in bounded chunks."""
        raise NotImplementedError

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A readable stream of the object's bytes (from ``offset``, at most
        ``length`` of them).  Close it when done (use ``with``)."""
        raise NotImplementedError

    def stat(self, key: str) -> ObjectInfo:
        """The object's size, content type, ETag and modification time."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing one is not an error."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (not empty);
        returns how many were deleted."""
        raise NotImplementedError

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """The keys starting with ``prefix``."""
        raise NotImplementedError

    def signed_url(self, key: str, expires: int, *, filename: str | None = None,
                   disposition: str = "attachment", content_type: str | None = None,
                   base_url: str = "") -> str:
        """A URL anyone holding it may GET the object with, for ``expires``
        seconds.  The response carries ``content_type`` and a
        Content-Disposition of ``disposition`` with ``filename``.  Local
        storage answers a path under the app (``base_url`` prefixes it)."""
        raise NotImplementedError

    def compose(self, key: str, parts: Iterable[str], content_type: str = "application/octet-stream"
                ) -> ObjectInfo:
        """Create ``key`` from the concatenation of the objects ``parts``, in
        order (server-side on S3; the parts stay: delete them afterwards).

        The S3 rules apply on every backend, so code behaves the same
        everywhere: every part but the last holds at least
        :data:`MIN_PART_SIZE` (5 MiB); at most :data:`MAX_PARTS` parts.
        """
        raise NotImplementedError

    def check(self) -> None:
        """Raise if the storage cannot be used (health check)."""
        raise NotImplementedError

    def _check_parts(self, parts: list[str]) -> list[ObjectInfo]:
        if not parts:
            raise ValueError("compose needs at least one part")
        if len(parts) > MAX_PARTS:
            raise ValueError(f"compose takes at most {MAX_PARTS} parts, got {len(parts)}")
        infos = [self.stat(check_key(part)) for part in parts]
        for info in infos[:-1]:
            if info.size < MIN_PART_SIZE:
                raise ValueError(f"part {info.key} holds {info.size} bytes; every part but the last "
                                 f"must hold at least {MIN_PART_SIZE} (5 MiB)")
        return infos


# --- local directory ------------------------------------------------------------

class _Slice(io.RawIOBase):
    """At most ``length`` bytes of an open file."""

    def __init__(self, handle: BinaryIO, length: int) -> None:
        self.handle = handle
        self.left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buffer)[:self.left]
        count = self.handle.readinto(view)  # type: ignore[attr-defined]
        self.left -= count or 0
        return count or 0

    def close(self) -> None:
        self.handle.close()
        super().close()


class LocalStorage(Storage):
    """Objects as files under ``root`` (the embedded default:
    ``<data_dir>/files``).  Writes go to ``root/.tmp`` first and are moved
    into place, so a reader never sees half an object.  Signed URLs are
    served by the app at :data:`LOCAL_URL_PATH` (HMAC tokens, see
    :mod:`learnsail.storage.signing`)."""

    kind = "local"

    def __init__(self, root: str | Path, secret: str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._secret = secret

    def __repr__(self) -> str:
        return f"<LocalStorage {self.root}>"

    def path_of(self, key: str) -> Path:
        """The file of ``key``; :class:`InvalidKey` if it would leave the root."""
        check_key(key)
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise InvalidKey(f"object key {key!r} leaves the storage root")
        return path

    def _write(self, key: str, write: Any) -> ObjectInfo:
        path = self.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            os.replace(tmp, path)
        except BaseException:
            with _suppress_oserror():
                os.unlink(tmp)
            raise
        return self.stat(key)

    def put(self, key: str, fileobj: BinaryIO, length: int | None = None,
            content_type: str = "application/octet-stream") -> ObjectInfo:
        def write(out: BinaryIO) -> None:
            reader = _CountingReader(fileobj, length)
            shutil.copyfileobj(reader, out, CHUNK_SIZE)  # type: ignore[misc]
            if length is not None and reader.count != length:
                raise StorageError(f"put {key}: the stream ended after {reader.count} of {length} bytes")

        try:
            return self._write(key, write)
        except OSError as exc:
            raise StorageError(f"put {key}: {exc}") from exc

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        path = self.path_of(key)
        try:
            handle = open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key}") from None
        if offset:
            handle.seek(offset)
        if length is not None:
            return io.BufferedReader(_Slice(handle, length), CHUNK_SIZE)  # type: ignore[return-value]
        return handle

    def stat(self, key: str) -> ObjectInfo:
        path = self.path_of(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key}") from None
        if not path.is_file():
            raise ObjectNotFound(f"no object {key}")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        modified = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
        return ObjectInfo(key, st.st_size, content_type, f"{st.st_size:x}-{st.st_mtime_ns:x}", modified)

    def delete(self, key: str) -> None:
        path = self.path_of(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            raise InvalidKey(f"{key} is a directory, not an object") from None
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove empty directories from ``directory`` up to the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        if prefix:
            check_key(prefix, prefix=True)
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if d != ".tmp"]
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key, path

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        for key, _ in self._walk(prefix):
            yield key

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise InvalidKey("delete_prefix needs a prefix (refusing to delete everything)")
        found = list(self._walk(prefix))
        for _, path in found:
            with _suppress_oserror():
                path.unlink()
        for directory in sorted({path.parent for _, path in found}, key=lambda p: len(p.parts), reverse=True):
            self._prune(directory)
        return len(found)

    def signed_url(self, key: str, expires: int, *, filename: str | None = None,
                   disposition: str = "attachment", content_type: str | None = None,
                   base_url: str = "") -> str:
        from learnsail.storage import signing

        check_key(key)
        content_disposition(disposition, filename)  # validates disposition
        token = signing.make_token(self._secret, key, int(time.time()) + int(expires), filename=filename,
                                   disposition=disposition, content_type=content_type)
        return f"{base_url.rstrip('/')}{LOCAL_URL_PATH}{token}"

    def read_token(self, token: str) -> dict[str, Any]:
        """The object a signed URL's token grants (see :mod:`signing`)."""
        from learnsail.storage import signing

        return signing.read_token(self._secret, token)

    def compose(self, key: str, parts: Iterable[str], content_type: str = "application/octet-stream"
                ) -> ObjectInfo:
        infos = self._check_parts(list(parts))

        def write(out: BinaryIO) -> None:
            for info in infos:
                with open(self.path_of(info.key), "rb") as part:
                    shutil.copyfileobj(part, out, CHUNK_SIZE)

        try:
            return self._write(key, write)
        except OSError as exc:
            raise StorageError(f"compose {key}: {exc}") from exc

    def check(self) -> None:
        probe = self.tmp / f"health-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)


# --- S3 / MinIO -------------------------------------------------------------------

class _ResponseStream(io.RawIOBase):
    """An object's body from the S3 server, as a file object; closing it
    gives the connection back to the pool."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.response.read(len(buffer))
        except Exception as exc:  # urllib3 errors: the connection broke mid-object
            raise StorageUnavailable(f"reading from the storage server failed: {exc}") from exc
        count = len(data)
        buffer[:count] = data
        return count

    def close(self) -> None:
        if not self.closed:
            self.response.close()
            self.response.release_conn()
        super().close()


class S3Storage(Storage):
    """Objects in one bucket of an S3-compatible server (MinIO), through
    the ``minio`` SDK.  Large puts are multipart uploads of ``part_size``
    parts, ``parallel_uploads`` sent at once (so about ``part_size *
    (parallel_uploads + 2)`` bytes in memory); compose is a server-side
    multipart copy.  The bucket is created on first write when missing."""

    kind = "s3"

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, *,
                 secure: bool = True, region: str = "us-east-1", part_size: int = 8 * 1024 * 1024,
                 parallel_uploads: int = 2, public_endpoint: str | None = None,
                 public_secure: bool | None = None) -> None:
        from minio import Minio

        from minio.helpers import check_bucket_name

        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} (5 MiB)")
        check_bucket_name(bucket, strict=True)  # ValueError naming the rule
        if parallel_uploads < 1:
            raise ValueError("parallel must be at least 1")
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.part_size = part_size
        self.parallel_uploads = parallel_uploads
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                            region=region, http_client=_http_client(secure))
        # presigned URLs are signed for the host clients will use
        self.signer = self.client if not public_endpoint else Minio(
            public_endpoint, access_key=access_key, secret_key=secret_key,
            secure=secure if public_secure is None else public_secure, region=region)
        self._bucket_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<S3Storage {self.endpoint}/{self.bucket}>"

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        from minio.error import MinioException, S3Error

        try:
            return func(*args, **kwargs)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise ObjectNotFound(f"{what}: no such object") from None
            if exc.code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"):
                raise StorageUnavailable(f"{what}: {exc.code}: {exc.message}") from exc
            raise StorageError(f"{what}: {exc.code}: {exc.message}") from exc
        except MinioException as exc:  # e.g. an unparseable answer
            raise StorageError(f"{what}: {exc}") from exc
        except (OSError, _urllib3_error()) as exc:
            raise StorageUnavailable(f"{what}: the storage server at {self.endpoint} failed: {exc}") from exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if self._bucket_ready:
                return
            if not self._call("bucket check", self.client.bucket_exists, self.bucket):
                try:
                    self._call("create bucket", self.client.make_bucket, self.bucket, location=self.region)
                except StorageError as exc:
                    if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                        raise
            self._bucket_ready = True

    def put(self, key: str, fileobj: BinaryIO, length: int | None = None,
            content_type: str = "application/octet-stream") -> ObjectInfo:
        check_key(key)
        self._ensure_bucket()
        reader = _CountingReader(fileobj, length)
        if length is None:
            size, part_size = -1, self.part_size
        else:
            size, part_size = length, max(self.part_size, -(-length // (MAX_PARTS - 1)))
        result = self._call(f"put {key}", self.client.put_object, self.bucket, key, reader, size,
                            content_type=content_type or "application/octet-stream", part_size=part_size,
                            num_parallel_uploads=self.parallel_uploads)
        return ObjectInfo(key, reader.count, content_type, (result.etag or "").strip('"'), None)

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        check_key(key)
        if length == 0:
            return io.BytesIO(b"")  # type: ignore[return-value]
        response = self._call(f"get {key}", self.client.get_object, self.bucket, key,
                              offset=offset, length=length or 0)
        return io.BufferedReader(_ResponseStream(response), CHUNK_SIZE)  # type: ignore[return-value]

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        obj = self._call(f"stat {key}", self.client.stat_object, self.bucket, key)
        return ObjectInfo(key, int(obj.size or 0), obj.content_type or "application/octet-stream",
                          (obj.etag or "").strip('"'), obj.last_modified)

    def delete(self, key: str) -> None:
        check_key(key)
        self._call(f"delete {key}", self.client.remove_object, self.bucket, key)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        if prefix:
            check_key(prefix, prefix=True)
        objects = self._call(f"list {prefix}", self.client.list_objects, self.bucket, prefix=prefix or None,
                             recursive=True)
        iterator = iter(objects)
        while True:
            obj = self._call(f"list {prefix}", next, iterator, None)
            if obj is None:
                return
            if not obj.is_dir:
                yield obj.object_name

    def delete_prefix(self, prefix: str) -> int:
        from minio.deleteobjects import DeleteObject

        if not prefix:
            raise InvalidKey("delete_prefix needs a prefix (refusing to delete everything)")
        keys = list(self.iter_keys(prefix))
        for start in range(0, len(keys), 1000):
            batch = [DeleteObject(key) for key in keys[start:start + 1000]]
            errors = self._call(f"delete {prefix}*", _drain, self.client.remove_objects(self.bucket, batch))
            if errors:
                raise StorageError(f"delete {prefix}*: {errors[0].code}: {errors[0].message} "
                                   f"({len(errors)} objects not deleted)")
        return len(keys)

    def signed_url(self, key: str, expires: int, *, filename: str | None = None,
                   disposition: str = "attachment", content_type: str | None = None,
                   base_url: str = "") -> str:
        check_key(key)
        headers = {"response-content-disposition": content_disposition(disposition, filename)}
        if content_type:
            headers["response-content-type"] = content_type
        return self._call(f"sign {key}", self.signer.presigned_get_object, self.bucket, key,
                          expires=dt.timedelta(seconds=int(expires)), response_headers=headers)

    def compose(self, key: str, parts: Iterable[str], content_type: str = "application/octet-stream"
                ) -> ObjectInfo:
        from minio.commonconfig import ComposeSource

        check_key(key)
        infos = self._check_parts(list(parts))
        sources = [ComposeSource(self.bucket, info.key) for info in infos]
        self._call(f"compose {key}", self.client.compose_object, self.bucket, key, sources,
                   metadata={"Content-Type": content_type})
        return self.stat(key)

    def check(self) -> None:
        """The server answers and the bucket exists; a missing bucket is
        created, as the first write would (a fresh deployment is healthy)."""
        if not self._call("bucket check", self.client.bucket_exists, self.bucket):
            self._bucket_ready = False
            self._ensure_bucket()


def _drain(iterator: Iterable[Any]) -> list[Any]:
    """minio's remove_objects is lazy: nothing is deleted until iterated."""
    return list(iterator)


def _urllib3_error() -> type[BaseException]:
    import urllib3.exceptions

    return urllib3.exceptions.HTTPError


def _http_client(secure: bool) -> Any:
    """minio's connection pool with bounded timeouts and retries, so an
    unreachable server fails a request in seconds, not minutes."""
    import urllib3

    kwargs: dict[str, Any] = {}
    if secure:
        kwargs["cert_reqs"] = "CERT_REQUIRED"
        ca_file = os.environ.get("SSL_CERT_FILE")
        if not ca_file:
            try:
                import certifi

                ca_file = certifi.where()
            except ImportError:
                ca_file = None
        if ca_file:
            kwargs["ca_certs"] = ca_file
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=120), maxsize=16,
        retries=urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]),
        **kwargs)


# --- construction from the setting ------------------------------------------------

def _flag(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def build_storage(url: str, *, data_dir: str | Path, secret: str) -> Storage:
    """The backend for ``learnsail.storage_url``.

    - empty: :class:`LocalStorage` in ``<data_dir>/files``;
    - ``file://<dir>``: local, in ``<dir>`` (a relative one is under data_dir);
    - ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=...&part_size=...
      &parallel=2&public_url=https://files.example.edu``: :class:`S3Storage` (also ``minio://``).

    Raises ``ValueError`` naming what is wrong.
    """
    url = (url or "").strip()
    if not url:
        return LocalStorage(Path(data_dir) / "files", secret)
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "file":
        if not rest:
            raise ValueError("file:// needs a directory, e.g. file:///srv/learnsail/files")
        path = Path(urllib.parse.unquote(rest)).expanduser()
        return LocalStorage(path if path.is_absolute() else Path(data_dir) / path, secret)
    if scheme not in ("s3", "minio"):
        raise ValueError(f"unsupported scheme {scheme!r}: use file://<dir> or s3://ACCESS:SECRET@host:port/bucket")
    parts = urllib.parse.urlsplit(url)
    bucket = parts.path.strip("/")
    if not parts.hostname or not bucket or "/" in bucket:
        raise ValueError("an s3 URL looks like s3://ACCESS:SECRET@host:port/bucket")
    if not parts.username or parts.password is None:
        raise ValueError("an s3 URL carries the access key and secret: s3://ACCESS:SECRET@host:port/bucket")
    query: Mapping[str, str] = dict(urllib.parse.parse_qsl(parts.query))
    unknown = set(query) - {"secure", "region", "part_size", "parallel", "public_url"}
    if unknown:
        raise ValueError(f"unknown s3 URL option(s) {', '.join(sorted(unknown))}: "
                         "use secure, region, part_size, parallel, public_url")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    endpoint = f"{host}:{parts.port}" if parts.port else host
    public_endpoint = public_secure = None
    if query.get("public_url"):
        public = urllib.parse.urlsplit(query["public_url"])
        if public.scheme not in ("http", "https") or not public.netloc:
            raise ValueError("public_url must be an http(s) URL such as https://files.example.edu")
        public_endpoint, public_secure = public.netloc, public.scheme == "https"
    try:
        part_size = int(query.get("part_size", 8 * 1024 * 1024))
        parallel = int(query.get("parallel", 2))
    except ValueError:
        raise ValueError("part_size (bytes) and parallel (parts sent at once) must be whole numbers") from None
    return S3Storage(endpoint, urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password),
                     bucket, secure=_flag(query.get("secure", "true"), "secure"),
                     region=query.get("region", "us-east-1"), part_size=part_size, parallel_uploads=parallel,
                     public_endpoint=public_endpoint, public_secure=public_secure)
