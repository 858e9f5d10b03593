"""Test set-up for learnsail-payments: this directory's app runs the
payments plugin alone (install it: ``pip install -e
'plugins/payments[test]'``).  Its own product, membership plans, is what
most tests buy; ``gadgets`` registers a tiny product plugin for the
rest.  helpers.py is importable as ``payments_test_helpers`` (pytest's
importlib mode puts no test directory on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

if "payments_test_helpers" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("payments_test_helpers", Path(__file__).with_name("helpers.py"))
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["payments_test_helpers"] = _module
    _spec.loader.exec_module(_module)

from payments_test_helpers import Gadgets  # noqa: E402


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    return "payments"


@pytest.fixture
def gadgets(app):
    """A product plugin selling ``gadget`` (registered for this test only)."""
    plugin = Gadgets()
    pm = app.registry["learnsail.pm"]
    pm.register(plugin, name="gadgets-test")
    yield plugin
    pm.unregister(plugin)
