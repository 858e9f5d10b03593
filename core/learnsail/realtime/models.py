"""The realtime tables (core branch)."""

from __future__ import annotations
