"""Make learnsail-bookmarks discoverable without pip-installing it.

The repository's test run collects this example's tests without the
example being installed.  ``installed(root)`` writes, under ``root``, the
``learnsail_bookmarks-<version>.dist-info`` that pip would write (METADATA
and entry_points.txt, both taken from setup.cfg) and puts it on
``sys.path`` for the duration of a ``with`` block, so
``importlib.metadata.entry_points(group="learnsail.plugins")`` genuinely
finds the plugin, as it would after ``pip install``.  On leaving the block
the plugin is "uninstalled" again: apps built elsewhere in the same pytest
run (any built with ``learnsail.plugins = *``) never see it.

Importing the package is a separate matter (``ensure_importable``): an
importable package without a dist-info is not a plugin.

Used by this example's conftest.py and by the core's
tests/test_example_plugin.py (which loads this file by path).
"""

from __future__ import annotations

import configparser
import contextlib
import importlib
import importlib.metadata
import sys
from pathlib import Path
from typing import Iterator

PROJECT_DIR = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "bookmarks"
ENTRY_POINT_GROUP = "learnsail.plugins"


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(PROJECT_DIR / "setup.cfg", encoding="utf-8")
    return parser


def distribution() -> tuple[str, str]:
    """(name, version) from setup.cfg."""
    cfg = _setup_cfg()
    return cfg["metadata"]["name"], cfg["metadata"]["version"]


@contextlib.contextmanager
def _on_sys_path(*entries: Path) -> Iterator[None]:
    added = [str(entry) for entry in entries]
    sys.path[:0] = added
    importlib.invalidate_caches()  # importlib.metadata caches what sys.path holds
    try:
        yield
    finally:
        for entry in added:
            sys.path.remove(entry)
        importlib.invalidate_caches()


def ensure_importable() -> None:
    """Make ``import learnsail_bookmarks`` (and its submodules) work from the
    source tree, without leaving the project directory on ``sys.path``: once
    the package is imported, its submodules are found through its
    ``__path__``.  (On ``sys.path`` for good, build metadata that a wheel
    build leaves in the project directory, ``*.egg-info``, would make the
    plugin "installed" for every app of the run.)"""
    if "learnsail_bookmarks" not in sys.modules:
        with _on_sys_path(PROJECT_DIR):
            importlib.import_module("learnsail_bookmarks")


def write_dist_info(root: Path) -> Path:
    """Write the dist-info directory under ``root``; returns its path."""
    name, version = distribution()
    cfg = _setup_cfg()
    dist_info = Path(root) / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: {cfg['metadata']['description']}\nRequires-Dist: learnsail\n", encoding="utf-8")
    groups = []
    for group, raw in cfg["options.entry_points"].items():
        lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
        groups.append(f"[{group}]\n" + "\n".join(lines) + "\n")
    (dist_info / "entry_points.txt").write_text("\n".join(groups), encoding="utf-8")
    (dist_info / "top_level.txt").write_text("learnsail_bookmarks\n", encoding="utf-8")
    return dist_info


def is_discoverable() -> bool:
    return any(ep.name == PLUGIN_NAME for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


@contextlib.contextmanager
def installed(root: Path) -> Iterator[Path]:
    """Within the block, the plugin is installed: discoverable through its
    entry point and importable.  ``root`` is a directory of the caller's
    (pytest's tmp_path_factory), reused across calls."""
    dist_info = write_dist_info(root)
    ensure_importable()
    with _on_sys_path(Path(root), PROJECT_DIR):
        if not is_discoverable():
            raise RuntimeError(f"{dist_info} is on sys.path but its entry point is not found")
        yield dist_info
