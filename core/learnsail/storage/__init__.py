"""The storage service of the core (see docs/storage.md).

- :mod:`.backends`: the :class:`~.backends.Storage` interface, a local
  directory (embedded default) and S3/MinIO, chosen by ``learnsail.storage_url``;
  ``request.storage`` / ``registry["learnsail.storage"]``.
- :mod:`.services`: store an upload (type sniffed from the content, images
  re-encoded), register an object, attach files to plugin objects, access
  rules, signed URLs, delete.
- :mod:`.views`: ``POST /api/v1/upload/image|file``, ``/api/v1/files...``,
  ``POST /api/v1/users/me/avatar`` and the local signed-URL endpoint.
"""

from __future__ import annotations

import re
from typing import Any

from learnsail.settings import Setting, SettingError, as_int, as_list

_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}
KINDS = ("image", "document", "text", "archive", "audio", "video", "other")


def parse_size(value: Any) -> int:
    """``"10MiB"`` -> 10485760 (B, KiB, MiB, GiB, TiB or a plain number of bytes)."""
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {value!r} (write e.g. 10MiB, 1GiB or a number of bytes)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_size_limits(value: Any) -> dict[str, int]:
    """``"image=10MiB video=1GiB"`` -> ``{"image": 10485760, ...}``; kinds
    left out get the ``other`` limit (10 MiB when not given either)."""
    if isinstance(value, dict):
        return dict(value)
    limits: dict[str, int] = {}
    for item in str(value).replace(",", " ").split():
        kind, eq, size = item.partition("=")
        if not eq or kind not in KINDS:
            raise ValueError(f"{item!r}: write kind=size with a kind among {', '.join(KINDS)}")
        limits[kind] = parse_size(size)
    other = limits.setdefault("other", 10 * 1024 ** 2)
    for kind in KINDS:
        limits.setdefault(kind, other)
    return limits


DEFAULT_FILE_TYPES = (
    "image/jpeg image/png image/gif image/webp application/pdf "
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document "
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet "
    "application/vnd.openxmlformats-officedocument.presentationml.presentation "
    "application/msword application/vnd.ms-excel application/vnd.ms-powerpoint "
    "application/vnd.oasis.opendocument.text application/vnd.oasis.opendocument.spreadsheet "
    "application/vnd.oasis.opendocument.presentation application/epub+zip text/plain "
    "application/zip application/x-7z-compressed application/vnd.rar "
    "audio/mpeg audio/mp4 audio/aac audio/wav audio/ogg audio/flac video/mp4 video/webm video/quicktime"
)

#: the settings this service declares (listed by core_plugin.learnsail_settings)
SETTINGS: tuple[Setting, ...] = (
    Setting("learnsail.storage_url", "",
            "Where files are stored. Empty: the directory `<data_dir>/files`. `file:///srv/files`: that "
            "directory. `s3://ACCESS:SECRET@host:9000/bucket?secure=false&region=us-east-1`: a MinIO/S3 "
            "bucket (created when missing)."),
    Setting("learnsail.storage_url_ttl", 3600, "Seconds a signed download URL stays valid.", as_int),
    Setting("learnsail.storage_size_limits",
            "image=10MiB document=50MiB text=5MiB archive=100MiB audio=100MiB video=1GiB other=10MiB",
            "Largest upload per kind of file (kind=size, sizes in B, KiB, MiB, GiB); larger ones get 413.",
            parse_size_limits),
    Setting("learnsail.storage_file_types", DEFAULT_FILE_TYPES,
            "MIME types `POST /api/v1/upload/file` accepts (detected from the content), separated by spaces.",
            as_list),
    Setting("learnsail.storage_image_max_side", 12000, "Widest and tallest image accepted, in pixels.", as_int),
    Setting("learnsail.storage_image_max_pixels", 30_000_000,
            "Most pixels an image may have (width x height, times the frames of an animation); "
            "larger ones are refused before they are decoded.", as_int),
    Setting("learnsail.storage_thumbnail_size", 320, "Longest side of image previews, in pixels.", as_int),
    Setting("learnsail.storage_avatar_size", 512, "Avatars are scaled down to fit this many pixels a side.",
            as_int),
)

#: permissions and their default grants (merged by core_plugin.learnsail_permissions)
PERMISSIONS: dict[str, list[str]] = {
    "core:files:upload": ["authenticated"],
    "core:files:view": ["admin"],
    "core:files:manage": ["admin"],
}

REGISTRY_KEY = "learnsail.storage"


def get_storage(target: Any) -> Any:
    """The app's :class:`~learnsail.storage.backends.Storage`, from a
    request, a session, a task context or the registry."""
    from learnsail.aftercommit import registry_of

    return registry_of(target)[REGISTRY_KEY]


def _request_storage(request: Any) -> Any:
    return request.registry[REGISTRY_KEY]


def includeme(config: Any) -> None:
    """Wire the service into the app (called by learnsail.app.configure)."""
    from learnsail import settings as settings_mod
    from learnsail.storage.backends import build_storage

    settings = config.get_settings()
    try:
        storage = build_storage(settings.get("learnsail.storage_url", ""),
                                data_dir=settings_mod.data_dir(settings),
                                secret=settings_mod.secret_key(settings))
    except (ValueError, OSError) as exc:
        raise SettingError(f"learnsail.storage_url (LEARNSAIL_STORAGE_URL): {exc}") from None
    for name in ("learnsail.storage_url_ttl", "learnsail.storage_thumbnail_size", "learnsail.storage_avatar_size",
                 "learnsail.storage_image_max_side", "learnsail.storage_image_max_pixels"):
        if int(settings.get(name, 1)) < 1:
            raise SettingError(f"{name} must be at least 1")
    config.registry[REGISTRY_KEY] = storage
    config.add_request_method(_request_storage, "storage", reify=True)
    pm = config.registry.get("learnsail.pm")
    if pm is not None and pm.get_plugin("core.storage") is None:
        from learnsail.storage import hooks

        pm.register(hooks, name="core.storage")
    from learnsail.storage import tasks  # noqa: F401  (declares the storage tasks)

    config.include("learnsail.storage.views")
