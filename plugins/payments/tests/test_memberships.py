"""Memberships (001 会员专享): plans, the window a payment extends, the
refund that takes it back, and the membership hook in one query."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from payments_test_helpers import make_plan, order_plan, pay_sandbox
from learnsail.testing import count_queries
from learnsail_payments.models import Membership


def _ends(dbsession, user_id):
    dbsession.expire_all()
    return dbsession.scalar(sa.select(Membership.ends_at).where(Membership.user_id == user_id))


def test_plans_are_public_and_managed_by_admins(clients):
    admin = clients["admin"]
    plan = make_plan(admin, price="29.90", days=30, name="月度会员")
    hidden = make_plan(admin, price="9.90", days=7, is_active=False)
    listed = clients["anonymous"].get("/api/v1/membership/plans").json
    assert [(p["id"], p["price"], p["duration_days"], p["product_type"]) for p in listed] == \
        [(plan["id"], 29.9, 30, "membership")]
    everything = admin.get("/api/v1/membership/plans", params={"include_inactive": "true"}).json
    assert {p["id"] for p in everything} == {plan["id"], hidden["id"]}
    changed = admin.put_json(f"/api/v1/admin/membership/plans/{plan['id']}", {"price": "39.90"}, status=200).json
    assert changed["price"] == 39.9
    clients["student"].post_json("/api/v1/admin/membership/plans", {"name": "x", "duration_days": 1, "price": "1"},
                                 status=403)
    admin.post_json("/api/v1/admin/membership/plans", {"name": "x", "duration_days": 0, "price": "1"}, status=400)
    admin.delete(f"/api/v1/admin/membership/plans/{hidden['id']}", status=204)
    # an inactive plan cannot be ordered; an ordered plan cannot be deleted
    off = make_plan(admin, is_active=False)
    order_plan(clients["student"], off["id"], status=409)
    order_plan(clients["student"], plan["id"])
    admin.delete(f"/api/v1/admin/membership/plans/{plan['id']}", status=409)
    order_plan(clients["student"], 999_999, status=404)


def test_paying_extends_the_window_from_its_end(clients, users, dbsession):
    student = clients["student"]
    month = make_plan(clients["admin"], days=30)
    week = make_plan(clients["admin"], days=7)
    start = dt.datetime.now(dt.timezone.utc)
    pay_sandbox(student, order_plan(student, month["id"])["id"])
    first = _ends(dbsession, users.student.id)
    assert dt.timedelta(days=30) <= first - start < dt.timedelta(days=30, minutes=1)
    pay_sandbox(student, order_plan(student, week["id"])["id"])
    assert _ends(dbsession, users.student.id) == first + dt.timedelta(days=7)
    assert student.get("/api/v1/users/membership").json["is_member"] is True
    assert clients["other_student"].get("/api/v1/users/membership").json == {
        "is_member": False, "started_at": None, "ends_at": None, "days_left": 0}


def test_an_expired_membership_restarts_from_now(clients, users, dbsession):
    plan = make_plan(clients["admin"], days=10)
    pay_sandbox(clients["student"], order_plan(clients["student"], plan["id"])["id"])
    dbsession.execute(sa.update(Membership).values(ends_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)))
    pay_sandbox(clients["student"], order_plan(clients["student"], plan["id"])["id"])
    ends = _ends(dbsession, users.student.id)
    assert dt.timedelta(days=9, hours=23) < ends - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(days=10)


def test_a_full_refund_takes_the_days_back(clients, users, dbsession):
    student, admin = clients["student"], clients["admin"]
    month = make_plan(admin, days=30, price="30.00")
    year = make_plan(admin, days=365, price="300.00")
    first = order_plan(student, month["id"])
    pay_sandbox(student, first["id"])
    second = order_plan(student, year["id"])
    pay_sandbox(student, second["id"])
    before = _ends(dbsession, users.student.id)
    # a partial refund keeps the membership
    admin.post_json(f"/api/v1/admin/orders/{second['id']}/refund", {"amount": "100.00"}, status=201)
    assert _ends(dbsession, users.student.id) == before
    admin.post_json(f"/api/v1/admin/orders/{first['id']}/refund", {}, status=201)
    assert _ends(dbsession, users.student.id) == before - dt.timedelta(days=30)
    admin.post_json(f"/api/v1/admin/orders/{second['id']}/refund", {}, status=201)
    assert _ends(dbsession, users.student.id) <= dt.datetime.now(dt.timezone.utc)
    assert student.get("/api/v1/users/membership").json["is_member"] is False


def test_the_membership_hook_answers_in_one_query(app, clients, users, dbsession):
    hook = app.registry["learnsail.pm"].hook
    assert hook.learnsail_member_until(user_id=users.student.id, session=dbsession) is False
    pay_sandbox(clients["student"], order_plan(clients["student"], make_plan(clients["admin"])["id"])["id"])
    with count_queries(app.registry["learnsail.db_engine"]) as statements:
        until = hook.learnsail_member_until(user_id=users.student.id, session=dbsession)
    assert len(statements) == 1
    assert isinstance(until, dt.datetime) and until > dt.datetime.now(dt.timezone.utc)
