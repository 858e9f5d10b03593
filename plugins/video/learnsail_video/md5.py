"""An MD5 whose state can be saved between requests.

A chunked upload's MD5 is announced at the start and checked at the end.
``hashlib`` cannot save a digest's state, so checking it would mean
reading the whole file again when the last chunk arrives.  This module
drives OpenSSL's ``MD5_Init``/``MD5_Update``/``MD5_Final`` (the library
``hashlib`` itself uses) through ctypes on a context whose bytes are
saved with the upload task: a chunk arriving in order is hashed as it
streams by, and the task keeps the state of "the first N bytes".

The state is only meaningful to the same OpenSSL build on the same kind
of machine, so it carries a tag of both; a state with another tag (a
worker on another architecture) is ignored and the bytes are read again.
Without libcrypto, :func:`available` is False, states are never saved and
completion reads the file once, as it would anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import platform
from typing import Any

#: bytes reserved for OpenSSL's MD5_CTX (92 on every current platform)
_CTX_SIZE = 128


def _load() -> tuple[Any, bytes] | None:
    try:
        import _hashlib  # noqa: F401  (libcrypto is already loaded by hashlib)

        name = ctypes.util.find_library("crypto")
        if not name:
            return None
        lib = ctypes.CDLL(name)
        for function in ("MD5_Init", "MD5_Update", "MD5_Final"):
            getattr(lib, function)
        lib.MD5_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        lib.MD5_Init.argtypes = [ctypes.c_void_p]
        lib.MD5_Final.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        try:
            lib.OpenSSL_version.restype = ctypes.c_char_p
            version = lib.OpenSSL_version(0) or b"?"
        except AttributeError:
            version = b"?"
        tag = b"md5ctx1|" + version[:40] + b"|" + platform.machine().encode()[:16] + b"|"
        # the tag is a fixed-width prefix: pad it so the context always starts at the same place
        tag = tag.ljust(64, b" ")
        _check(lib)
        return lib, tag
    except (OSError, AttributeError, AssertionError):
        return None


def _check(lib: Any) -> None:
    ctx = ctypes.create_string_buffer(_CTX_SIZE)
    lib.MD5_Init(ctx)
    lib.MD5_Update(ctx, b"learn", 5)
    saved = ctypes.create_string_buffer(ctx.raw, _CTX_SIZE)
    lib.MD5_Update(saved, b"sail", 4)
    out = ctypes.create_string_buffer(16)
    lib.MD5_Final(out, saved)
    assert out.raw == hashlib.md5(b"learnsail").digest()


_LIB = _load()


def available() -> bool:
    """Can states be saved here?"""
    return _LIB is not None


class ResumableMD5:
    """``update``/``hexdigest`` like hashlib's md5, plus :meth:`state`.

    ``ResumableMD5(state)`` continues from a saved state; a state this
    process cannot continue raises :class:`ValueError` (start again from
    byte 0).  Without libcrypto it is plain hashlib and :meth:`state` is None.
    """

    def __init__(self, state: bytes | None = None) -> None:
        self._ctx: Any = None
        self._hash: Any = None
        if _LIB is None:
            if state is not None:
                raise ValueError("saved MD5 states cannot be continued here (no libcrypto)")
            self._hash = hashlib.md5()
            return
        lib, tag = _LIB
        if state is None:
            self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
            lib.MD5_Init(self._ctx)
        else:
            if not state.startswith(tag) or len(state) != len(tag) + _CTX_SIZE:
                raise ValueError("the saved MD5 state comes from another OpenSSL build or machine")
            self._ctx = ctypes.create_string_buffer(state[len(tag):], _CTX_SIZE)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)
            return
        if not data:
            return
        if isinstance(data, bytes):
            _LIB[0].MD5_Update(self._ctx, data, len(data))  # type: ignore[index]
            return
        view = memoryview(data)
        if view.readonly:
            raw = bytes(view)
            _LIB[0].MD5_Update(self._ctx, raw, len(raw))  # type: ignore[index]
            return
        buffer = (ctypes.c_char * view.nbytes).from_buffer(view)
        _LIB[0].MD5_Update(self._ctx, buffer, view.nbytes)  # type: ignore[index]

    def state(self) -> bytes | None:
        """The bytes to save (None when states cannot be saved here)."""
        if self._hash is not None:
            return None
        return _LIB[1] + self._ctx.raw  # type: ignore[index]

    def hexdigest(self) -> str:
        """The digest of everything so far (the state stays usable)."""
        if self._hash is not None:
            return self._hash.hexdigest()
        copy = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)
        out = ctypes.create_string_buffer(16)
        _LIB[0].MD5_Final(out, copy)  # type: ignore[index]
        return out.raw.hex()


def resume(state: bytes | None) -> ResumableMD5 | None:
    """The hash continuing ``state``, or None when it cannot be continued."""
    try:
        return ResumableMD5(state)
    except ValueError:
        return None
