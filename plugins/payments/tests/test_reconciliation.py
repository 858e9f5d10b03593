"""Reconciliation: pending orders the gateway says are paid are settled
through the same transition; the mismatch report lists paid-there-not-here
and paid-here-not-there, and administrators resolve findings."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from payments_test_helpers import make_plan, order_plan, pay_sandbox, sandbox
from learnsail.tasks import send_now
from learnsail_payments.models import Discrepancy, Order, OrderEvent, PaymentAttempt


def _age(dbsession, order_id, minutes=10):
    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes)
    dbsession.execute(sa.update(PaymentAttempt).where(PaymentAttempt.order_id == order_id)
                      .values(last_started_at=then))
    dbsession.execute(sa.update(Order).where(Order.id == order_id)
                      .values(closed_at=sa.case((Order.closed_at.is_not(None), then), else_=None),
                              paid_at=sa.case((Order.paid_at.is_not(None), then), else_=None)))
    dbsession.commit()


@pytest.fixture
def plan(clients):
    return make_plan(clients["admin"], price="20.00")


def test_a_lost_notification_is_cured_by_reconciliation(app, clients, plan, dbsession):
    """Paid at the platform, the notification never arrived: the periodic
    task settles the order (and fulfils it) through the same transition."""
    student = clients["student"]
    order = order_plan(student, plan["id"])
    pay = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=200).json
    query = dict(part.split("=") for part in pay["pay_params"]["confirm_url"].split("?", 1)[1].split("&"))
    sandbox(app).confirm(order["order_no"], query["amount"], query["currency"], query["expires"], query["sig"])
    send_now(app.registry, "payments.reconcile")
    dbsession.expire_all()
    assert dbsession.get(Order, order["id"]).status == "pending"  # too recent to ask yet
    _age(dbsession, order["id"])
    send_now(app.registry, "payments.reconcile")
    dbsession.expire_all()
    settled = dbsession.get(Order, order["id"])
    assert settled.status == "paid" and settled.transaction_id.startswith("SBX") and settled.reconciled_at
    event = dbsession.scalar(sa.select(OrderEvent).where(OrderEvent.order_id == order["id"],
                                                         OrderEvent.to_status == "paid"))
    assert event.actor_type == "system" and "reconciliation" in event.reason
    assert student.get("/api/v1/users/membership").json["is_member"] is True


def test_paid_at_the_gateway_after_the_order_expired(app, clients, plan, dbsession):
    student = clients["student"]
    order = order_plan(student, plan["id"])
    pay = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=200).json
    query = dict(part.split("=") for part in pay["pay_params"]["confirm_url"].split("?", 1)[1].split("&"))
    sandbox(app).confirm(order["order_no"], query["amount"], query["currency"], query["expires"], query["sig"])
    student.post_json(f"/api/v1/orders/{order['id']}/cancel", {}, status=200)
    _age(dbsession, order["id"])
    summary = clients["admin"].post_json("/api/v1/admin/payments/reconcile", {}, status=200).json
    assert summary["findings"] == 1
    report = clients["admin"].get("/api/v1/admin/payments/discrepancies").json["results"]
    assert [(d["order_no"], d["kind"], d["order_status"], d["gateway_status"]) for d in report] == \
        [(order["order_no"], "paid_at_gateway_only", "cancelled", "paid")]
    # a second pass does not report it twice
    assert clients["admin"].post_json("/api/v1/admin/payments/reconcile", {}, status=200).json["findings"] == 0


def test_paid_here_but_unknown_at_the_gateway(app, clients, plan, dbsession):
    order = order_plan(clients["student"], plan["id"])
    pay_sandbox(clients["student"], order["id"])
    sandbox(app)._books.pop(order["order_no"])  # the platform lost it (or never had it)
    _age(dbsession, order["id"])
    clients["admin"].post_json("/api/v1/admin/payments/reconcile", {}, status=200)
    (finding,) = dbsession.scalars(sa.select(Discrepancy)).all()
    assert (finding.kind, finding.gateway_status, finding.order_status) == ("paid_here_only", "not_found", "paid")
    # checked once: not asked again
    assert clients["admin"].post_json("/api/v1/admin/payments/reconcile", {}, status=200).json["checked"] == 0
    # resolving it
    admin = clients["admin"]
    resolved = admin.post_json(f"/api/v1/admin/payments/discrepancies/{finding.id}/resolve",
                               {"note": "refunded by hand"}, status=200).json
    assert resolved["resolved_at"] and resolved["resolution_note"] == "refunded by hand"
    admin.post_json(f"/api/v1/admin/payments/discrepancies/{finding.id}/resolve", {"note": "x"}, status=409)
    assert admin.get("/api/v1/admin/payments/discrepancies", params={"resolved": "false"}).json["count"] == 0
    for actor in ("student", "teacher"):
        clients[actor].get("/api/v1/admin/payments/discrepancies", status=403)
        clients[actor].post_json("/api/v1/admin/payments/reconcile", {}, status=403)


def test_a_paid_order_the_gateway_agrees_with_is_not_reported(app, clients, plan, dbsession):
    order = order_plan(clients["student"], plan["id"])
    pay_sandbox(clients["student"], order["id"])
    _age(dbsession, order["id"])
    summary = clients["admin"].post_json("/api/v1/admin/payments/reconcile", {}, status=200).json
    assert summary == {"checked": 1, "settled": 0, "findings": 0, "errors": 0}
    dbsession.expire_all()
    assert dbsession.get(Order, order["id"]).reconciled_at is not None


def test_an_order_whose_fulfilment_fails_does_not_hold_back_the_others(app, clients, gadgets, dbsession):
    student = clients["student"]
    broken, fine = gadgets.add("5.00"), gadgets.add("6.00")
    orders = []
    for gadget in (broken, fine):
        order = student.post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadget}).json
        pay = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=200).json
        query = dict(part.split("=") for part in pay["pay_params"]["confirm_url"].split("?", 1)[1].split("&"))
        sandbox(app).confirm(order["order_no"], query["amount"], query["currency"], query["expires"], query["sig"])
        _age(dbsession, order["id"])
        orders.append(order)
    gadgets.fail_for.add(broken)
    summary = clients["admin"].post_json("/api/v1/admin/payments/reconcile", {}, status=200).json
    assert (summary["settled"], summary["errors"]) == (1, 1)
    dbsession.expire_all()
    assert [dbsession.get(Order, o["id"]).status for o in orders] == ["pending", "paid"]
