"""Core test configuration: fixtures come from learnsail.testing."""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    # The core's shared app runs with the core alone: plugin tests build
    # their own apps, so an installed plugin never changes what these see.
    return ""


@pytest.fixture(scope="session")
def learnsail_extra_settings() -> dict:
    # a low lockout threshold keeps the lockout tests short
    return {"learnsail.login_max_failures": "3"}


@pytest.fixture(scope="module")
def conventions_app(tmp_path_factory: Any, _database_maker: Any) -> Iterator[Any]:
    """An app with the test-only ``conventions`` plugin on its own database."""
    import webtest

    from learnsail import migrations
    from learnsail.app import configure
    from learnsail.plugins import Plugin, discover
    from learnsail.testing import isolated_environ
    from tests.support import conventions_plugin

    installed = dict(discover())
    installed["conventions"] = Plugin(info=conventions_plugin.PLUGIN, module=conventions_plugin)
    settings = {
        "learnsail.data_dir": str(tmp_path_factory.mktemp("conv")),
        "learnsail.database_url": _database_maker(),
        "learnsail.plugins": "conventions",
        "learnsail.secret": "conventions-secret-conventions-secret-123",
        "learnsail.log_level": "CRITICAL",
        "learnsail.max_body_size": "2048",
        "learnsail.cors_origins": "https://app.example.edu",
    }
    config = configure(settings, environ=isolated_environ(), installed=installed)
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    engine = config.registry["learnsail.db_engine"]
    conventions_plugin.Item.__table__.create(engine)
    from learnsail.app import make_wsgi_app

    app = make_wsgi_app(config)
    yield webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    engine.dispose()
