"""Database: one declarative Base, engines, the request-bound session.

``request.db`` is a SQLAlchemy session joined to the request's transaction
(pyramid_tm + zope.sqlalchemy): it commits when the view returns normally and
rolls back on any error, so a failed request changes nothing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import sqlalchemy as sa
import zope.sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from zope.sqlalchemy import datamanager

from learnsail import settings as settings_mod

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """A datetime stored as naive UTC and always returned aware (UTC).

    Naive values given to it are taken as UTC; aware ones are converted.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "mysql":
            # microseconds, as SQLite keeps them: same values on every backend
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


#: names of the tables the core's own models define
CORE_TABLES: set[str] = set()


class Base(DeclarativeBase):
    """The one declarative base of the core and of every plugin."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("__table__")
        if table is not None and cls.__module__.startswith("learnsail."):
            # the core's tables; a plugin's are known by their name prefix
            CORE_TABLES.add(table.name)


class TimestampMixin:
    """``created_at`` / ``updated_at`` in UTC, maintained by the ORM."""

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow,
                                                    nullable=False)


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT and transactional
    # DDL; let SQLAlchemy emit BEGIN itself (see the SQLAlchemy pysqlite docs).
    dbapi_connection.isolation_level = None
    # SQLite's lower() folds ASCII only, so ``lower(name) == value.lower()``
    # -- how every case-insensitive uniqueness check and search is written --
    # missed "Ån" against "ån" (and the unique index then raised a 500).
    # Python's lower() makes it agree with MariaDB's case-insensitive collation.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def make_engine(settings: dict[str, Any]) -> Engine:
    """The engine for ``learnsail.database_url`` with the right pool settings."""
    url = sa.engine.make_url(settings_mod.database_url(settings))
    kwargs: dict[str, Any] = {"echo": bool(settings.get("learnsail.database_echo")), "future": True}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.get_backend_name() == "mysql":
        query = dict(url.query)
        query.setdefault("charset", "utf8mb4")
        url = url.set(query=query)
        kwargs.update(
            pool_pre_ping=True,
            pool_recycle=int(settings.get("learnsail.database_pool_recycle", 3600)),
            pool_size=int(settings.get("learnsail.database_pool_size", 10)),
            max_overflow=int(settings.get("learnsail.database_max_overflow", 20)),
            # READ COMMITTED avoids gap-lock deadlocks that REPEATABLE READ invites.
            isolation_level="READ COMMITTED",
        )
        return sa.create_engine(url, **kwargs)
    kwargs["pool_pre_ping"] = True
    return sa.create_engine(url, **kwargs)


def _mark_mysqlclient_retryable() -> None:
    """Let pyramid_retry replay a request that hit a MySQL deadlock (1213) or
    lock wait timeout (1205).  zope.sqlalchemy knows pymysql's error class
    but not mysqlclient's, which is the driver we use."""
    try:
        import MySQLdb
    except ImportError:
        return
    entry = (MySQLdb.OperationalError, lambda e: bool(e.args) and e.args[0] in (1205, 1213))
    if not any(err is MySQLdb.OperationalError for err, _ in datamanager._retryable_errors):
        datamanager._retryable_errors.append(entry)


def _sqlite_busy(error: Any) -> bool:
    """SQLITE_BUSY ("database is locked"): in WAL mode a transaction that
    read and then writes after another connection committed gets it at
    once, whatever busy_timeout says; replaying the request succeeds."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(error)


def _mark_sqlite_retryable() -> None:
    """Let pyramid_retry replay a request whose SQLite write hit SQLITE_BUSY."""
    if not any(err is sqlite3.OperationalError for err, _ in datamanager._retryable_errors):
        datamanager._retryable_errors.append((sqlite3.OperationalError, _sqlite_busy))


def get_session(session_factory: sessionmaker, transaction_manager: Any) -> Session:
    """A session joined to ``transaction_manager`` (commit/abort with it)."""
    session = session_factory()
    zope.sqlalchemy.register(session, transaction_manager=transaction_manager)
    return session


def _request_db(request: Any) -> Session:
    factory = request.registry["learnsail.dbsession_factory"]
    session = get_session(factory, request.tm)
    session.info["learnsail.registry"] = request.registry
    session.info["learnsail.tm"] = request.tm  # hooks given only a session can queue after-commit work
    return session


def _back_off(event: Any) -> None:
    """Before a request is replayed (a deadlock, SQLite busy), wait a
    random moment growing with the attempt: writers that collided once
    would otherwise collide again at once (SQLite refuses a read-then-write
    transaction at once after another connection committed, whatever
    busy_timeout says)."""
    import random
    import time

    attempt = int(event.environ.get("retry.attempt") or 0)
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** attempt)))


def includeme(config: Any) -> None:
    settings = config.get_settings()
    settings.setdefault("tm.manager_hook", "pyramid_tm.explicit_manager")
    sqlite = sa.engine.make_url(settings_mod.database_url(settings)).get_backend_name() == "sqlite"
    # SQLite serialises writers: give colliding requests more, backed-off replays
    settings.setdefault("retry.attempts", 8 if sqlite else 3)
    # the transaction note would load the user on every request
    settings.setdefault("tm.annotate_user", False)
    config.include("pyramid_retry")
    config.include("pyramid_tm")
    engine = make_engine(settings)
    config.registry["learnsail.db_engine"] = engine
    config.registry["learnsail.dbsession_factory"] = sessionmaker(bind=engine, expire_on_commit=False)
    _mark_mysqlclient_retryable()
    _mark_sqlite_retryable()
    config.add_request_method(_request_db, "db", reify=True)
    from pyramid_retry import IBeforeRetry

    config.add_subscriber(_back_off, IBeforeRetry)
