"""learnsail-video: resumable uploads (chunks and tus 1.0), FFmpeg probing
and transcoding to an HLS ladder, signed playback and watch analytics.

``plugin.py`` is the plugin's face (hook implementations only); the upload
rules live in ``uploads.py`` (with ``parts.py``, where the bytes of an
unfinished upload are kept, and ``probe.py``, ffprobe); processing,
playback and watching in their own modules; ``views/`` is the thin HTTP
layer.
"""

__version__ = "0.1.0"
