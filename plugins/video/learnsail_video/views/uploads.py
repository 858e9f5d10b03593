"""Uploads (000 §六 八 ``POST /api/v1/videos/upload``; 001 chunked upload
tasks; tus 1.0)."""

from __future__ import annotations

SERVICES: tuple = ()
