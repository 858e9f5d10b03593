"""A streaming ``multipart/form-data`` reader for uploads.

The request body is read in bounded chunks; a file part goes straight into a
spooled temporary file (memory up to 1 MiB, then disk), counted as it
arrives, so an upload over the limit is refused as soon as the limit is
passed, and no part is ever held whole in memory.  Plain fields are small
(a few KiB at most).

A caller that knows where a file belongs (a chunk of a resumable upload)
passes ``file_sink``: the file part is then written there as it arrives,
with no temporary copy; the fields sent before the file are known by then.
"""

from __future__ import annotations

import dataclasses
import email.message
import tempfile
from typing import Any, BinaryIO, Callable

CHUNK_SIZE = 256 * 1024
SPOOL_SIZE = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_PREAMBLE_BYTES = 64 * 1024


class FormError(ValueError):
    """The body is not a well-formed form of the expected shape.  ``field``
    names the field the problem is about."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


class FormTooLarge(Exception):
    """A file part is larger than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


@dataclasses.dataclass
class FormFile:
    name: str
    filename: str
    content_type: str
    file: Any  #: a spooled temporary file, positioned at 0
    size: int


@dataclasses.dataclass
class Form:
    fields: dict[str, str]
    files: dict[str, FormFile]

    def close(self) -> None:
        for item in self.files.values():
            item.file.close()


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type header."""
    message = email.message.Message()
    message["Content-Type"] = content_type or ""
    if message.get_content_type() != "multipart/form-data":
        raise FormError("Send the upload as multipart/form-data.", "content_type")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise FormError("The multipart/form-data Content-Type has no valid boundary.", "content_type")
    return boundary.encode("latin-1", "replace")


class _Body:
    """The body as a buffer refilled from the stream, never past Content-Length."""

    def __init__(self, stream: BinaryIO, length: int | None) -> None:
        self.stream = stream
        self.left = length
        self.buffer = bytearray(b"\r\n")  # so even the first delimiter is CRLF--boundary
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        size = CHUNK_SIZE if self.left is None else min(CHUNK_SIZE, self.left)
        data = self.stream.read(size) if size else b""
        if not data:
            self.eof = True
            return False
        if self.left is not None:
            self.left -= len(data)
        self.buffer += data
        return True


def _parse_headers(raw: bytes) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    headers: dict[str, str] = {}
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise FormError("A part of the form has a malformed header.")
        headers[name.strip().lower()] = value.strip()
    return headers


def _disposition(headers: dict[str, str]) -> tuple[str, str | None]:
    message = email.message.Message()
    message["Content-Disposition"] = headers.get("content-disposition", "")
    if message.get_content_disposition() != "form-data":
        raise FormError("A part of the form has no 'Content-Disposition: form-data' header.")
    name = message.get_param("name", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise FormError("A part of the form has no name.")
    filename = message.get_filename()
    return name, filename


def read_form(stream: BinaryIO, content_type: str, content_length: int | None, *, file_fields: tuple[str, ...],
              max_file_size: int, max_field_size: int = 4096, max_parts: int = 16,
              file_sink: Callable[[Form, str, str, str], Any] | None = None) -> Form:
    """Read a form whose file parts may only be ``file_fields`` (one each),
    at most ``max_file_size`` bytes each (:class:`FormTooLarge`), and whose
    other fields are at most ``max_field_size`` bytes of UTF-8.  Anything
    else malformed raises :class:`FormError`.

    ``file_sink(form, name, filename, content_type)``, when given, is called
    as a file part starts (``form.fields`` holds the fields sent before it)
    and returns the writable object its bytes go to instead of a temporary
    file; it may raise (a :class:`FormError` naming the field) to refuse the
    part.  The object becomes the part's ``file``: it is rewound at the end
    of the part if it is seekable, and closed by :meth:`Form.close`."""
    delimiter = b"\r\n--" + boundary_of(content_type)
    body = _Body(stream, content_length)
    buffer = body.buffer
    form = Form({}, {})
    try:
        # the preamble, up to the first delimiter
        while (index := buffer.find(delimiter)) < 0:
            if len(buffer) > MAX_PREAMBLE_BYTES or not body.fill():
                raise FormError("The body is not a multipart form (no boundary found).")
        del buffer[:index + len(delimiter)]
        parts = 0
        while True:
            while len(buffer) < 2 and body.fill():
                pass
            if buffer[:2] == b"--":
                return form  # the closing delimiter; the epilogue is ignored
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                if len(buffer) > MAX_HEADER_BYTES or not body.fill():
                    raise FormError("A part of the form has no end to its headers.")
            if not buffer.startswith(b"\r\n"):
                raise FormError("The form is malformed after a boundary.")
            headers = _parse_headers(bytes(buffer[2:end]))
            del buffer[:end + 4]
            parts += 1
            if parts > max_parts:
                raise FormError(f"The form has more than {max_parts} parts.")
            name, filename = _disposition(headers)
            if filename is not None:
                if name not in file_fields:
                    raise FormError(f"Unexpected file field {name!r}.", name)
                if name in form.files:
                    raise FormError("Send one file per request.", name)
                part_type = headers.get("content-type", "")
                if file_sink is None:
                    sink: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE)
                else:
                    sink = file_sink(form, name, filename, part_type)
                form.files[name] = FormFile(name, filename, part_type, sink, 0)
                limit = max_file_size
            else:
                if name in form.fields:
                    raise FormError("The field is given twice.", name)
                sink = bytearray()
                limit = max_field_size
            size = 0
            keep = len(delimiter) - 1
            while True:
                index = buffer.find(delimiter)
                if index >= 0:
                    chunk_end, done = index, True
                else:
                    chunk_end, done = max(0, len(buffer) - keep), False
                if chunk_end:
                    size += chunk_end
                    if size > limit:
                        if filename is None:
                            raise FormError(f"The field is longer than {max_field_size} bytes.", name)
                        raise FormTooLarge(max_file_size)
                    if isinstance(sink, bytearray):
                        sink += buffer[:chunk_end]
                    else:
                        sink.write(buffer[:chunk_end])
                    del buffer[:chunk_end]
                if done:
                    del buffer[:len(delimiter)]
                    break
                if not body.fill():
                    raise FormError("The body ends in the middle of a part (upload interrupted?).", name)
            if filename is not None:
                item = form.files[name]
                item.size = size
                if file_sink is None or _seekable(item.file):
                    item.file.seek(0)
            else:
                try:
                    form.fields[name] = bytes(sink).decode("utf-8")
                except UnicodeDecodeError:
                    raise FormError("The field is not valid UTF-8.", name) from None
    except BaseException:
        form.close()
        raise
