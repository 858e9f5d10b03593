"""The webhooks tables (core branch)."""

from __future__ import annotations
