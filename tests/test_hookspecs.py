"""Every platform hook, called the way the platform calls it.

tests/test_docs.py checks that each hookspec is named in some test; these
tests make sure that the calls behave as docs/hooks.md says.
"""

from __future__ import annotations

import datetime as dt
import types
from decimal import Decimal

import pytest
import webtest
from prometheus_client import Counter

from learnsail import hookimpl, migrations
from learnsail.app import configure
from learnsail.plugins import Plugin, PluginInfo, load
from learnsail.settings import Setting, as_int
from learnsail.testing import isolated_environ


def plugin(name, **hooks):
    module = types.ModuleType(f"hooktest_{name}")
    module.PLUGIN = PluginInfo(name=name, version="1", migrations=None)
    for hook_name, func in hooks.items():
        setattr(module, hook_name, hookimpl(func))
    return Plugin(info=module.PLUGIN, module=module)


def manager(*items):
    return load(["*"], installed={p.name: p for p in items}).manager


@pytest.fixture
def build_app(tmp_path, _database_maker):
    def build(*items, environ=None, **settings):
        values = {"learnsail.data_dir": str(tmp_path), "learnsail.database_url": _database_maker(),
                  "learnsail.plugins": "*", "learnsail.secret": "hook-tests-secret-hook-tests-secret",
                  "learnsail.log_level": "CRITICAL", **settings}
        config = configure(values, environ=environ or isolated_environ(),
                           installed={p.name: p for p in items})
        migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
        return config

    return build


def test_learnsail_settings_declares_overridable_settings(build_app):
    hooks = {"learnsail_settings": lambda: [Setting("learnsail.quiz.max_attempts", 3, "Attempts.", as_int)]}
    config = build_app(plugin("quiz", **hooks))
    assert config.registry.settings["learnsail.quiz.max_attempts"] == 3
    env = dict(isolated_environ(), LEARNSAIL_QUIZ_MAX_ATTEMPTS="5")
    config = build_app(plugin("quiz", **hooks), environ=env)
    assert config.registry.settings["learnsail.quiz.max_attempts"] == 5


def test_learnsail_includeme_and_learnsail_permissions(build_app, _database_maker):
    from learnsail.api import Service

    svc = Service(name="quiz.secret", path="/api/v1/quiz-secret")
    svc.add_view("GET", lambda request: {"ok": True}, permission="quiz:secret:view")
    config = build_app(plugin("quiz",
                              learnsail_includeme=lambda config: config.add_learnsail_service(svc),
                              learnsail_permissions=lambda: {"quiz:secret:view": ["teacher"]}))
    assert config.registry["learnsail.permissions"]["quiz:secret:view"] == {"teacher"}
    app = webtest.TestApp(config.make_wsgi_app())
    from sqlalchemy.orm import Session
    from learnsail.identity.services import create_user
    from learnsail.identity import tokens

    with Session(config.registry["learnsail.db_engine"]) as session, session.begin():
        teacher = create_user(session, username="t", password="pw-long-enough", role="teacher")
        student = create_user(session, username="s", password="pw-long-enough", role="student")
        ids = {"teacher": teacher.id, "student": student.id}
    settings = config.registry.settings

    def bearer(role):
        return {"Authorization": "Bearer " + tokens.issue(settings, ids[role], "access", 60, role=role)}

    assert app.get("/api/v1/quiz-secret", headers=bearer("teacher")).json == {"ok": True}
    assert app.get("/api/v1/quiz-secret", headers=bearer("student"), status=403).json["error"]["code"] \
        == "PERMISSION_DENIED"


def test_learnsail_health_checks_failing_check_gives_503(build_app):
    def broken():
        raise ConnectionError("cache at 127.0.0.1:1 refused")

    config = build_app(plugin("cachey", learnsail_health_checks=lambda registry: {"cache": broken}))
    r = webtest.TestApp(config.make_wsgi_app()).get("/healthz", status=503)
    assert r.json["status"] == "error"
    assert r.json["checks"]["database"] == {"status": "ok"}
    assert "refused" in r.json["checks"]["cache"]["error"]


def test_learnsail_prometheus_collectors_appear_in_metrics(build_app):
    made = {}

    def collectors(registry, metrics_registry):
        made["counter"] = Counter("quiz_attempts_total", "Quiz attempts", registry=metrics_registry)

    config = build_app(plugin("quiz", learnsail_prometheus_collectors=collectors))
    made["counter"].inc(3)
    text = webtest.TestApp(config.make_wsgi_app(), extra_environ={"REMOTE_ADDR": "127.0.0.1"}).get("/metrics").text
    assert "quiz_attempts_total 3.0" in text


def test_learnsail_demo_data_runs_from_init(monkeypatch, tmp_path, _database_maker):
    import learnsail.plugins as plugins_mod
    from learnsail.cli import main

    calls = []
    demo = plugin("demo", learnsail_demo_data=lambda session, settings: calls.append(session) or "2 rows")
    real_load = plugins_mod.load
    monkeypatch.setattr(plugins_mod, "load", lambda wanted, core_plugins=(), installed=None:
                        real_load(wanted, core_plugins, installed={"demo": demo}))
    monkeypatch.setenv("LEARNSAIL_DATABASE_URL", _database_maker())
    monkeypatch.setenv("LEARNSAIL_DATA_DIR", str(tmp_path))
    assert main(["init"]) == 0
    assert len(calls) == 1


def test_learnsail_user_created_called_in_the_same_transaction(dbsession, app):
    from learnsail.identity.services import create_user

    seen = []
    pm = manager(plugin("profiles", learnsail_user_created=lambda user, session: seen.append(
        (user.username, session is dbsession))))
    create_user(dbsession, username="new", password="long enough pw", pm=pm)
    assert seen == [("new", True)]


def test_learnsail_user_erased_and_learnsail_user_export():
    erased = []
    pm = manager(
        plugin("notes", learnsail_user_erased=lambda user_id, session: erased.append(("notes", user_id)),
               learnsail_user_export=lambda user_id, session: {"notes": ["n1"]}),
        plugin("orders", learnsail_user_erased=lambda user_id, session: erased.append(("orders", user_id)),
               learnsail_user_export=lambda user_id, session: None),
    )
    pm.hook.learnsail_user_erased(user_id=5, session=None)
    assert sorted(erased) == [("notes", 5), ("orders", 5)]
    assert pm.hook.learnsail_user_export(user_id=5, session=None) == [{"notes": ["n1"]}]


def test_learnsail_product_quote_first_answer_wins():
    quote = {"title": "Python 101", "price": Decimal("99.00"), "currency": "CNY",
             "purchasable": True, "reason": None}
    pm = manager(
        plugin("courses", learnsail_product_quote=lambda kind, ref_id, user, session:
               quote if kind == "course" else None),
        plugin("counselling", learnsail_product_quote=lambda kind, ref_id, user, session:
               {"title": "Session", "price": Decimal("10")} if kind == "appointment" else None),
    )
    assert pm.hook.learnsail_product_quote(kind="course", ref_id=1, user=None, session=None) == quote
    assert pm.hook.learnsail_product_quote(kind="appointment", ref_id=1, user=None, session=None)["title"] \
        == "Session"
    assert pm.hook.learnsail_product_quote(kind="ebook", ref_id=1, user=None, session=None) is None


def test_learnsail_order_paid_and_learnsail_order_refunded_reach_every_plugin():
    events = []
    order = types.SimpleNamespace(id=1, product_type="course", product_id=3)
    pm = manager(
        plugin("courses", learnsail_order_paid=lambda order, session: events.append(("enrol", order.id)),
               learnsail_order_refunded=lambda order, session: events.append(("unenrol", order.id))),
        plugin("analytics", learnsail_order_paid=lambda order, session: events.append(("count", order.id))),
    )
    pm.hook.learnsail_order_paid(order=order, session=None)
    pm.hook.learnsail_order_refunded(order=order, session=None)
    assert sorted(events) == [("count", 1), ("enrol", 1), ("unenrol", 1)]


def test_learnsail_member_until_first_answer_wins_and_none_means_no_membership():
    assert manager().hook.learnsail_member_until(user_id=1, session=None) is None
    until = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    pm = manager(plugin("payments", learnsail_member_until=lambda user_id, session:
                        until if user_id == 1 else False))
    assert pm.hook.learnsail_member_until(user_id=1, session=None) == until
    assert pm.hook.learnsail_member_until(user_id=2, session=None) is False


def test_learnsail_is_enrolled_none_when_nobody_knows():
    assert manager().hook.learnsail_is_enrolled(user_id=1, course_id=2, session=None) is None
    pm = manager(plugin("courses", learnsail_is_enrolled=lambda user_id, course_id, session:
                        (user_id, course_id) == (1, 2)))
    assert pm.hook.learnsail_is_enrolled(user_id=1, course_id=2, session=None) is True
    assert pm.hook.learnsail_is_enrolled(user_id=9, course_id=2, session=None) is False


def test_learnsail_channel_authorize_owner_answers():
    pm = manager(
        plugin("live", learnsail_channel_authorize=lambda user, channel:
               (user == "alice") if channel.startswith("live:") else None),
        plugin("community", learnsail_channel_authorize=lambda user, channel:
               True if channel.startswith("room:") else None),
    )
    assert pm.hook.learnsail_channel_authorize(user="alice", channel="live:1", session=None) is True
    assert pm.hook.learnsail_channel_authorize(user="bob", channel="live:1", session=None) is False
    assert pm.hook.learnsail_channel_authorize(user="bob", channel="room:3", session=None) is True
    assert pm.hook.learnsail_channel_authorize(user="bob", channel="other:3", session=None) is None


def test_learnsail_metrics_collects_every_plugin():
    since = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    until = since + dt.timedelta(days=7)
    pm = manager(
        plugin("courses", learnsail_metrics=lambda session, since, until: {"courses.enrolments": 4}),
        plugin("payments", learnsail_metrics=lambda session, since, until: {"payments.revenue": 120}),
    )
    merged = {}
    for part in pm.hook.learnsail_metrics(session=None, since=since, until=until):
        merged.update(part)
    assert merged == {"courses.enrolments": 4, "payments.revenue": 120}


def test_learnsail_login_new_device_only_for_unseen_devices(dbsession, app, make_user):
    from learnsail.identity import services

    user = make_user(password="a long enough passphrase")
    seen = []
    pm = manager(plugin("notify", learnsail_login_new_device=lambda user, event, session:
                        seen.append((user.id, event.ip, event.user_agent))))
    settings = app.registry.settings

    def sign_in(ip, agent):
        return services.login(dbsession, settings, pm, password="a long enough passphrase", ip=ip,
                              user_agent=agent, username=user.username)[1]

    assert sign_in("10.0.0.1", "Firefox") is False  # the very first sign-in is not "new"
    dbsession.flush()
    assert sign_in("10.0.0.1", "Firefox") is False  # a known device
    dbsession.flush()
    assert sign_in("10.9.9.9", "Firefox") is True
    assert seen == [(user.id, "10.9.9.9", "Firefox")]


def test_wiring_hooks_receive_only_the_arguments_they_declare(build_app):
    """pluggy lets an implementation declare a subset of the spec's arguments."""
    config = build_app(plugin("lean", learnsail_health_checks=lambda: {"lean": lambda: None},
                              learnsail_includeme=lambda: None))
    r = webtest.TestApp(config.make_wsgi_app()).get("/healthz")
    assert r.json["checks"]["lean"] == {"status": "ok"}
