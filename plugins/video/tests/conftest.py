"""Test set-up for learnsail-video: this directory's app runs the courses
and video plugins (both installed: ``pip install -e 'plugins/video[test]'``).
Fixtures come from ``learnsail.testing``; helpers.py is importable as
``video_test_helpers`` and media_helpers.py (clips, processed videos,
courses to watch them in) as ``video_media_helpers`` (pytest's importlib
mode puts no test directory on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

for _name, _file in (("video_test_helpers", "helpers.py"), ("video_media_helpers", "media_helpers.py")):
    if _name not in sys.modules:
        _spec = importlib.util.spec_from_file_location(_name, Path(__file__).with_name(_file))
        _module = importlib.util.module_from_spec(_spec)
        sys.modules[_name] = _module
        _spec.loader.exec_module(_module)


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    return "courses,video"


@pytest.fixture(autouse=True)
def _fresh_video_cache(app):
    """Ids are reused once a test's rows are rolled back: cached video info,
    statistics and course details of an earlier test must not answer."""
    cache = app.registry["learnsail.cache"]
    cache.delete_prefix("video:")
    cache.delete_prefix("courses:")
    yield
