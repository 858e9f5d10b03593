"""Where the bytes of an unfinished upload wait: the parts of an upload task.

Every part of a task lives under its prefix ``video-uploads/<token>/``, so
removing the task's parts is one ``delete_prefix``, orphans included (a
request that wrote bytes and then failed).

- **Local storage** (:class:`LocalParts`): one part file,
  ``video-uploads/<token>/data``, every chunk written in place at its
  offset (``pwrite``), in any order; a tus PATCH appends at the upload's
  offset.  Completion renames the file to the video's key: no byte is
  copied again.
- **S3/MinIO** (:class:`ObjectParts`): one object per chunk (or per tus
  PATCH), spooled to a temporary file while it arrives (memory up to 1 MiB)
  and put when it is complete.  Completion composes them server-side when
  every part but the last holds 5 MiB or more (S3's rule), otherwise
  streams their concatenation into the video's key.

Either way a piece is written as it streams in through a :class:`PieceWriter`,
which counts it (refusing more than expected at once), and feeds the
piece's MD5, the upload's resumable MD5 and a tus checksum as the bytes
pass, so nothing is read twice.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import hashlib
import io
import os
import queue
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from learnsail.storage.backends import (CHUNK_SIZE, MAX_PARTS, MIN_PART_SIZE, LocalStorage, ObjectInfo, Storage,
                                        StorageError)

SPOOL_SIZE = 1024 * 1024


class PieceTooLarge(Exception):
    """More bytes arrived than the piece may hold."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


@dataclasses.dataclass
class PieceSpec:
    """What one write is about to receive."""

    number: int  #: chunk index, or tus sequence number
    start: int  #: offset in the file
    limit: int  #: most bytes it may hold
    #: a piece already received is being sent again: write it aside, so the
    #: first copy stays intact unless the new one differs
    replacing: bool = False
    #: an in-place piece that may be cut back to ``start`` when dropped (tus)
    truncate_on_drop: bool = False


@dataclasses.dataclass
class PartRef:
    """A recorded piece (a row of ``video_upload_parts``)."""

    number: int
    start: int
    size: int
    object_key: str | None


class _Background:
    """A hashlib object fed in a helper thread: a piece's own MD5 (or a tus
    checksum) and the upload's MD5 then use two cores (hashing releases
    the GIL), so hashing twice costs little more than hashing once.  At
    most a few blocks wait for the helper."""

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher
        self._blocks: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._thread: threading.Thread | None = None

    def update(self, data: Any) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="learnsail-video-hash", daemon=True)
            self._thread.start()
        self._blocks.put(data)

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            self._hasher.update(block)

    def _finish(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._blocks.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        self._finish()
        return self._hasher.hexdigest()

    def digest(self) -> bytes:
        self._finish()
        return self._hasher.digest()

    def close(self) -> None:
        self._finish()


class PieceWriter(abc.ABC):
    """A piece's bytes as they arrive: ``write()`` stores and hashes them.

    ``md5`` is the piece's own MD5 (``piece_md5=False`` leaves it out: a
    tus PATCH written in place keeps no record of its own); ``resumable``
    (the upload's MD5 so far, when this piece continues it) and ``checksum``
    (a hashlib object, tus ``Upload-Checksum``) are fed too.
    """

    def __init__(self, spec: PieceSpec, *, resumable: Any = None, checksum: Any = None,
                 piece_md5: bool = True) -> None:
        self.spec = spec
        self.count = 0
        self.md5: Any = _Background(hashlib.md5()) if piece_md5 else None
        self.resumable = resumable
        self.checksum = _Background(checksum) if checksum is not None else None
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = len(data)
        if self.count + size > self.spec.limit:
            raise PieceTooLarge(self.spec.limit)
        if (self.md5 is not None or self.checksum is not None) and isinstance(data, (bytearray, memoryview)):
            data = bytes(data)  # the caller may reuse its buffer while a helper hashes it
        self._store(data)
        self.count += size
        if self.md5 is not None:
            self.md5.update(data)
        if self.resumable is not None:
            self.resumable.update(data)
        if self.checksum is not None:
            self.checksum.update(data)
        return size

    def digest(self) -> str:
        """The piece's MD5 (hex)."""
        return self.md5.hexdigest() if self.md5 is not None else ""

    def copy_from(self, stream: BinaryIO, length: int | None) -> None:
        """Write what ``stream`` gives, up to ``length`` bytes (None: to its end)."""
        left = length
        while left is None or left > 0:
            data = stream.read(CHUNK_SIZE if left is None else min(CHUNK_SIZE, left))
            if not data:
                return
            self.write(data)
            if left is not None:
                left -= len(data)

    @abc.abstractmethod
    def _store(self, data: Any) -> None:
        ...

    def close(self) -> None:
        for helper in (self.md5, self.checksum):
            if helper is not None:
                helper.close()
        self.closed = True


class PartStore(abc.ABC):
    """The interface of both backends (see the module docstring)."""

    #: pieces are written in place in one part file (no object per piece)
    in_place = False

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @abc.abstractmethod
    def writer(self, prefix: str, spec: PieceSpec, **hashers: Any) -> PieceWriter:
        ...

    @abc.abstractmethod
    def keep(self, prefix: str, writer: PieceWriter, old: PartRef | None = None) -> str | None:
        """Make the written piece part of the upload (``old``: the piece it
        replaces); returns the object key holding it (None: in place)."""

    @abc.abstractmethod
    def drop(self, prefix: str, writer: PieceWriter) -> None:
        """Forget the written piece (a wrong size, a checksum mismatch)."""

    def forget_replaced(self, old: PartRef, new_key: str | None) -> None:
        """After the commit that recorded a replacement: remove what it replaced."""

    @abc.abstractmethod
    def written_digest(self, prefix: str, writer: PieceWriter) -> str:
        """The MD5 of what ``writer`` wrote (before :meth:`keep`), read back:
        a piece's own MD5 is computed only when it is needed."""

    def part_digest(self, prefix: str, part: PartRef) -> str:
        """The MD5 of a stored piece, read back."""
        digest = hashlib.md5()
        for block in self.read(prefix, [part], part.start + part.size, part.start):
            digest.update(block)
        return digest.hexdigest()

    @abc.abstractmethod
    def read(self, prefix: str, parts: Sequence[PartRef], size: int, start: int = 0) -> Iterator[bytes]:
        """The upload's bytes from ``start`` to ``size``, in blocks."""

    def head(self, prefix: str, parts: Sequence[PartRef], size: int, length: int) -> bytes:
        """The upload's first ``length`` bytes (for content sniffing)."""
        out = bytearray()
        for block in self.read(prefix, parts, min(size, length)):
            out += block
        return bytes(out[:length])

    @abc.abstractmethod
    def assemble(self, prefix: str, parts: Sequence[PartRef], size: int, key: str, content_type: str,
                 check: Callable[[str], Any]) -> tuple[ObjectInfo, Any]:
        """Store the whole upload as ``key`` and run ``check(path_or_url)``
        on it (ffprobe); when ``check`` raises, nothing is left at ``key``
        and the parts are as they were.  Returns ``(info, check's answer)``."""

    @abc.abstractmethod
    def undo_assemble(self, prefix: str, key: str) -> None:
        """Put things back as they were before :meth:`assemble` (its
        transaction did not commit)."""

    def remove(self, prefix: str) -> int:
        """Delete every part of the upload."""
        return self.storage.delete_prefix(prefix)


def part_store(storage: Storage) -> PartStore:
    """The part store of ``storage``'s kind."""
    if isinstance(storage, LocalStorage):
        return LocalParts(storage)
    return ObjectParts(storage)


# --- local storage: one part file, written in place ------------------------------------------

class _PositionedWriter(PieceWriter):
    def __init__(self, path: Path, position: int, spec: PieceSpec, **hashers: Any) -> None:
        super().__init__(spec, **hashers)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        self.position = position

    def _store(self, data: Any) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.position)
            self.position += written
            view = view[written:]

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


class LocalParts(PartStore):
    storage: LocalStorage
    in_place = True

    def data_path(self, prefix: str) -> Path:
        return self.storage.path_of(prefix + "data")

    def writer(self, prefix: str, spec: PieceSpec, **hashers: Any) -> PieceWriter:
        if spec.replacing:
            side = self.storage.path_of(f"{prefix}replace-{spec.number}-{uuid.uuid4().hex}")
            return _PositionedWriter(side, 0, spec, **hashers)
        return _PositionedWriter(self.data_path(prefix), spec.start, spec, **hashers)

    def keep(self, prefix: str, writer: PieceWriter, old: PartRef | None = None) -> str | None:
        writer.close()
        if writer.spec.replacing:
            # the new copy differs from the first: it takes the piece's place in the part file
            side = writer.path  # type: ignore[attr-defined]
            fd = os.open(self.data_path(prefix), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                with open(side, "rb") as source:
                    position = writer.spec.start
                    while block := source.read(CHUNK_SIZE):
                        os.pwrite(fd, block, position)
                        position += len(block)
            finally:
                os.close(fd)
            side.unlink()
        return None

    def written_digest(self, prefix: str, writer: PieceWriter) -> str:
        digest = hashlib.md5()
        path = writer.path if writer.spec.replacing else self.data_path(prefix)  # type: ignore[attr-defined]
        start = 0 if writer.spec.replacing else writer.spec.start
        with open(path, "rb") as handle:
            handle.seek(start)
            left = writer.count
            while left > 0 and (block := handle.read(min(CHUNK_SIZE, left))):
                digest.update(block)
                left -= len(block)
        return digest.hexdigest()

    def drop(self, prefix: str, writer: PieceWriter) -> None:
        writer.close()
        if writer.spec.replacing:
            writer.path.unlink(missing_ok=True)  # type: ignore[attr-defined]
        elif writer.spec.truncate_on_drop:
            os.truncate(self.data_path(prefix), writer.spec.start)

    def read(self, prefix: str, parts: Sequence[PartRef], size: int, start: int = 0) -> Iterator[bytes]:
        with open(self.data_path(prefix), "rb") as handle:
            handle.seek(start)
            left = size - start
            while left > 0:
                block = handle.read(min(CHUNK_SIZE, left))
                if not block:
                    raise StorageError(f"the part file of {prefix} ends {left} bytes early")
                left -= len(block)
                yield block

    def assemble(self, prefix: str, parts: Sequence[PartRef], size: int, key: str, content_type: str,
                 check: Callable[[str], Any]) -> tuple[ObjectInfo, Any]:
        data = self.data_path(prefix)
        if data.stat().st_size != size:
            # bytes past the end: a write that failed after the last one counted
            os.truncate(data, size)
        answer = check(str(data))
        target = self.storage.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(data, target)
        return self.storage.stat(key), answer

    def undo_assemble(self, prefix: str, key: str) -> None:
        target = self.storage.path_of(key)
        if target.exists():
            os.replace(target, self.data_path(prefix))


# --- S3: one object per piece ------------------------------------------------------------------

class _SpooledWriter(PieceWriter):
    def __init__(self, key: str, spec: PieceSpec, **hashers: Any) -> None:
        super().__init__(spec, **hashers)
        self.key = key
        self.spool: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE)

    def _store(self, data: Any) -> None:
        self.spool.write(data)

    def close(self) -> None:
        if not self.closed:
            self.spool.close()
        super().close()


class _Concatenation(io.RawIOBase):
    """The objects ``keys`` read one after the other."""

    def __init__(self, storage: Storage, keys: Iterable[str]) -> None:
        self.storage = storage
        self.keys = list(keys)
        self.current: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self.current is None:
                if not self.keys:
                    return 0
                self.current = self.storage.open(self.keys.pop(0))
            count = self.current.readinto(buffer)
            if count:
                return count
            self.current.close()
            self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        super().close()


class ObjectParts(PartStore):
    def writer(self, prefix: str, spec: PieceSpec, **hashers: Any) -> PieceWriter:
        suffix = f"-{uuid.uuid4().hex[:12]}" if spec.replacing else ""
        return _SpooledWriter(f"{prefix}{spec.number:06d}{suffix}", spec, **hashers)

    def keep(self, prefix: str, writer: PieceWriter, old: PartRef | None = None) -> str | None:
        spooled: _SpooledWriter = writer  # type: ignore[assignment]
        try:
            spooled.spool.seek(0)
            self.storage.put(spooled.key, spooled.spool, spooled.count)
        finally:
            spooled.close()
        return spooled.key

    def drop(self, prefix: str, writer: PieceWriter) -> None:
        writer.close()  # nothing was put yet

    def written_digest(self, prefix: str, writer: PieceWriter) -> str:
        spool = writer.spool  # type: ignore[attr-defined]
        spool.seek(0)
        digest = hashlib.md5()
        while block := spool.read(CHUNK_SIZE):
            digest.update(block)
        return digest.hexdigest()

    def forget_replaced(self, old: PartRef, new_key: str | None) -> None:
        if old.object_key and old.object_key != new_key:
            self.storage.delete(old.object_key)

    def _keys(self, parts: Sequence[PartRef], size: int) -> list[str]:
        ordered = sorted(parts, key=lambda part: part.start)
        position = 0
        for part in ordered:
            if part.start != position or not part.object_key:
                raise StorageError(f"the parts do not cover the upload (a gap at byte {position})")
            position += part.size
        if position != size:
            raise StorageError(f"the parts hold {position} bytes, not {size}")
        return [part.object_key for part in ordered]  # type: ignore[misc]

    def read(self, prefix: str, parts: Sequence[PartRef], size: int, start: int = 0) -> Iterator[bytes]:
        for part in sorted(parts, key=lambda part: part.start):
            end = part.start + part.size
            if end <= start or part.start >= size:
                continue
            offset = max(0, start - part.start)
            length = min(end, size) - part.start - offset
            with self.storage.open(part.object_key, offset, length) as stream:  # type: ignore[arg-type]
                while block := stream.read(CHUNK_SIZE):
                    yield block

    def assemble(self, prefix: str, parts: Sequence[PartRef], size: int, key: str, content_type: str,
                 check: Callable[[str], Any]) -> tuple[ObjectInfo, Any]:
        keys = self._keys(parts, size)
        sizes = [part.size for part in sorted(parts, key=lambda part: part.start)]
        if len(keys) <= MAX_PARTS and all(s >= MIN_PART_SIZE for s in sizes[:-1]):
            info = self.storage.compose(key, keys, content_type=content_type)
        else:
            # pieces under 5 MiB cannot be composed: their concatenation streams through
            with _Concatenation(self.storage, keys) as stream:
                info = self.storage.put(key, io.BufferedReader(stream, CHUNK_SIZE), size, content_type)
        try:
            return info, check(self.internal_url(key))
        except BaseException:
            self.storage.delete(key)
            raise

    def undo_assemble(self, prefix: str, key: str) -> None:
        self.storage.delete(key)  # the parts were left as they were

    def internal_url(self, key: str, seconds: int = 900) -> str:
        """A presigned URL the app itself (ffprobe) can read ``key`` through."""
        client = getattr(self.storage, "client", None)
        if client is not None:
            return client.presigned_get_object(self.storage.bucket, key,  # type: ignore[attr-defined]
                                               expires=dt.timedelta(seconds=seconds))
        return self.storage.signed_url(key, seconds)
