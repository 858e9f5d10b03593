"""The example third-party plugin (docs/examples/learnsail-bookmarks) goes
through a plugin's whole life with the real commands: install, enable,
migrate, document, disable, remove, add back.  On SQLite and (with
--learnsail-db=mariadb) on MariaDB.

The example is not pip-installed in the test environment: its own
tests/registration.py writes the dist-info pip would write and puts it on
sys.path for the duration of each test (``bookmarks_installed``), so the
plugin is found through its ``learnsail.plugins`` entry point as it would be
after ``pip install`` -- and no other test's app ever sees it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import sqlalchemy as sa
import webtest

from learnsail import hookimpl, migrations
from learnsail.cli import main
from learnsail.plugins import CORE_NAME, Plugin, PluginError, PluginInfo, discover, load
from learnsail.testing import alembic_versions, table_names

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "learnsail-bookmarks"
TABLE = "bookmarks_bookmarks"


def _registration() -> types.ModuleType:
    # the same module object the example's conftest loads (one helper, one place)
    name = "learnsail_bookmarks_test_registration"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / "tests" / "registration.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def _bookmarks_dist_root(tmp_path_factory):
    return tmp_path_factory.mktemp("bookmarks-dist")


@pytest.fixture
def bookmarks_installed(_bookmarks_dist_root):
    """learnsail-bookmarks is installed for the duration of the test."""
    with _registration().installed(_bookmarks_dist_root) as dist_info:
        yield dist_info


@pytest.fixture
def env(monkeypatch, tmp_path, fresh_database_url, bookmarks_installed):
    """The `learnsail` command's environment, on an empty database."""
    for name in ("LEARNSAIL_PLUGINS", "LEARNSAIL_CONFIG", "LEARNSAIL_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEARNSAIL_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("LEARNSAIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNSAIL_LOG_LEVEL", "CRITICAL")

    def enable(plugins: str) -> None:
        monkeypatch.setenv("LEARNSAIL_PLUGINS", plugins)

    return types.SimpleNamespace(url=fresh_database_url, enable=enable)


def core_head():
    from learnsail.app import load_settings

    settings, plugins = load_settings({}, environ={"LEARNSAIL_PLUGINS": ""})
    return migrations.branch_head(migrations.make_config(settings, plugins), CORE_NAME)


def test_the_plugin_is_found_through_its_entry_point(bookmarks_installed):
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="learnsail.plugins") if ep.name == "bookmarks"]
    assert ep.value == "learnsail_bookmarks.plugin"
    plugin = discover()["bookmarks"]
    assert plugin.distribution == "learnsail-bookmarks"
    assert plugin.info.version == "0.1.0" and plugin.info.core == ">=0.1,<1"
    assert plugin.migrations_dir == EXAMPLE / "learnsail_bookmarks" / "migrations" / "versions"


def test_outside_its_fixture_the_plugin_is_not_installed():
    """What keeps the example out of every other test's app (the core's
    shared one enables every installed plugin)."""
    if _registration().is_discoverable():
        pytest.skip("learnsail-bookmarks is pip-installed in this environment")
    assert "bookmarks" not in discover()


def test_upgrade_with_the_plugin_enabled_creates_its_table(env):
    env.enable("bookmarks")
    assert main(["db", "upgrade"]) == 0
    assert {TABLE, "users", "roles"} <= table_names(env.url)
    assert alembic_versions(env.url) == {core_head(), "bookmarks_0001"}
    engine = sa.create_engine(env.url)
    try:
        inspector = sa.inspect(engine)
        assert {c["name"] for c in inspector.get_columns(TABLE)} == {
            "id", "user_id", "url", "url_hash", "title", "note", "created_at", "updated_at"}
        (fk,) = inspector.get_foreign_keys(TABLE)
        assert fk["referred_table"] == "users" and fk["options"].get("ondelete") == "CASCADE"
        assert fk["name"] == "fk_bookmarks_bookmarks_user_id_users"
    finally:
        engine.dispose()


def _app(url, tmp_path, plugins):
    from learnsail.app import configure
    from learnsail.testing import isolated_environ

    settings = {"learnsail.database_url": url, "learnsail.data_dir": str(tmp_path / "data"),
                "learnsail.plugins": plugins, "learnsail.log_level": "CRITICAL",
                "learnsail.secret": "example-plugin-tests-secret-example-plugin-tests"}
    config = configure(settings, environ=isolated_environ())
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    app = config.make_wsgi_app()
    return webtest.TestApp(app), app.registry["learnsail.db_engine"]


def test_openapi_and_routes_follow_the_enable_list(env, tmp_path):
    client, engine = _app(env.url, tmp_path, "bookmarks")
    try:
        paths = client.get("/api/openapi.json").json["paths"]
        assert {"/api/v1/bookmarks", "/api/v1/bookmarks/{id}"} <= set(paths)
        assert client.get("/api/v1/bookmarks", status=401).json["error"]["code"] == "AUTH_FAILED"
    finally:
        engine.dispose()

    client, engine = _app(env.url, tmp_path, "")  # installed, but the core alone is enabled
    try:
        paths = client.get("/api/openapi.json").json["paths"]
        assert not [path for path in paths if path.startswith("/api/v1/bookmarks")]
        r = client.get("/api/v1/bookmarks", status=404)
        assert r.json["error"]["code"] == "RESOURCE_NOT_FOUND"
        assert set(r.json["error"]) == {"code", "message", "details"}
    finally:
        engine.dispose()


def test_enabling_later_creates_only_its_table(env):
    env.enable("")
    assert main(["db", "upgrade"]) == 0
    core_tables = table_names(env.url)
    assert TABLE not in core_tables and {"users", "roles"} <= core_tables
    assert alembic_versions(env.url) == {core_head()}

    env.enable("bookmarks")
    assert main(["db", "upgrade"]) == 0
    assert table_names(env.url) - core_tables == {TABLE}
    assert alembic_versions(env.url) == {core_head(), "bookmarks_0001"}


def test_remove_plugin_drops_exactly_its_table_and_can_be_added_back(env):
    env.enable("bookmarks")
    main(["db", "upgrade"])
    from sqlalchemy.orm import Session

    from learnsail.identity.services import create_user
    from learnsail_bookmarks.services import create_bookmark

    engine = sa.create_engine(env.url)
    with Session(engine) as session, session.begin():  # removal drops bookmarks, not users
        user = create_user(session, username="reader", password="correct horse battery")
        create_bookmark(session, user.id, url="https://example.edu/", title="Example")
    before = table_names(env.url)

    env.enable("")  # an operator disables the plugin, then removes its tables
    assert main(["db", "remove-plugin", "bookmarks"]) == 0
    assert table_names(env.url) == before - {TABLE}
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT username FROM users")) == "reader"
    engine.dispose()
    assert alembic_versions(env.url) == {core_head()}

    env.enable("bookmarks")  # and back again
    assert main(["db", "upgrade"]) == 0
    assert TABLE in table_names(env.url)
    assert alembic_versions(env.url) == {core_head(), "bookmarks_0001"}
    assert main(["db", "check"]) == 0


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled", "disabled"])
def test_plugins_json_lists_the_plugin(env, capsys, enabled):
    env.enable("bookmarks" if enabled else "")
    capsys.readouterr()
    assert main(["plugins", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    row = rows["bookmarks"]
    assert row["enabled"] is enabled
    assert row["version"] == "0.1.0"
    assert row["migration_head"] == "bookmarks_0001"
    assert row["requires"] == [] and row["core"] == ">=0.1,<1"
    assert row["hooks"] == ["learnsail_demo_data", "learnsail_includeme", "learnsail_permissions",
                            "learnsail_settings", "learnsail_user_erased", "learnsail_user_export"]
    assert rows[CORE_NAME]["enabled"] is True


def test_db_check_with_the_plugin_and_with_the_core_alone(env, capsys):
    env.enable("bookmarks")
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "check"]) == 0
    assert "models and migrations agree" in capsys.readouterr().out
    env.enable("")  # disabled, its table still there: the core alone still checks clean
    assert main(["db", "check"]) == 0
    assert "models and migrations agree" in capsys.readouterr().out


def test_db_check_fails_when_the_enabled_plugin_is_not_migrated(env, capsys):
    env.enable("")
    main(["db", "upgrade"])
    env.enable("bookmarks")
    assert main(["db", "check"]) == 1
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "check"]) == 0


def test_db_check_with_the_core_alone_ignores_an_installed_plugin_that_is_not_migrated(env):
    env.enable("")
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "check"]) == 0  # the plugin is installed (pip) but was never enabled
    env.enable("bookmarks")
    main(["db", "upgrade"])
    env.enable("")
    assert main(["db", "remove-plugin", "bookmarks"]) == 0
    assert main(["db", "check"]) == 0  # removed, about to be uninstalled


def test_a_misspelled_hook_stops_start_up(bookmarks_installed, tmp_path):
    from learnsail.app import configure
    from learnsail.testing import isolated_environ

    module = types.ModuleType("learnsail_typo.plugin")
    module.PLUGIN = PluginInfo(name="typo", version="0.1", migrations=None)

    def learnsail_user_erasd(user_id, session):  # sic: learnsail_user_erased
        pass

    module.learnsail_user_erasd = hookimpl(learnsail_user_erasd)
    installed = dict(discover(), typo=Plugin(info=module.PLUGIN, module=module))
    assert load(["bookmarks"], installed=installed).order == ["bookmarks"]  # typo disabled: not wired
    with pytest.raises(PluginError, match=r"learnsail_user_erasd.*check its spelling"):
        load(["*"], installed=installed)
    settings = {"learnsail.plugins": "bookmarks typo", "learnsail.data_dir": str(tmp_path)}
    with pytest.raises(PluginError, match="learnsail_user_erasd"):
        configure(settings, environ=isolated_environ(), installed=installed)
