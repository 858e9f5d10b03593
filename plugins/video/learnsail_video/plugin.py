"""learnsail-video: the plugin's face, hook implementations only.

Registered through the entry point ``learnsail.plugins = video =
learnsail_video.plugin`` (see setup.cfg); enabled by naming it in
``learnsail.plugins`` (``LEARNSAIL_PLUGINS``) with ``courses``, or with ``*``.
"""

from __future__ import annotations

from learnsail import hookimpl
from learnsail.plugins import PluginInfo
from learnsail.settings import Setting, as_int

from learnsail_video import __version__
from learnsail_video import models  # noqa: F401  (registers the tables on learnsail.db.Base.metadata)
from learnsail_video import settings as video_settings

PLUGIN = PluginInfo(
    name="video",
    version=__version__,
    requires=("courses",),
    core=">=0.1,<1",
    description="Resumable video uploads (chunks and tus), FFmpeg transcoding to an HLS ladder, "
                "signed playback, watch records and statistics.",
)


def _at_least(minimum):
    def parse(value):
        number = as_int(value)
        if number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    return parse


def _size(value):
    from learnsail.storage import parse_size

    number = parse_size(value)
    if number < 1:
        raise ValueError("must be at least 1 byte")
    return number


@hookimpl
def learnsail_settings():
    return [
        Setting(video_settings.MAX_UPLOAD_SIZE, "8GiB",
                "Largest video accepted (B, KiB, MiB, GiB); checked when an upload starts and while its bytes "
                "arrive (413).", _size),
        Setting(video_settings.MIN_CHUNK_SIZE, "256KiB",
                "Smallest chunk_size a chunked upload may announce (every chunk but the last has that size).",
                _size),
        Setting(video_settings.MAX_CHUNK_SIZE, "64MiB",
                "Largest chunk_size a chunked upload may announce; also the body limit of "
                "POST /api/v1/videos/upload/chunk (plus the form's framing).", _size),
        Setting(video_settings.UPLOAD_TTL_HOURS, 24,
                "Hours an unfinished upload lives after the last bytes it received; then the periodic task "
                "video.expire_uploads removes its parts.", _at_least(1)),
        Setting(video_settings.FFPROBE, "ffprobe", "The ffprobe program (a name on PATH or a path)."),
        Setting(video_settings.PROBE_TIMEOUT, 60, "Seconds one ffprobe run may take.", _at_least(1)),
    ]


@hookimpl
def learnsail_permissions():
    from learnsail_video.permissions import DEFAULTS

    return DEFAULTS


@hookimpl
def learnsail_includeme(config):
    from learnsail_video import tasks  # noqa: F401  (declares the plugin's tasks)
    from learnsail_video.views import SERVICES, includeme

    includeme(config)
    for service in SERVICES:
        config.add_learnsail_service(service)


@hookimpl
def learnsail_periodic_tasks(settings):
    from learnsail.tasks import Periodic

    return [Periodic("video.expire_uploads", "video.expire_uploads", every=900)]
