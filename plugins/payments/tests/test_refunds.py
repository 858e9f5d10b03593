"""Refunds (004): asked by the buyer within the window, approved or
rejected by an administrator, sent through the gateway, completed at once
or by a verified refund notification; partial refunds keep totals right;
the order-refunded hook runs when a refund completes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from payments_test_helpers import pay_sandbox, post_callback, sandbox, snapshot
from learnsail_payments.models import Order, Refund


@pytest.fixture
def paid(clients, gadgets):
    gadget = gadgets.add("100.00")
    order = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadget},
                                         status=201).json
    pay_sandbox(clients["student"], order["id"])
    return order


@pytest.fixture
def processing_refunds(app):
    gateway = sandbox(app)
    gateway.refund_outcome = "processing"
    yield gateway
    gateway.refund_outcome = "succeeded"


def test_ask_then_approve_a_full_refund(clients, paid, gadgets, dbsession):
    student, admin = clients["student"], clients["admin"]
    refund = student.post_json(f"/api/v1/orders/{paid['id']}/refund", {"reason": "not what I expected"},
                               status=201).json
    assert (refund["status"], refund["amount"], refund["reason"]) == ("requested", 100.0, "not what I expected")
    assert student.get(f"/api/v1/orders/{paid['id']}").json["status"] == "refunding"
    # one open refund at a time
    student.post_json(f"/api/v1/orders/{paid['id']}/refund", {"reason": "again"}, status=409)
    queue = admin.get("/api/v1/admin/refunds", params={"status": "requested"}).json
    assert [(r["id"], r["order_no"]) for r in queue["results"]] == [(refund["id"], paid["order_no"])]
    done = admin.post_json(f"/api/v1/admin/refunds/{refund['id']}/approve", {"note": "ok"}, status=200).json
    assert done["status"] == "succeeded" and done["completed_at"]
    order = student.get(f"/api/v1/orders/{paid['id']}").json
    assert (order["status"], order["refunded_amount"]) == ("refunded", 100.0)
    assert order["refunds"][0]["status"] == "succeeded"
    assert gadgets.refunded == [(paid["order_no"], "refunded")]
    admin.post_json(f"/api/v1/admin/refunds/{refund['id']}/approve", {}, status=409)
    student.post_json(f"/api/v1/orders/{paid['id']}/refund", {"reason": "more"}, status=409)


def test_partial_refunds_keep_the_totals_right(clients, paid, gadgets, dbsession):
    admin = clients["admin"]
    first = admin.post_json(f"/api/v1/admin/orders/{paid['id']}/refund", {"amount": "30.00", "reason": "late"},
                            status=201).json
    assert first["status"] == "succeeded"
    order = dbsession.get(Order, paid["id"])
    dbsession.refresh(order)
    assert (order.status, order.refunded_amount) == ("partially_refunded", Decimal("30.00"))
    assert gadgets.refunded == [(paid["order_no"], "partially_refunded")]
    r = admin.post_json(f"/api/v1/admin/orders/{paid['id']}/refund", {"amount": "70.01"}, status=400)
    assert "at most 70.00" in r.json["error"]["details"]["amount"][0]
    clients["student"].post_json(f"/api/v1/orders/{paid['id']}/refund", {"reason": "the rest"}, status=201)
    rest = dbsession.scalar(sa.select(Refund).where(Refund.order_id == paid["id"], Refund.status == "requested"))
    assert rest.amount == Decimal("70.00")
    admin.post_json(f"/api/v1/admin/refunds/{rest.id}/approve", {}, status=200)
    dbsession.refresh(order)
    assert (order.status, order.refunded_amount) == ("refunded", Decimal("100.00"))
    assert gadgets.refunded[-1] == (paid["order_no"], "refunded")
    events = [e["to_status"] for e in clients["student"].get(f"/api/v1/orders/{paid['id']}/events").json]
    assert events == ["pending", "paid", "refunding", "partially_refunded", "refunding", "refunded"]


def test_a_rejected_refund_returns_the_order_and_tells_the_buyer(clients, paid, dbsession):
    from learnsail.notifications.models import Notification

    refund = clients["student"].post_json(f"/api/v1/orders/{paid['id']}/refund", {"reason": "meh"},
                                          status=201).json
    rejected = clients["admin"].post_json(f"/api/v1/admin/refunds/{refund['id']}/reject",
                                          {"note": "Used for 20 days."}, status=200).json
    assert rejected["status"] == "rejected" and rejected["review_note"] == "Used for 20 days."
    assert clients["student"].get(f"/api/v1/orders/{paid['id']}").json["status"] == "paid"
    types = dbsession.scalars(sa.select(Notification.type).where(
        Notification.user_id == paid["user_id"]).order_by(Notification.id)).all()
    assert types == ["payments.order_paid", "payments.refund_rejected"]
    clients["admin"].post_json(f"/api/v1/admin/refunds/{refund['id']}/reject", {}, status=409)


def test_the_refund_window(clients, paid, dbsession):
    dbsession.execute(sa.update(Order).where(Order.id == paid["id"])
                      .values(paid_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8)))
    r = clients["student"].post_json(f"/api/v1/orders/{paid['id']}/refund", {"reason": "late"}, status=409)
    assert r.json["error"]["details"] == {"refund_window_days": 7}
    # administrators are not bound by it
    clients["admin"].post_json(f"/api/v1/admin/orders/{paid['id']}/refund", {}, status=201)


def test_only_paid_orders_are_refunded_and_only_by_their_buyer(clients, gadgets, paid):
    pending = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget",
                                                              "product_id": gadgets.add("5.00")}).json
    clients["student"].post_json(f"/api/v1/orders/{pending['id']}/refund", {"reason": "x"}, status=409)
    clients["other_student"].post_json(f"/api/v1/orders/{paid['id']}/refund", {"reason": "x"}, status=404)
    clients["student"].post_json(f"/api/v1/orders/{paid['id']}/refund", {}, status=400)  # a reason is required
    for actor in ("student", "teacher"):
        clients[actor].get("/api/v1/admin/refunds", status=403)
        clients[actor].post_json(f"/api/v1/admin/orders/{paid['id']}/refund", {}, status=403)


def test_a_processing_refund_completes_by_its_verified_notification(app, clients, paid, processing_refunds,
                                                                    testapp, dbsession, gadgets):
    refund = clients["admin"].post_json(f"/api/v1/admin/orders/{paid['id']}/refund", {"amount": "40.00"},
                                        status=201).json
    assert refund["status"] == "processing" and gadgets.refunded == []
    assert clients["student"].get(f"/api/v1/orders/{paid['id']}").json["status"] == "refunding"
    gateway = processing_refunds
    note = dict(order_no=paid["order_no"], kind="refund", status="succeeded", amount=Decimal("40.00"),
                refund_no=refund["refund_no"], refund_id="SBR-1")
    # a forged or wrong one changes nothing
    headers, body = gateway.sign_notification(**{**note, "amount": Decimal("41.00")})
    before = snapshot(dbsession)
    assert post_callback(testapp, headers, body, status=400).json["message"].startswith("wrong_amount")
    headers, body = gateway.sign_notification(**{**note, "refund_no": "R-unknown"})
    assert post_callback(testapp, headers, body, status=400).json["message"].startswith("unknown_refund")
    headers, body = gateway.sign_notification(**note)
    assert post_callback(testapp, headers, body.replace(b"40.00", b"90.00"), status=400).json["message"] \
        .startswith("bad_signature")
    assert snapshot(dbsession) == before
    assert post_callback(testapp, headers, body, status=200).json["code"] == 0
    order = dbsession.get(Order, paid["id"])
    dbsession.refresh(order)
    assert (order.status, order.refunded_amount) == ("partially_refunded", Decimal("40.00"))
    assert gadgets.refunded == [(paid["order_no"], "partially_refunded")]
    # its duplicate changes nothing
    post_callback(testapp, *gateway.sign_notification(**note), status=200)
    dbsession.refresh(order)
    assert order.refunded_amount == Decimal("40.00")


def test_a_failed_refund_puts_the_order_back(app, clients, paid, processing_refunds, testapp, dbsession):
    refund = clients["admin"].post_json(f"/api/v1/admin/orders/{paid['id']}/refund", {}, status=201).json
    headers, body = processing_refunds.sign_notification(order_no=paid["order_no"], kind="refund", status="failed",
                                                         amount=Decimal("100.00"), refund_no=refund["refund_no"])
    post_callback(testapp, headers, body, status=200)
    order = clients["student"].get(f"/api/v1/orders/{paid['id']}").json
    assert order["status"] == "paid" and order["refunds"][0]["status"] == "failed"


def test_an_unreachable_platform_changes_nothing(app, clients, paid, monkeypatch, dbsession):
    from learnsail_payments.gateways.base import GatewayError

    refund = clients["student"].post_json(f"/api/v1/orders/{paid['id']}/refund", {"reason": "x"}, status=201).json

    def down(*args, **kwargs):
        raise GatewayError("connection refused", transient=True, code="NETWORK")

    monkeypatch.setattr(sandbox(app), "refund", down)
    r = clients["admin"].post_json(f"/api/v1/admin/refunds/{refund['id']}/approve", {}, status=503)
    assert r.json["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert dbsession.get(Refund, refund["id"]).status == "requested"
    monkeypatch.undo()
    assert clients["admin"].post_json(f"/api/v1/admin/refunds/{refund['id']}/approve", {},
                                      status=200).json["status"] == "succeeded"
