"""Notifications: the 000 contract (list, read, read-all), the unread
count, deletion, preferences and their effect on email/SMS, the admins'
system notices, fan-out to many recipients by a task, and the new-device
notice."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import transaction
from learnsail.identity.models import User
from learnsail.notifications import NotificationType, notify, types_of
from learnsail.notifications.models import Notification, NotificationPreference
from learnsail.testing import count_queries
from learnsail.testing.authz import ADMIN_ONLY, SIGNED_IN, check_matrix

LIST = "/api/v1/users/notifications"
UNREAD = "/api/v1/users/notifications/unread-count"
READ_ALL = "/api/v1/notifications/read-all"
PREFS = "/api/v1/users/notification-preferences"
SEND = "/api/v1/notifications"


def seed(dbsession, user_id, n, type_="core.system", read=False):
    ids = []
    for i in range(n):
        note = Notification(user_id=user_id, type=type_, title=f"t{i}", content=f"c{i}", is_read=read,
                            related_type="course", related_id=i + 1)
        dbsession.add(note)
        dbsession.flush()
        ids.append(note.id)
    dbsession.commit()
    return ids


def rows(dbsession, user_id):
    dbsession.expire_all()
    return dbsession.scalars(sa.select(Notification).where(Notification.user_id == user_id)
                             .order_by(Notification.id)).all()


def send(app, dbsession, recipients, type_="core.system", title="Hello", content="Body", **kw):
    """notify() in a committed transaction of the test's session."""
    from learnsail.aftercommit import manager_of

    tm = manager_of(dbsession)
    with tm:
        dbsession.info["learnsail.registry"] = app.registry
        result = notify(dbsession, recipients, type_, title, content, **kw)
        dbsession.flush()
    dbsession.commit()
    return result


# --- the contract ------------------------------------------------------------------------

def test_every_route_needs_a_signed_in_user(testapp, actor_headers, users, dbsession):
    seed(dbsession, users.student.id, 1)
    check_matrix(testapp, actor_headers, "GET", LIST, SIGNED_IN)
    check_matrix(testapp, actor_headers, "GET", UNREAD, SIGNED_IN)
    check_matrix(testapp, actor_headers, "PUT", READ_ALL, SIGNED_IN)
    check_matrix(testapp, actor_headers, "GET", PREFS, SIGNED_IN)
    check_matrix(testapp, actor_headers, "POST", SEND, {**ADMIN_ONLY, "admin": 201},
                 json={"user_ids": [users.student.id], "title": "Maintenance", "content": "Tonight"})


def test_list_shape_filters_and_newest_first(clients, users, dbsession):
    me = users.student.id
    unread = seed(dbsession, me, 3)
    read = seed(dbsession, me, 2, read=True)
    seed(dbsession, users.other_student.id, 4)
    student = clients["student"]
    page = student.get(LIST).json
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 5
    assert [r["id"] for r in page["results"]] == sorted(unread + read, reverse=True)
    first = page["results"][-1]
    assert set(first) >= {"id", "title", "content", "type", "related_id", "is_read", "created_at"}
    assert first == {**first, "id": unread[0], "title": "t0", "content": "c0", "type": "core.system",
                     "related_type": "course", "related_id": 1, "is_read": False}
    assert first["created_at"].endswith("Z")
    assert [r["id"] for r in student.get(LIST, params={"read": "false"}).json["results"]] == unread[::-1]
    assert [r["id"] for r in student.get(LIST, params={"read": "true"}).json["results"]] == read[::-1]
    assert student.get(LIST, params={"type": "core.login_new_device"}).json["count"] == 0
    paged = student.get(LIST, params={"page": 2, "page_size": 2}).json
    assert [r["id"] for r in paged["results"]] == [unread[2], unread[1]]
    assert "page=3" in paged["next"] and "page=1" in paged["previous"]
    assert student.get(UNREAD).json == {"count": 3}
    # bad input: a clear 400
    for params in ({"read": "maybe"}, {"page": 0}, {"page_size": "x"}):
        r = student.get(LIST, params=params, status=400)
        assert r.json["error"]["code"] == "VALIDATION_ERROR"


def test_listing_runs_a_constant_number_of_queries(app, clients, users, dbsession):
    seed(dbsession, users.student.id, 30)
    engine = app.registry["learnsail.db_engine"]
    clients["student"].get(LIST)  # warm the caches (auth, permissions)
    counts = []
    for size in (1, 30):
        with count_queries(engine) as statements:
            clients["student"].get(LIST, params={"page_size": size})
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_read_read_all_and_delete_touch_only_the_callers_rows(testapp, clients, actor_headers, users, dbsession):
    mine = seed(dbsession, users.student.id, 3)
    theirs = seed(dbsession, users.other_student.id, 2)
    # another user's notification is a 404 for every route, never a change
    for method, url in (("PUT", f"/api/v1/notifications/{theirs[0]}/read"),
                        ("DELETE", f"/api/v1/notifications/{theirs[0]}")):
        check_matrix(testapp, actor_headers, method, url,
                     {"anonymous": 401, "student": 404, "teacher": 404, "other_teacher": 404, "admin": 404,
                      "other_student": 200 if method == "PUT" else 204})
    assert [n.id for n in rows(dbsession, users.other_student.id)] == [theirs[1]]
    assert all(not n.is_read for n in rows(dbsession, users.student.id))

    student = clients["student"]
    r = student.put_json(f"/api/v1/notifications/{mine[0]}/read")
    assert set(r.json) == {"id", "is_read", "updated_at"} and r.json["id"] == mine[0] and r.json["is_read"] is True
    again = student.put_json(f"/api/v1/notifications/{mine[0]}/read").json
    assert again["updated_at"] == r.json["updated_at"]  # idempotent
    assert student.get(UNREAD).json == {"count": 2}
    assert student.put_json(READ_ALL).json == {"message": "All notifications marked as read", "count": 2}
    assert student.put_json(READ_ALL).json["count"] == 0
    assert all(n.is_read and n.read_at for n in rows(dbsession, users.student.id))
    assert not any(n.is_read for n in rows(dbsession, users.other_student.id))
    student.delete(f"/api/v1/notifications/{mine[1]}", status=204)
    assert [n.id for n in rows(dbsession, users.student.id)] == [mine[0], mine[2]]
    for bad in ("abc", "0", "99999999999999999999"):
        student.put_json(f"/api/v1/notifications/{bad}/read", status=(400, 404))
    student.put_json("/api/v1/notifications/987654/read", status=404)


# --- preferences ------------------------------------------------------------------------

def test_preferences_defaults_and_overrides(clients, users, dbsession):
    student = clients["student"]
    prefs = {p["type"]: p for p in student.get(PREFS).json["preferences"]}
    assert prefs["core.system"]["channels"] == {"in_app": True, "email": False, "sms": False}
    assert prefs["core.login_new_device"]["channels"] == {"in_app": True, "email": True, "sms": False}
    r = student.put_json(PREFS, {"preferences": [
        {"type": "core.system", "channel": "sms", "enabled": True},
        {"type": "core.login_new_device", "channel": "email", "enabled": False}]})
    prefs = {p["type"]: p for p in r.json["preferences"]}
    assert prefs["core.system"]["channels"]["sms"] is True
    assert prefs["core.login_new_device"]["channels"]["email"] is False
    stored = dbsession.scalars(sa.select(NotificationPreference)
                               .where(NotificationPreference.user_id == users.student.id)).all()
    assert len(stored) == 2  # only the deviations
    # back to the default: the row goes
    student.put_json(PREFS, {"preferences": [{"type": "core.system", "channel": "sms", "enabled": False}]})
    dbsession.expire_all()
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(NotificationPreference)
                            .where(NotificationPreference.user_id == users.student.id)) == 1
    # another user sees only their own defaults
    other = {p["type"]: p for p in clients["other_student"].get(PREFS).json["preferences"]}
    assert other["core.login_new_device"]["channels"]["email"] is True
    # unknown type or channel: 400, nothing changes
    for body in ({"preferences": [{"type": "core.system", "channel": "sms", "enabled": True},
                                  {"type": "nope.nothing", "channel": "email", "enabled": True}]},
                 {"preferences": [{"type": "core.system", "channel": "pigeon", "enabled": True}]},
                 {"preferences": []}, {"preferences": "x"}, {}):
        r = student.put_json(PREFS, body, status=400)
        assert r.json["error"]["code"] == "VALIDATION_ERROR"
    assert {p["type"]: p for p in student.get(PREFS).json["preferences"]}["core.system"]["channels"]["sms"] is False


def test_preferences_decide_the_channels(app, dbsession, make_user, mailbox, sms_outbox):
    plain = make_user(phone="+8613800000001")
    emailed = make_user(phone="+8613800000002")
    texted = make_user(phone="+8613800000003")
    silent = make_user()
    dbsession.add_all([
        NotificationPreference(user_id=emailed.id, type="core.system", channel="email", enabled=True),
        NotificationPreference(user_id=texted.id, type="core.system", channel="sms", enabled=True),
        NotificationPreference(user_id=silent.id, type="core.system", channel="in_app", enabled=False)])
    dbsession.commit()
    send(app, dbsession, [plain.id, emailed.id, texted.id, silent.id], title="Exam moved", content="To Friday")
    assert [len(rows(dbsession, u.id)) for u in (plain, emailed, texted, silent)] == [1, 1, 1, 0]
    (message,) = mailbox.delivered()
    assert message["To"] == emailed.email and message["Subject"] == "Exam moved"
    assert "To Friday" in message.get_content()
    assert sms_outbox.delivered() == [(texted.phone, "notification", {"title": "Exam moved"})]


def test_undeclared_types_and_bad_arguments_are_refused(app, dbsession, users):
    cases = ((users.student.id, "nope.type", "t", ValueError), (users.student.id, "core.system", "", ValueError),
             (True, "core.system", "t", TypeError), (["1"], "core.system", "t", TypeError))
    for recipients, type_, title, error in cases:
        with pytest.raises(error), transaction.manager:
            notify(dbsession, recipients, type_, title, "c")
    with pytest.raises(ValueError):
        NotificationType("x.y", "bad", ("pigeon",))
    assert rows(dbsession, users.student.id) == []


# --- sending ---------------------------------------------------------------------------

def test_admin_sends_a_system_notice_to_users_or_a_role(clients, users, dbsession):
    admin = clients["admin"]
    r = admin.post_json(SEND, {"user_ids": [users.student.id, users.teacher.id], "title": "Hi",
                               "content": "Welcome"}, status=201)
    assert r.json == {"recipients": 2, "queued": False}
    assert [n.title for n in rows(dbsession, users.teacher.id)] == ["Hi"]
    r = admin.post_json(SEND, {"role": "teacher", "title": "Teachers", "content": "Meeting"}, status=201)
    teachers = dbsession.scalar(sa.select(sa.func.count()).select_from(User).join(User.role)
                                .where(sa.text("roles.name = 'teacher'")))
    assert r.json["recipients"] == teachers
    assert [n.title for n in rows(dbsession, users.other_teacher.id)] == ["Teachers"]
    assert rows(dbsession, users.other_student.id) == []
    # bad input: nothing sent
    for body in ({"user_ids": [users.student.id, 999999], "title": "x", "content": "y"},
                 {"role": "nobody", "title": "x", "content": "y"}):
        assert admin.post_json(SEND, body, status=404).json["error"]["code"] == "RESOURCE_NOT_FOUND"
    for body in ({"title": "x", "content": "y"}, {"user_ids": [1], "role": "teacher", "title": "x", "content": "y"},
                 {"user_ids": [], "title": "x", "content": "y"}, {"user_ids": [1], "title": "", "content": "y"}):
        assert admin.post_json(SEND, body, status=400).json["error"]["code"] == "VALIDATION_ERROR"
    assert len(rows(dbsession, users.student.id)) == 1


def test_a_failed_request_sends_nothing(app, dbsession, users, mailbox):
    dbsession.add(NotificationPreference(user_id=users.student.id, type="core.system", channel="email",
                                         enabled=True))
    dbsession.commit()
    from learnsail.aftercommit import manager_of

    with pytest.raises(RuntimeError), manager_of(dbsession):
        notify(dbsession, [users.student.id], "core.system", "Lost", "never sent")
        raise RuntimeError("the request fails after notifying")
    dbsession.rollback()
    assert [n.title for n in rows(dbsession, users.student.id)] == []
    assert mailbox.delivered() == []


def test_fan_out_to_many_recipients_runs_in_a_task(app, dbsession, clients, users):
    role_id = users.student.role_id
    dbsession.execute(sa.insert(User), [
        {"username": f"crowd{i}", "email": None, "phone": None, "password": "x", "role_id": role_id,
         "is_active": True} for i in range(2500)])
    dbsession.commit()
    crowd = list(dbsession.scalars(sa.select(User.id).where(User.username.like("crowd%"))))
    assert len(crowd) == 2500
    engine = app.registry["learnsail.db_engine"]
    inserts = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO NOTIFICATIONS"):
            inserts.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        with count_queries(engine) as statements:
            r = clients["admin"].post_json(SEND, {"role": "student", "title": "All students",
                                                  "content": "Hello"}, status=201)
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    assert r.json["queued"] is True and r.json["recipients"] >= 2500
    # the task wrote them in batches of at most 1,000, one INSERT per batch
    assert len(inserts) == 3
    assert len(statements) < 30  # request + three batches: no statement per recipient
    dbsession.expire_all()
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Notification)
                            .where(Notification.user_id.in_(crowd))) == 2500


def test_inline_limit_decides_inline_or_task(app, dbsession, make_user, monkeypatch):
    monkeypatch.setitem(app.registry.settings, "learnsail.notifications_inline_limit", 2)
    people = [make_user().id for _ in range(3)]
    assert send(app, dbsession, people[:2]) == 2
    assert send(app, dbsession, people) is None  # beyond the limit: the task did it
    assert [len(rows(dbsession, uid)) for uid in people] == [2, 2, 1]
    assert send(app, dbsession, sa.select(User.id).where(User.id == people[2])) is None
    assert len(rows(dbsession, people[2])) == 2


def test_signing_in_from_a_new_device_notifies(testapp, make_user, dbsession, mailbox):
    user = make_user(password="a long enough passphrase")

    def sign_in(ip, agent):
        testapp.post_json("/api/v1/users/login", {"username": user.username, "password": "a long enough passphrase"},
                          headers={"User-Agent": agent}, extra_environ={"REMOTE_ADDR": ip})

    sign_in("10.0.0.1", "Firefox")
    sign_in("10.0.0.1", "Firefox")
    assert rows(dbsession, user.id) == []
    sign_in("10.9.9.9", "Firefox")
    (note,) = rows(dbsession, user.id)
    assert note.type == "core.login_new_device" and "10.9.9.9" in note.content
    (message,) = mailbox.delivered()  # on by default for this type
    assert message["To"] == user.email


def test_export_erase_and_purge(app, dbsession, users):
    from learnsail.identity import privacy
    from learnsail.notifications import hooks, services

    seed(dbsession, users.student.id, 2)
    dbsession.add(NotificationPreference(user_id=users.student.id, type="core.system", channel="sms",
                                         enabled=True))
    dbsession.commit()
    exported = hooks.learnsail_user_export(user_id=users.student.id, session=dbsession)
    assert len(exported["notifications"]) == 2 and exported["preferences"] == [
        {"type": "core.system", "channel": "sms", "enabled": True}]
    assert hooks.learnsail_user_export(user_id=users.teacher.id, session=dbsession) is None
    assert "core.notifications" in privacy.export(dbsession, app.registry["learnsail.pm"], users.student)["plugins"]
    hooks.learnsail_user_erased(user_id=users.student.id, session=dbsession)
    dbsession.commit()
    assert rows(dbsession, users.student.id) == []
    # purge: read and old only
    import datetime as dt

    ids = seed(dbsession, users.teacher.id, 3)
    notes = rows(dbsession, users.teacher.id)
    notes[0].is_read, notes[0].created_at = True, dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    notes[1].created_at = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    dbsession.commit()
    assert services.purge_read(dbsession, 90) == 1
    dbsession.commit()
    assert [n.id for n in rows(dbsession, users.teacher.id)] == ids[1:]


def test_the_core_declares_its_types(app):
    declared = types_of(app.registry)
    assert {"core.system", "core.login_new_device"} <= set(declared)
    from learnsail.notifications import periodic_tasks

    assert [p.task for p in periodic_tasks(app.registry.settings)] == ["notify.purge"]
