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
from learnsail_video import media_models  # noqa: F401  (processing and watching tables, video_0002)
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


def _levels(value):
    from learnsail_video.transcode import LEVEL_NAMES

    names = [name for name in str(value).replace(",", " ").split() if name]
    unknown = [name for name in names if name not in LEVEL_NAMES]
    if unknown or not names:
        raise ValueError(f"name one or more of {', '.join(LEVEL_NAMES)} (got {value!r})")
    return tuple(name for name in LEVEL_NAMES if name in names)


def _preset(value):
    presets = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
    if value not in presets:
        raise ValueError(f"must be one of {', '.join(presets)}")
    return value


def _percent(value):
    number = as_int(value)
    if not 1 <= number <= 100:
        raise ValueError("must be between 1 and 100")
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
        # processing
        Setting(video_settings.FFMPEG, "ffmpeg", "The ffmpeg program (a name on PATH or a path)."),
        Setting(video_settings.LEVELS, "sd hd fhd 4k",
                "Quality levels offered, among 001's sd (640x360 @ 800k), hd (1280x720 @ 2.5M), fhd "
                "(1920x1080 @ 5M) and 4k (3840x2160 @ 15M); a video gets those its source fills.", _levels),
        Setting(video_settings.PRESET, "veryfast",
                "libx264 preset of the ladder pass (ultrafast ... veryslow): slower is smaller at the same quality.",
                _preset),
        Setting(video_settings.SEGMENT_SECONDS, 4, "Seconds per HLS segment (a multiple of keyframe_seconds).",
                _at_least(1)),
        Setting(video_settings.KEYFRAME_SECONDS, 2, "Seconds between two keyframes of every rung.", _at_least(1)),
        Setting(video_settings.AUDIO_BITRATE, 128000, "AAC bitrate of every rung, bits per second.",
                _at_least(16000)),
        Setting(video_settings.SPRITE_INTERVAL, 5,
                "Seconds between two thumbnails of the scrubbing sprite (short videos get at least ten).",
                _at_least(1)),
        Setting(video_settings.MAX_ATTEMPTS, 3,
                "Runs of one transcode job (a failed run is retried with backoff) before the video is marked "
                "failed.", _at_least(1)),
        Setting(video_settings.STALE_SECONDS, 120,
                "Seconds without a heartbeat after which a running transcode is presumed dead; the sweeper "
                "then requeues it (or fails it past max_attempts).", _at_least(10)),
        Setting(video_settings.SWEEP_SECONDS, 60, "Seconds between two runs of the sweeper video.sweep_stale.",
                _at_least(1)),
        Setting(video_settings.QUEUED_TIMEOUT, 21600,
                "Seconds a transcode may wait in the queue before the sweeper sends it again (a lost message).",
                _at_least(60)),
        Setting(video_settings.WORK_DIR, "",
                "Directory for the temporary files of a transcode (empty: the system's temp directory); it "
                "needs a few times the size of the largest video."),
        # playback and watching
        Setting(video_settings.URL_TTL, 7200,
                "Seconds the playback URLs of a play answer stay valid; segment URLs get the video's duration "
                "on top, so a started video plays to its end.", _at_least(60)),
        Setting(video_settings.TRIAL_SECONDS, 300,
                "Seconds of a trial lesson's video a viewer without enrolment may watch: the signed playlist "
                "stops there.", _at_least(1)),
        Setting(video_settings.COMPLETION_PERCENT, 90,
                "Percent of the duration a viewer must really watch (seeking does not count) to complete a "
                "video.", _percent),
        Setting(video_settings.MAX_REPORT_SECONDS, 60,
                "Most seconds of watching one progress report may credit (a player reports every few seconds).",
                _at_least(1)),
        Setting(video_settings.INFO_CACHE_TTL, 300,
                "Seconds the video info read by playback is cached (001: video:info:{id}, 5 minutes); it is "
                "dropped when processing completes or the video changes.", _at_least(0)),
        Setting(video_settings.STATS_CACHE_TTL, 60, "Seconds a video's statistics are cached; 0 turns it off.",
                _at_least(0)),
    ]


@hookimpl
def learnsail_permissions():
    from learnsail_video.permissions import DEFAULTS

    return DEFAULTS


@hookimpl
def learnsail_includeme(config):
    from learnsail_video import processing, tasks  # noqa: F401  (declare the plugin's tasks)
    from learnsail_video.views import SERVICES, includeme

    includeme(config)
    for service in SERVICES:
        config.add_learnsail_service(service)


@hookimpl
def learnsail_periodic_tasks(settings):
    from learnsail.tasks import Periodic

    from learnsail_video.processing import SWEEP_TASK

    return [Periodic("video.expire_uploads", "video.expire_uploads", every=900),
            Periodic(SWEEP_TASK, SWEEP_TASK, every=int(settings.get(video_settings.SWEEP_SECONDS) or 60))]


@hookimpl
def learnsail_user_erased(user_id, session):
    from learnsail_video import uploads, watching

    uploads.erase_user(session, user_id)
    watching.erase_user(session, user_id)


@hookimpl
def learnsail_user_export(user_id, session):
    from learnsail_video import uploads, watching

    data = {"upload_tasks": uploads.export_user(session, user_id), "watched": watching.export_user(session, user_id)}
    return {"video": data} if any(data.values()) else None


@hookimpl
def learnsail_lesson_video(lesson, course, video_id, user_id, session):
    from learnsail_video.teacher import check_attach

    return check_attach(session, lesson, course, video_id, user_id)


@hookimpl
def learnsail_notification_types():
    from learnsail.notifications import NotificationType

    from learnsail_video.processing import TRANSCODE_FAILED, TRANSCODE_FINISHED

    return [NotificationType(TRANSCODE_FINISHED, "One of your videos finished processing.", ("in_app",)),
            NotificationType(TRANSCODE_FAILED, "One of your videos could not be processed.", ("in_app", "email"))]
