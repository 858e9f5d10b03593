"""Test set-up for learnsail-video: this directory's app runs the courses
and video plugins (both installed: ``pip install -e 'plugins/video[test]'``).
Fixtures come from ``learnsail.testing``; helpers.py is importable as
``video_test_helpers`` (pytest's importlib mode puts no test directory on
sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

if "video_test_helpers" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("video_test_helpers", Path(__file__).with_name("helpers.py"))
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["video_test_helpers"] = _module
    _spec.loader.exec_module(_module)


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    return "courses,video"
