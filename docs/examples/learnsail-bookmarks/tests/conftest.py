"""Test set-up for learnsail-bookmarks.

The fixtures come from ``learnsail.testing`` (installed with learnsail).
What this file adds:

1. The plugin is made discoverable without pip-installing it (see
   registration.py), so these tests also run in the repository's own
   pytest run, where the example is not installed.

2. This directory's app: ``learnsail_plugins`` selects exactly
   ``bookmarks`` and ``learnsail_build_context`` builds the app while the
   plugin is installed.  ``learnsail.testing`` keeps one app (and database)
   per plugin selection, so ``testapp``, ``dbsession``, ``make_user`` and
   ``auth_headers`` use this app here and only here; the core's app is
   untouched.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import pytest


def _load_registration():
    name = "learnsail_bookmarks_test_registration"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("registration.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


registration = _load_registration()
registration.ensure_importable()  # test modules import learnsail_bookmarks


@pytest.fixture(scope="session")
def bookmarks_dist_root(tmp_path_factory: Any) -> Path:
    """Where the plugin's dist-info is written for this run."""
    return tmp_path_factory.mktemp("bookmarks-dist")


@pytest.fixture(scope="session")
def bookmarks_installed(bookmarks_dist_root: Path) -> Callable[[], Any]:
    """``with bookmarks_installed(): ...`` — the plugin is installed inside."""
    return lambda: registration.installed(bookmarks_dist_root)


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    return "bookmarks"


@pytest.fixture(scope="session")
def learnsail_build_context(bookmarks_installed: Callable[[], Any]) -> Callable[[], Any]:
    """Build this directory's app while the plugin is installed."""
    return bookmarks_installed
