"""Personal data: the export, and erasure keeping orders but not the person."""

from __future__ import annotations

import sqlalchemy as sa

from payments_test_helpers import make_coupon, make_plan, order_plan, pay_sandbox
from learnsail_payments.models import Membership, Order, PaymentAttempt, Refund, UserCoupon


def test_export_then_erase(app, clients, users, dbsession):
    student, admin = clients["student"], clients["admin"]
    plan = make_plan(admin, price="30.00")
    make_coupon(admin, code="KEEPME")
    order = order_plan(student, plan["id"])
    pay_sandbox(student, order["id"])
    student.post_json(f"/api/v1/orders/{order['id']}/refund", {"reason": "my address is 1 Main St"}, status=201)
    hook = app.registry["learnsail.pm"].hook
    (exported,) = [d for d in hook.learnsail_user_export(user_id=users.student.id, session=dbsession) if "orders" in d]
    assert [o["order_no"] for o in exported["orders"]] == [order["order_no"]]
    assert exported["refunds"][0]["reason"] == "my address is 1 Main St" and exported["membership"]["ends_at"]
    assert hook.learnsail_user_export(user_id=users.other_student.id, session=dbsession) == []

    hook.learnsail_user_erased(user_id=users.student.id, session=dbsession)
    dbsession.expire_all()
    kept = dbsession.get(Order, order["id"])
    assert kept is not None and kept.amount == 30 and kept.user_id == users.student.id
    assert dbsession.scalar(sa.select(Refund.reason).where(Refund.order_id == order["id"])) == "[erased]"
    assert dbsession.scalar(sa.select(PaymentAttempt.client_ip).where(PaymentAttempt.order_id == order["id"])) is None
    assert dbsession.scalar(sa.select(Membership).where(Membership.user_id == users.student.id)) is None
    assert dbsession.scalars(sa.select(UserCoupon).where(UserCoupon.user_id == users.student.id,
                                                         UserCoupon.status == "available")).all() == []


def test_the_core_export_endpoint_includes_payments(clients, users):
    pay_sandbox(clients["student"], order_plan(clients["student"], make_plan(clients["admin"])["id"])["id"])
    data = clients["student"].get("/api/v1/users/me/export").json
    assert data["plugins"]["payments"]["orders"][0]["status"] == "paid"
