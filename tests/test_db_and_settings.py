"""Database helpers and settings resolution."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from learnsail import settings as settings_mod
from learnsail.db import UTCDateTime, _mark_mysqlclient_retryable
from learnsail.identity.models import User


def test_datetimes_round_trip_as_utc(dbsession, make_user):
    user = make_user()
    beijing = dt.timezone(dt.timedelta(hours=8))
    user.last_login = dt.datetime(2026, 5, 1, 20, 0, tzinfo=beijing)
    dbsession.commit()
    dbsession.expire_all()
    loaded = dbsession.get(User, user.id)
    assert loaded.last_login == dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert loaded.last_login.tzinfo is dt.timezone.utc
    assert loaded.created_at.tzinfo is dt.timezone.utc
    stored = dbsession.execute(sa.text("SELECT last_login FROM users WHERE id = :id"), {"id": user.id}).scalar()
    assert str(stored).startswith("2026-05-01 12:00:00")


def test_utc_type_treats_naive_as_utc():
    value = UTCDateTime().process_bind_param(dt.datetime(2026, 1, 1, 8, 0), None)
    assert value == dt.datetime(2026, 1, 1, 8, 0)


def test_naming_convention_names_constraints():
    assert {c.name for c in User.__table__.constraints} >= {
        "pk_users", "uq_users_username", "fk_users_role_id_roles"}
    from learnsail.db import CORE_TABLES

    assert {"roles", "users"} <= CORE_TABLES


def test_mysql_deadlocks_are_retryable():
    MySQLdb = pytest.importorskip("MySQLdb")
    from sqlalchemy.exc import OperationalError
    from zope.sqlalchemy.datamanager import SessionDataManager

    _mark_mysqlclient_retryable()
    _mark_mysqlclient_retryable()  # idempotent
    deadlock = OperationalError("UPDATE ...", {}, MySQLdb.OperationalError(1213, "Deadlock found"))
    other = OperationalError("UPDATE ...", {}, MySQLdb.OperationalError(1146, "No such table"))
    manager = SessionDataManager.__new__(SessionDataManager)
    assert manager.should_retry(deadlock) is True
    assert not manager.should_retry(other)


def test_mysql_engine_settings(learnsail_settings):
    pytest.importorskip("MySQLdb")
    from learnsail.db import make_engine

    engine = make_engine({"learnsail.database_url": "mysql+mysqldb://u:p@127.0.0.1:1/x",
                          "learnsail.database_pool_size": 3})
    assert engine.url.query["charset"] == "utf8mb4"
    assert engine.pool.size() == 3 and engine.pool._pre_ping


def test_settings_precedence_and_parsing():
    declared = [settings_mod.Setting("learnsail.demo.limit", 5, "A limit.", settings_mod.as_int),
                settings_mod.Setting("learnsail.demo.on", False, "A switch.", settings_mod.as_bool)]
    assert settings_mod.collect(declared, {}, {})["learnsail.demo.limit"] == 5
    assert settings_mod.collect(declared, {"learnsail.demo.limit": "7"}, {})["learnsail.demo.limit"] == 7
    resolved = settings_mod.collect(declared, {"learnsail.demo.limit": "7", "pyramid.x": "kept"},
                                    {"LEARNSAIL_DEMO_LIMIT": "9", "LEARNSAIL_DEMO_ON": "yes"})
    assert resolved["learnsail.demo.limit"] == 9 and resolved["learnsail.demo.on"] is True
    assert resolved["pyramid.x"] == "kept"
    with pytest.raises(settings_mod.SettingError, match="LEARNSAIL_DEMO_ON has an invalid value 'maybe'"):
        settings_mod.collect(declared, {}, {"LEARNSAIL_DEMO_ON": "maybe"})


def test_secret_is_generated_once_and_kept(tmp_path):
    settings = {"learnsail.data_dir": str(tmp_path)}
    first = settings_mod.secret_key(settings)
    assert len(first) >= 40 and settings_mod.secret_key(settings) == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    assert settings_mod.secret_key({"learnsail.secret": "explicit"}) == "explicit"
