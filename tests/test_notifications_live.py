"""Notifications in a separately built app: a test plugin declaring its own
type through ``learnsail_notification_types``, and the live push of each
new in-app notification to the user's realtime channel ``user:<id>``."""

from __future__ import annotations

import json
import types
from typing import Any

import pytest
import sqlalchemy as sa
from learnsail import hookimpl
from learnsail.api import Schema, Service
from learnsail.identity import tokens
from learnsail.notifications import NotificationType, notify, types_of
from learnsail.notifications.models import Notification
from learnsail.plugins import Plugin, PluginInfo, discover
from learnsail.realtime.gateway import EmbeddedGateway
from learnsail.testing import isolated_environ
from marshmallow import fields
from websockets.sync.client import connect

SECRET = "notify-secret-notify-secret-notify-secret"


class NoticeSchema(Schema):
    user_ids = fields.List(fields.Integer(), required=True)
    title = fields.String(required=True)
    fail = fields.Boolean(load_default=False)


_notice = Service(name="notifytest.notice", path="/api/v1/notify-test/notice",
                  description="Sends the plugin's notification (tests only).")


@_notice.post(permission="core:account:self", schema=NoticeSchema, errors=(409,))
def _send_notice(request: Any) -> dict:
    from learnsail.errors import Conflict

    body = request.validated["body"]
    notify(request, body["user_ids"], "notifytest.graded", body["title"], "Your essay was graded.",
           related_type="essay", related_id=7)
    if body["fail"]:
        raise Conflict("the request fails after notifying")
    return {"ok": True}


@hookimpl
def learnsail_notification_types():
    return [NotificationType("notifytest.graded", "An essay of yours was graded.", ("in_app", "email"))]


@hookimpl
def learnsail_includeme(config):
    config.add_learnsail_service(_notice)


PLUGIN_MODULE = types.ModuleType("notifytest_plugin")
PLUGIN_MODULE.learnsail_notification_types = learnsail_notification_types
PLUGIN_MODULE.learnsail_includeme = learnsail_includeme


@pytest.fixture(scope="module")
def live(tmp_path_factory, _database_maker):
    import webtest
    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app
    from learnsail.identity.services import create_user, ensure_default_roles

    installed = dict(discover())
    installed["notifytest"] = Plugin(info=PluginInfo(name="notifytest", version="1.0", migrations=None),
                                     module=PLUGIN_MODULE)
    settings = {
        "learnsail.data_dir": str(tmp_path_factory.mktemp("notify")),
        "learnsail.database_url": _database_maker(),
        "learnsail.plugins": "notifytest",
        "learnsail.secret": SECRET,
        "learnsail.log_level": "CRITICAL",
    }
    config = configure(settings, environ=isolated_environ(), installed=installed)
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    app = webtest.TestApp(make_wsgi_app(config), extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    registry = app.app.registry
    users = {}
    with registry["learnsail.dbsession_factory"]() as session:
        ensure_default_roles(session)
        for name in ("ann", "ben"):
            user = create_user(session, password="correct horse battery", role="student", username=f"nt_{name}",
                               email=f"nt_{name}@example.com", pm=registry["learnsail.pm"])
            session.flush()
            users[name] = user.id
        session.commit()
    gateway = EmbeddedGateway(registry, host="127.0.0.1", port=0).start()
    yield types.SimpleNamespace(app=app, registry=registry, users=users, gateway=gateway)
    gateway.stop()
    registry["learnsail.db_engine"].dispose()


def headers(live, name):
    token = tokens.issue(live.registry.settings, live.users[name], "access", 600, role="student")
    return {"Authorization": f"Bearer {token}"}, token


def recv(ws, timeout=5.0):
    return json.loads(ws.recv(timeout=timeout))


def test_a_plugin_declares_a_type_through_the_hook(live):
    declared = types_of(live.registry)
    assert declared["notifytest.graded"].default_channels == ("in_app", "email")
    assert {"core.system", "core.login_new_device"} <= set(declared)
    auth, _ = headers(live, "ann")
    prefs = {p["type"]: p for p in live.app.get("/api/v1/users/notification-preferences", headers=auth)
             .json["preferences"]}
    assert prefs["notifytest.graded"] == {"type": "notifytest.graded", "description": "An essay of yours was graded.",
                                          "channels": {"in_app": True, "email": True, "sms": False},
                                          "defaults": {"in_app": True, "email": True, "sms": False}}


def test_new_notifications_are_pushed_live(live):
    auth, token = headers(live, "ann")
    ann = live.users["ann"]
    with connect(live.gateway.url) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert recv(ws)["type"] == "ready"
        ws.send(json.dumps({"type": "subscribe", "channels": [f"user:{ann}"]}))
        assert recv(ws)["type"] == "subscribed"
        # a failed request pushes nothing and writes nothing
        live.app.post_json("/api/v1/notify-test/notice", {"user_ids": [ann], "title": "lost", "fail": True},
                           headers=auth, status=409)
        live.app.post_json("/api/v1/notify-test/notice", {"user_ids": [ann, live.users["ben"]],
                                                          "title": "Essay graded"}, headers=auth)
        event = recv(ws)
        assert event["type"] == "event" and event["channel"] == f"user:{ann}" and event["event"] == "notification"
        data = event["data"]
        with live.registry["learnsail.dbsession_factory"]() as session:
            stored = session.scalars(sa.select(Notification).where(Notification.user_id == ann)).all()
        assert [n.title for n in stored] == ["Essay graded"]
        assert data == {**data, "id": stored[0].id, "type": "notifytest.graded", "title": "Essay graded",
                        "related_type": "essay", "related_id": 7, "is_read": False}
        listed = live.app.get("/api/v1/users/notifications", headers=auth).json["results"]
        assert [r["id"] for r in listed] == [data["id"]]
