"""The plugin's setting names (declared in plugin.py)."""

COMPLETION_THRESHOLD = "learnsail.courses.completion_threshold"
COMMENT_APPROVAL = "learnsail.courses.comment_approval"
HOT_CACHE_TTL = "learnsail.courses.hot_cache_ttl"
TRIAL_DAYS = "learnsail.courses.trial_days"
PROGRESS_BUFFER_SECONDS = "learnsail.courses.progress_buffer_seconds"
DETAIL_CACHE_TTL = "learnsail.courses.detail_cache_ttl"
COUNT_CACHE_TTL = "learnsail.courses.count_cache_ttl"
