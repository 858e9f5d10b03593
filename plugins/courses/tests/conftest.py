"""Test set-up for learnsail-courses: this directory's app runs the
courses plugin alone (it must be installed: ``pip install -e
'plugins/courses[test]'``).  Fixtures come from ``learnsail.testing``;
helpers.py is importable as ``courses_test_helpers`` (pytest's importlib
mode puts no test directory on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

if "courses_test_helpers" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("courses_test_helpers", Path(__file__).with_name("helpers.py"))
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["courses_test_helpers"] = _module
    _spec.loader.exec_module(_module)


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    return "courses"


@pytest.fixture(autouse=True)
def _fresh_course_cache(app):
    """Each test rolls its rows back, and ids are reused: cached course
    details and rankings of an earlier test must not answer for this one."""
    app.registry["learnsail.cache"].delete_prefix("courses:")
    yield
