"""The plugin's setting names (declared in plugin.py)."""

# --- uploads -----------------------------------------------------------------
#: largest video accepted, in bytes (sizes like 4GiB in the ini)
MAX_UPLOAD_SIZE = "learnsail.video.max_upload_size"
#: smallest and largest chunk_size a chunked upload may announce
MIN_CHUNK_SIZE = "learnsail.video.min_chunk_size"
MAX_CHUNK_SIZE = "learnsail.video.max_chunk_size"
#: hours an unfinished upload lives after its last received bytes
UPLOAD_TTL_HOURS = "learnsail.video.upload_ttl_hours"
#: the ffprobe program, and how long one probe may take (seconds)
FFPROBE = "learnsail.video.ffprobe"
PROBE_TIMEOUT = "learnsail.video.probe_timeout"

# --- processing ----------------------------------------------------------------
#: the ffmpeg program
FFMPEG = "learnsail.video.ffmpeg"
#: the quality levels offered (names of 001's levels: sd hd fhd 4k)
LEVELS = "learnsail.video.levels"
#: libx264 preset of the ladder pass
PRESET = "learnsail.video.preset"
#: seconds per HLS segment, and between two keyframes (the segment length is a multiple of it)
SEGMENT_SECONDS = "learnsail.video.segment_seconds"
KEYFRAME_SECONDS = "learnsail.video.keyframe_seconds"
#: AAC bitrate of every rung (bits per second)
AUDIO_BITRATE = "learnsail.video.audio_bitrate"
#: seconds between two sprite thumbnails
SPRITE_INTERVAL = "learnsail.video.sprite_interval"
#: runs of one transcode job before it is marked failed
MAX_ATTEMPTS = "learnsail.video.max_attempts"
#: seconds without a heartbeat after which a running job is presumed dead (the sweeper requeues it)
STALE_SECONDS = "learnsail.video.stale_seconds"
#: seconds between two runs of the sweeper
SWEEP_SECONDS = "learnsail.video.sweep_seconds"
#: seconds a job may wait in the queue before the sweeper sends it again
QUEUED_TIMEOUT = "learnsail.video.queued_timeout"
#: where runs write their temporary files (empty: the system's temp directory)
WORK_DIR = "learnsail.video.work_dir"

# --- playback and watching ------------------------------------------------------------
#: seconds a playback URL (master, playlists) stays valid
URL_TTL = "learnsail.video.url_ttl"
#: seconds a trial viewer may watch of a trial lesson
TRIAL_SECONDS = "learnsail.video.trial_seconds"
#: percent of the duration really watched that completes a video
COMPLETION_PERCENT = "learnsail.video.completion_percent"
#: most seconds of watching one progress report may credit
MAX_REPORT_SECONDS = "learnsail.video.max_report_seconds"
#: seconds the video info (what playback reads) is cached
INFO_CACHE_TTL = "learnsail.video.info_cache_ttl"
#: seconds statistics are cached
STATS_CACHE_TTL = "learnsail.video.stats_cache_ttl"
