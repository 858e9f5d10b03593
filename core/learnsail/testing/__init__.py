"""learnsail.testing: the pytest plugin shared by the core, every built-in
plugin and third-party plugins (registered through the ``pytest11`` entry
point, so installing learnsail is enough).

What it gives a test:

- ``learnsail_plugins`` / ``learnsail_extra_settings``: override these
  (session-scoped) fixtures in a conftest.py to choose the plugins and
  settings of the app under test (default: every installed plugin).  Each
  combination gets its own app and database, built once per run, so
  directories with different choices can share a run.
  ``learnsail_build_context`` wraps the build (e.g. to register a plugin).
- ``app`` (the WSGI app), ``testapp`` (a WebTest client), ``dbsession``: the
  app and the session share one connection whose outer transaction is rolled
  back after each test, so tests never see each other's rows.
- The database backend: SQLite by default; ``--learnsail-db=mariadb`` or
  ``LEARNSAIL_TEST_DB=mariadb`` runs the same tests on a real MariaDB that
  the plugin starts on loopback.
- ``mariadb_server``, ``redis_server``, ``s3_server``, ``ffmpeg``: real
  services started from the binaries on PATH (temp dir, free port).  A
  missing one skips the test with the reason, unless
  ``LEARNSAIL_REQUIRE_SERVICES=1``, where it fails.
- ``fresh_database_url``: an empty database of the current backend, for
  migration tests.
- ``make_user`` and ``auth_headers``: accounts per role and their bearer
  headers; ``users``, ``actor_headers`` and ``clients`` (one per actor:
  anonymous, student, other_student, teacher, other_teacher, admin) and
  ``learnsail.testing.authz.check_matrix`` for authorisation matrices.
- ``count_queries(engine)``: a context manager collecting SQL statements.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any, Callable, Iterator

import pytest

from learnsail.testing import services

_counter = itertools.count()


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("learnsail")
    group.addoption("--learnsail-db", choices=("sqlite", "mariadb"),
                    default=os.environ.get("LEARNSAIL_TEST_DB", "sqlite") or "sqlite",
                    help="database backend for the tests (env LEARNSAIL_TEST_DB)")


def pytest_report_header(config: Any) -> str:
    required = "required" if services_required() else "optional (skipped when missing)"
    return f"learnsail: database={config.getoption('--learnsail-db')}, services {required}"


def services_required() -> bool:
    return os.environ.get("LEARNSAIL_REQUIRE_SERVICES", "") in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip, or fail when services are required (CI)."""
    if services_required():
        pytest.fail(f"{reason} (LEARNSAIL_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


# --- real services ----------------------------------------------------------

@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: Any) -> Iterator[services.MariaDBServer]:
    try:
        server = services.start_mariadb(tmp_path_factory.mktemp("mariadb"))
    except services.ServiceUnavailable as exc:
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: Any) -> Iterator[services.RedisServer]:
    try:
        server = services.start_redis(tmp_path_factory.mktemp("redis"))
    except services.ServiceUnavailable as exc:
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[services.S3Server]:
    try:
        server = services.start_s3()
    except services.ServiceUnavailable as exc:
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ffmpeg() -> tuple[str, str]:
    try:
        return services.find_ffmpeg()
    except services.ServiceUnavailable as exc:
        unavailable(str(exc))
        raise  # unreachable: unavailable() always raises


# --- database -----------------------------------------------------------------

@pytest.fixture(scope="session")
def learnsail_db_backend(request: Any) -> str:
    return request.config.getoption("--learnsail-db")


@pytest.fixture(scope="session")
def _database_maker(request: Any, learnsail_db_backend: str, tmp_path_factory: Any) -> Callable[[], str]:
    """Makes empty databases of the chosen backend, returning their URLs."""
    if learnsail_db_backend == "mariadb":
        server = request.getfixturevalue("mariadb_server")

        def make() -> str:
            return server.create_database(f"learnsail_test_{os.getpid()}_{next(_counter)}")
    else:
        base = tmp_path_factory.mktemp("sqlite")

        def make() -> str:
            return f"sqlite:///{base / f'db{next(_counter)}.sqlite'}"
    return make


@pytest.fixture
def fresh_database_url(_database_maker: Callable[[], str]) -> str:
    """An empty database (SQLite file or MariaDB database) for this test."""
    return _database_maker()


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    """Which plugins the app under test enables (override in conftest.py)."""
    return "*"


@pytest.fixture(scope="session")
def learnsail_extra_settings() -> dict[str, Any]:
    """Extra settings for the app under test (override in conftest.py)."""
    return {}


@pytest.fixture(scope="session")
def learnsail_build_context() -> Callable[[], Any]:
    """A context manager active while the app under test is built (override
    it to make a plugin discoverable only for your tests, for example)."""
    import contextlib

    return contextlib.nullcontext


@pytest.fixture(scope="session")
def _learnsail_apps(tmp_path_factory: Any, _database_maker: Callable[[], str]) -> Iterator[dict]:
    """One migrated app per (plugins, settings) combination in this run, so
    directories that choose different plugins each get theirs."""
    apps: dict[Any, Any] = {}
    yield apps
    for app in apps.values():
        app.registry["learnsail.db_engine"].dispose()


def isolated_environ() -> dict[str, str]:
    """The environment the app under test sees: LEARNSAIL_* variables of the
    developer's shell must not leak into tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LEARNSAIL_")}


@pytest.fixture
def _session_app(_learnsail_apps: dict, learnsail_plugins: str, learnsail_extra_settings: dict[str, Any],
                 learnsail_build_context: Callable[[], Any], tmp_path_factory: Any,
                 _database_maker: Callable[[], str]) -> Any:
    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app

    key = (learnsail_plugins, tuple(sorted((k, str(v)) for k, v in learnsail_extra_settings.items())),
           learnsail_build_context)
    app = _learnsail_apps.get(key)
    if app is None:
        settings = {
            "learnsail.data_dir": str(tmp_path_factory.mktemp("data")),
            "learnsail.database_url": _database_maker(),
            "learnsail.plugins": learnsail_plugins,
            "learnsail.secret": "test-secret-with-enough-entropy-for-hs256-keys!",
            "learnsail.log_level": "WARNING",
            **learnsail_extra_settings,
        }
        with learnsail_build_context():
            config = configure(settings, environ=isolated_environ())
        migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
        app = _learnsail_apps[key] = make_wsgi_app(config)
        app.registry["learnsail.test_settings"] = settings
    return app


@pytest.fixture
def learnsail_settings(_session_app: Any) -> dict[str, Any]:
    """The settings the app under test was built from (before parsing)."""
    return dict(_session_app.registry["learnsail.test_settings"])


@pytest.fixture
def db_connection(_session_app: Any) -> Iterator[Any]:
    """One connection in an outer transaction, rolled back after the test."""
    engine = _session_app.registry["learnsail.db_engine"]
    connection = engine.connect()
    transaction = connection.begin()
    yield connection
    if transaction.is_active:
        transaction.rollback()
    connection.close()


@pytest.fixture
def app(_session_app: Any, db_connection: Any) -> Iterator[Any]:
    """The WSGI app, its request sessions bound to the test's connection."""
    from sqlalchemy.orm import sessionmaker

    registry = _session_app.registry
    original = registry["learnsail.dbsession_factory"]
    registry["learnsail.dbsession_factory"] = sessionmaker(
        bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    # every test starts with fresh rate limits and permission caches
    registry["learnsail.ratelimiter"].reset()
    registry.get("learnsail.permission_cache", {}).clear()
    registry["learnsail.auth_cache"].clear()
    yield _session_app
    registry["learnsail.dbsession_factory"] = original


@pytest.fixture
def dbsession(app: Any, db_connection: Any) -> Iterator[Any]:
    """A session on the test's connection (sees what requests wrote)."""
    from sqlalchemy.orm import Session

    session = Session(bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    session.info["learnsail.registry"] = app.registry  # ORM changes reach the app's caches at once
    yield session
    session.close()


@pytest.fixture
def testapp(app: Any) -> Any:
    import webtest

    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


# --- query counting ---------------------------------------------------------------

@contextlib.contextmanager
def count_queries(engine: Any) -> Iterator[list[str]]:
    """Collect the SQL statements ``engine`` runs inside the block (savepoint
    and transaction bookkeeping left out), to assert that a list endpoint
    issues a constant number of queries whatever the page size."""
    from sqlalchemy import event

    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def table_names(url: str) -> set[str]:
    """The tables of the database at ``url`` (for migration tests)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def alembic_versions(url: str) -> set[str]:
    """The revisions recorded in the alembic_version table at ``url``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    finally:
        engine.dispose()


# --- identity -----------------------------------------------------------------

@pytest.fixture
def make_user(dbsession: Any, app: Any) -> Callable[..., Any]:
    """``make_user(role="student", password=..., **fields)`` -> a committed user."""
    from learnsail.identity.services import create_user

    def make(role: str = "student", password: str = "correct horse battery", **fields: Any) -> Any:
        n = next(_counter)
        fields.setdefault("username", f"{role}{n}")
        fields.setdefault("email", f"{role}{n}@example.com")
        user = create_user(dbsession, password=password, role=role,
                           pm=app.registry["learnsail.pm"], **fields)
        dbsession.commit()
        return user

    return make


@pytest.fixture
def auth_headers(app: Any) -> Callable[[Any], dict[str, str]]:
    """``auth_headers(user)`` -> ``{"Authorization": "Bearer <access token>"}``."""
    from learnsail.identity import tokens

    def headers(user: Any) -> dict[str, str]:
        settings = app.registry.settings
        token = tokens.issue(settings, user.id, "access", settings["learnsail.jwt_access_ttl"],
                             role=user.role.name)
        return {"Authorization": f"Bearer {token}"}

    return headers

from learnsail.testing.identity import *  # noqa: F401,F403,E402
from learnsail.testing.mail import *  # noqa: F401,F403,E402
