"""``POST /api/v1/pay/callback/{platform}``: what is accepted, what is
refused (and that a refusal changes nothing and says why), duplicates,
late payments, and success only after the commit.  Notifications are the
sandbox's, signed as the sandbox signs them; the real platforms' signing
is tested in test_gateway_*.py and end to end in
tests/test_payments_with_courses.py."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from payments_test_helpers import make_plan, order_plan, post_callback, sandbox, signed, snapshot
from learnsail_payments.models import Discrepancy, NotificationNonce, Order, OrderEvent


@pytest.fixture
def pending(clients):
    plan = make_plan(clients["admin"], price="30.00")
    return order_plan(clients["student"], plan["id"])


def test_a_signed_notification_pays_the_order_once(app, testapp, dbsession, pending, users):
    headers, body = signed(app, pending)
    r = post_callback(testapp, headers, body, status=200)
    assert r.json == {"code": 0, "message": "success"}
    order = dbsession.get(Order, pending["id"])
    assert (order.status, order.platform, order.amount) == ("paid", "sandbox", Decimal("30.00"))
    assert order.transaction_id == json.loads(body)["transaction_id"]
    # a duplicate (the platform retries with a new nonce): success, nothing changes
    before = snapshot(dbsession)
    again_headers, again_body = signed(app, pending, transaction_id=order.transaction_id)
    assert post_callback(testapp, again_headers, again_body, status=200).json["code"] == 0
    after = snapshot(dbsession)
    assert after["orders"] == before["orders"] and after["events"] == before["events"]
    assert after["nonces"] == before["nonces"] + 1  # the duplicate's nonce is spent
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(OrderEvent)
                            .where(OrderEvent.order_id == order.id, OrderEvent.to_status == "paid")) == 1


def _refused(testapp, dbsession, headers, body, reason, status=400):
    before = snapshot(dbsession)
    r = post_callback(testapp, headers, body, status=status)
    assert r.json["code"] == 1 and r.json["message"].startswith(reason + ":"), r.json
    assert snapshot(dbsession) == before
    return r


def test_a_forged_signature_is_refused_and_changes_nothing(app, testapp, dbsession, pending):
    headers, body = signed(app, pending)
    forged = body.replace(b'"30.00"', b'"0.01"')
    _refused(testapp, dbsession, headers, forged, "bad_signature")
    _refused(testapp, dbsession, {**headers, "X-Sandbox-Signature": "0" * 64}, body, "bad_signature")
    unsigned = {k: v for k, v in headers.items() if k != "X-Sandbox-Signature"}
    _refused(testapp, dbsession, unsigned, body, "bad_signature")
    assert dbsession.get(Order, pending["id"]).status == "pending"


def test_a_stale_timestamp_is_refused(app, testapp, dbsession, pending):
    headers, body = signed(app, pending, timestamp=int(time.time()) - 301)
    _refused(testapp, dbsession, headers, body, "stale_timestamp")
    headers, body = signed(app, pending, timestamp=int(time.time()) + 400)
    _refused(testapp, dbsession, headers, body, "stale_timestamp")


def test_a_replayed_nonce_is_refused(app, testapp, dbsession, pending):
    headers, body = signed(app, pending, nonce="n-123")
    post_callback(testapp, headers, body, status=200)
    _refused(testapp, dbsession, headers, body, "replayed_nonce")
    # the same nonce with another body (and a valid signature) is a replay too
    headers, body = signed(app, pending, nonce="n-123", transaction_id="other")
    _refused(testapp, dbsession, headers, body, "replayed_nonce")


@pytest.mark.parametrize("fields,reason", [
    ({"amount": Decimal("29.99")}, "wrong_amount"),
    ({"amount": Decimal("300.00")}, "wrong_amount"),
    ({"currency": "USD"}, "wrong_currency"),
    ({"order_no": "20260101000000ffffffffffffffff"}, "unknown_order"),
    ({"merchant_id": "someone-else"}, "wrong_merchant"),
    ({"app_id": "another-app"}, "wrong_app"),
])
def test_a_notification_that_is_not_the_orders_is_refused(app, testapp, dbsession, pending, fields, reason):
    headers, body = signed(app, pending, **fields)
    r = _refused(testapp, dbsession, headers, body, reason)
    assert "secret" not in r.text.lower()
    assert dbsession.get(Order, pending["id"]).status == "pending"


def test_an_unreadable_body_and_an_unknown_platform(app, testapp, dbsession, pending):
    gateway = sandbox(app)
    stamp, nonce = str(int(time.time())), "n-x"
    body = b"not json"
    headers = {"X-Sandbox-Timestamp": stamp, "X-Sandbox-Nonce": nonce,
               "X-Sandbox-Signature": gateway._mac(stamp.encode(), nonce.encode(), body)}
    _refused(testapp, dbsession, headers, body, "malformed")
    r = testapp.post("/api/v1/pay/callback/paypal", b"{}", status=404)
    assert r.json["error"]["code"] == "RESOURCE_NOT_FOUND"
    # WeChat Pay is not configured in this app
    assert testapp.post("/api/v1/pay/callback/wechat", b"{}", status=404).json["error"]["code"] == \
        "RESOURCE_NOT_FOUND"


def test_a_closed_payment_notification_changes_nothing(app, testapp, dbsession, pending):
    headers, body = signed(app, pending, status="closed")
    assert post_callback(testapp, headers, body, status=200).json["code"] == 0
    assert dbsession.get(Order, pending["id"]).status == "pending"


def test_a_late_payment_of_an_expired_order_is_recorded_for_reconciliation(app, testapp, dbsession, pending,
                                                                           clients):
    clients["student"].post_json(f"/api/v1/orders/{pending['id']}/cancel", {}, status=200)
    headers, body = signed(app, pending)
    assert post_callback(testapp, headers, body, status=200).json["code"] == 0  # recorded: stop retrying
    order = dbsession.get(Order, pending["id"])
    assert order.status == "cancelled" and order.paid_at is None
    (finding,) = dbsession.scalars(sa.select(Discrepancy)).all()
    assert (finding.kind, finding.order_no, finding.source, finding.gateway_status) == \
        ("paid_at_gateway_only", pending["order_no"], "notification", "paid")
    report = clients["admin"].get("/api/v1/admin/payments/discrepancies", params={"resolved": "false"}).json
    assert [d["order_no"] for d in report["results"]] == [pending["order_no"]]


def test_a_second_payment_through_another_transaction_is_recorded(app, testapp, dbsession, pending):
    post_callback(testapp, *signed(app, pending, transaction_id="T-1"), status=200)
    post_callback(testapp, *signed(app, pending, transaction_id="T-2"), status=200)
    order = dbsession.get(Order, pending["id"])
    assert order.transaction_id == "T-1"
    (finding,) = dbsession.scalars(sa.select(Discrepancy)).all()
    assert finding.transaction_id == "T-2" and finding.kind == "paid_at_gateway_only"


def test_success_is_answered_only_after_the_commit(app, testapp, dbsession, pending, monkeypatch):
    """A commit that fails after the view returned is answered with the
    platform's failure form, and the order stays pending."""
    from learnsail_payments import callbacks

    class Refuses:
        def abort(self, txn): pass
        def tpc_begin(self, txn): pass
        def commit(self, txn): pass
        def tpc_vote(self, txn): raise RuntimeError("the disk is full")
        def tpc_finish(self, txn): pass
        def tpc_abort(self, txn): pass
        def sortKey(self): return "~refuses"

    real = callbacks.handle_notification

    def handle_then_break_the_commit(session, *args, **kwargs):
        outcome = real(session, *args, **kwargs)
        session.info["learnsail.tm"].get().join(Refuses())
        return outcome

    monkeypatch.setattr(callbacks, "handle_notification", handle_then_break_the_commit)
    headers, body = signed(app, pending)
    r = post_callback(testapp, headers, body, status=500)
    assert r.json == {"code": 1, "message": "server_error: the notification could not be saved; retry"}
    dbsession.expire_all()
    assert dbsession.get(Order, pending["id"]).status == "pending"
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(NotificationNonce)) == 0


def test_a_failing_fulfilment_answers_failure_and_keeps_the_order_pending(app, testapp, dbsession, clients,
                                                                          gadgets):
    gadget = gadgets.add("12.00")
    order = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadget},
                                         status=201).json
    gadgets.fail_on_paid = True
    before = snapshot(dbsession)
    r = post_callback(testapp, *signed(app, order), status=500)
    assert r.json["code"] == 1
    assert snapshot(dbsession) == before
    gadgets.fail_on_paid = False
    post_callback(testapp, *signed(app, order), status=200)
    assert dbsession.get(Order, order["id"]).status == "paid" and gadgets.paid == [(order["order_no"],
                                                                                   order["user_id"])]
