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
