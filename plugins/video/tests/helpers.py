"""Builders the video tests share."""

from __future__ import annotations
