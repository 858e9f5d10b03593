"""Schemas of processing, playback, watching and the teacher tools: what
the API accepts (input) and answers (documentation)."""

from __future__ import annotations

from marshmallow import fields, validate

from learnsail.api import Schema
from learnsail.api.validation import Id, QuerySchema
from learnsail_video.models import VIDEO_STATUSES

MAX_POSITION = 24 * 3600  # seconds: a day of video is plenty
DEVICE_TYPES = ("mobile", "desktop", "tablet", "tv", "web", "other")
QUALITY = validate.Regexp(r"^[a-z0-9]{1,10}$", error="A quality name such as sd, hd, fhd or 4k.")
TOKEN = validate.Regexp(r"^[A-Za-z0-9_.\-]{1,4096}$", error="Not a playback token.")


class VideoPath(Schema):
    id = Id(required=True)


class LessonPath(Schema):
    id = Id(required=True)


class PlaylistPath(Schema):
    id = Id(required=True)
    token = fields.String(required=True, validate=TOKEN)


class MediaPlaylistPath(PlaylistPath):
    quality = fields.String(required=True, validate=QUALITY)


class PlayQuery(QuerySchema):
    quality = fields.String(validate=QUALITY, metadata={
        "description": "A level of available_qualities: video_url is then that rung's playlist (default: "
                       "the master, adaptive)."})
    lesson_id = Id(metadata={"description": "The lesson the video is watched in (default: the best access "
                                            "among the lessons showing it)."})


class VideoListQuery(QuerySchema):
    status = fields.String(validate=validate.OneOf(VIDEO_STATUSES))
    course_id = Id()
    q = fields.String(validate=validate.Length(min=1, max=100), metadata={"description": "Words of the title."})
    owner_id = Id(metadata={"description": "Whose videos (holders of video:video:manage_any only)."})
    page = fields.Integer(validate=validate.Range(min=1))
    page_size = fields.Integer(validate=validate.Range(min=1))


class VideoUpdateSchema(Schema):
    title = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=10_000))


class ProgressReportSchema(Schema):
    position = fields.Float(required=True, validate=validate.Range(min=0, max=MAX_POSITION), metadata={
        "description": "Seconds into the video where the player is."})
    duration = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, max=MAX_POSITION),
                            metadata={"description": "The duration the player knows (informative: the "
                                                     "server's own is used)."})
    watch_duration = fields.Float(load_default=None, allow_none=True,
                                  validate=validate.Range(min=0, max=MAX_POSITION), metadata={
                                      "description": "Seconds played in this session so far (a counter the "
                                                     "player keeps; it restarts with a new session)."})
    device_type = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(DEVICE_TYPES))
    platform = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=50),
                             metadata={"description": "e.g. web, ios, android, windows."})
    quality = fields.String(load_default=None, allow_none=True, validate=QUALITY,
                            metadata={"description": "The quality being played."})
    session_id = fields.String(load_default=None, allow_none=True,
                               validate=validate.Regexp(r"^[A-Za-z0-9_\-]{1,64}$"),
                               metadata={"description": "The play answer's session_id (default: the viewer's "
                                                        "latest session, or a new one)."})
    lesson_id = Id(load_default=None, allow_none=True,
                   metadata={"description": "The lesson it is watched in (default: as for play)."})


class StatisticsQuery(QuerySchema):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=365))


# --- answers (documentation) -------------------------------------------------------------


class VideoStatusSchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"description": "uploading, processing, completed or failed."})
    progress = fields.Integer(metadata={"description": "0-100: of the upload, then of processing."})
    file_url = fields.String(allow_none=True, metadata={
        "description": "When completed: the signed HLS master (a preview for the owner)."})
    thumbnail_url = fields.String(allow_none=True)
    error_message = fields.String(allow_none=True)
    transcode_jobs = fields.List(fields.Dict(), metadata={"description": "001's transcode jobs, one per quality."})


class QualitySchema(Schema):
    quality = fields.String()
    width = fields.Integer()
    height = fields.Integer()
    bandwidth = fields.Integer()
    url = fields.String(metadata={"description": "The signed media playlist of this rung."})


class PlaySchema(Schema):
    video_id = fields.Integer()
    lesson_id = fields.Integer(allow_none=True)
    course_id = fields.Integer(allow_none=True)
    title = fields.String()
    video_url = fields.String(metadata={"description": "The signed HLS master (or the chosen rung)."})
    hls_url = fields.String()
    mp4_url = fields.String(allow_none=True, metadata={"description": "The MP4 fallback (none for a trial)."})
    format = fields.String()
    quality = fields.String()
    available_qualities = fields.List(fields.String())
    qualities = fields.List(fields.Nested(QualitySchema))
    resolution = fields.String(allow_none=True)
    duration = fields.Integer()
    thumbnail_url = fields.String(allow_none=True)
    thumbnails_url = fields.String(allow_none=True, metadata={"description": "WebVTT thumbnails track (sprites)."})
    access = fields.String(metadata={"description": "full, trial or preview."})
    trial_seconds = fields.Integer(allow_none=True)
    expires_at = fields.DateTime()
    last_position = fields.Integer(allow_none=True)
    next_lesson_id = fields.Integer(allow_none=True)
    next_video_id = fields.Integer(allow_none=True)
    session_id = fields.String()


class LessonVideoSchema(PlaySchema):
    pass


class ProgressAnswerSchema(Schema):
    message = fields.String()
    recorded = fields.Boolean()
    is_completed = fields.Boolean()
    progress_percent = fields.Float(metadata={"description": "Share of the duration really watched."})
    watched_seconds = fields.Float()
    last_position = fields.Float()
    session_id = fields.String(allow_none=True)
    lesson_id = fields.Integer(allow_none=True)
    lesson_progress = fields.Dict(allow_none=True)


class DailySchema(Schema):
    date = fields.String()
    plays = fields.Integer()
    unique_viewers = fields.Integer()
    completions = fields.Integer()
    watch_seconds = fields.Float()


class DropOffSchema(Schema):
    percent = fields.Integer()
    viewers = fields.Integer()
    share = fields.Float()


class StatisticsSchema(Schema):
    video_id = fields.Integer()
    period_days = fields.Integer()
    duration = fields.Integer()
    total_plays = fields.Integer()
    total_unique_viewers = fields.Integer()
    total_completions = fields.Integer()
    avg_completion_rate = fields.Float()
    viewers = fields.Integer()
    daily_stats = fields.List(fields.Nested(DailySchema))
    drop_off = fields.List(fields.Nested(DropOffSchema))


class VideoSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String(allow_none=True)
    owner_id = fields.Integer()
    course_id = fields.Integer(allow_none=True)
    chapter_id = fields.Integer(allow_none=True)
    file_name = fields.String()
    size = fields.Integer()
    format = fields.String(allow_none=True)
    status = fields.String()
    progress = fields.Integer()
    error_message = fields.String(allow_none=True)
    duration = fields.Integer(allow_none=True)
    resolution = fields.String(allow_none=True)
    qualities = fields.List(fields.String())
    thumbnail_url = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    processed_at = fields.DateTime(allow_none=True)


class VideoDetailSchema(VideoSchema):
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    video_codec = fields.String(allow_none=True)
    audio_codec = fields.String(allow_none=True)
    bitrate = fields.Integer(allow_none=True)
    frame_rate = fields.Float(allow_none=True)
    rotation = fields.Integer(allow_none=True)
    lessons = fields.List(fields.Dict())
    transcode_jobs = fields.List(fields.Dict())
