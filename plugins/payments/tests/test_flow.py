"""The plugin end to end through its API: a membership bought with a
coupon through the sandbox, then refunded; the OpenAPI document."""

from __future__ import annotations

import datetime as dt

from payments_test_helpers import make_coupon, make_plan, order_plan, pay_sandbox


def test_buy_a_membership_with_a_coupon_then_refund_it(clients, app):
    admin, student = clients["admin"], clients["student"]
    plan = make_plan(admin, price="30.00", days=30)
    coupon = make_coupon(admin, discount_amount="5.00", code="FIVEOFF")
    assert [c["code"] for c in student.get("/api/v1/coupons").json] == ["FIVEOFF"]

    order = order_plan(student, plan["id"], coupon_id=coupon["id"])
    assert (order["status"], order["original_price"], order["discount_price"]) == ("pending", 30.0, 25.0)
    assert order["coupon"] == {"id": coupon["id"], "code": "FIVEOFF", "discount_amount": 5.0}
    assert order["course_id"] is None and order["product"]["type"] == "membership"

    confirmed = pay_sandbox(student, order["id"])
    assert confirmed == {"order_id": order["id"], "order_no": order["order_no"], "status": "paid", "changed": True}
    detail = student.get(f"/api/v1/orders/{order['id']}").json
    assert detail["status"] == "paid" and detail["platform"] == "sandbox" and detail["paid_at"]
    membership = student.get("/api/v1/users/membership").json
    assert membership["is_member"] is True and membership["days_left"] in (29, 30)
    history = student.get("/api/v1/users/orders").json
    assert [(o["order_no"], o["price"], o["status"]) for o in history["results"]] == \
        [(order["order_no"], 25.0, "paid")]
    # the coupon is spent
    assert student.get("/api/v1/coupons").json == []

    refund = admin.post_json(f"/api/v1/admin/orders/{order['id']}/refund", {"reason": "changed mind"},
                             status=201).json
    assert refund["status"] == "succeeded" and refund["amount"] == 25.0
    detail = student.get(f"/api/v1/orders/{order['id']}").json
    assert detail["status"] == "refunded" and detail["refunded_amount"] == 25.0
    assert student.get("/api/v1/users/membership").json["is_member"] is False
    events = [(e["from_status"], e["to_status"]) for e in student.get(f"/api/v1/orders/{order['id']}/events").json]
    assert events == [(None, "pending"), ("pending", "paid"), ("paid", "refunding"), ("refunding", "refunded")]


def test_openapi_documents_the_payments_endpoints(testapp):
    paths = testapp.get("/api/openapi.json").json["paths"]
    for path, methods in {
        "/api/v1/orders": {"post"}, "/api/v1/orders/{id}": {"get"}, "/api/v1/orders/{id}/pay": {"post"},
        "/api/v1/orders/{id}/cancel": {"post"}, "/api/v1/orders/{id}/events": {"get"},
        "/api/v1/orders/{id}/refund": {"post"}, "/api/v1/users/orders": {"get"},
        "/api/v1/pay/callback/{platform}": {"post"}, "/api/v1/coupons": {"get"},
        "/api/v1/coupons/{id}/use": {"post"}, "/api/v1/admin/coupons": {"get", "post"},
        "/api/v1/admin/coupons/{id}": {"get", "put", "delete"}, "/api/v1/admin/coupons/{id}/issue": {"post"},
        "/api/v1/admin/refunds": {"get"}, "/api/v1/admin/refunds/{id}/approve": {"post"},
        "/api/v1/admin/refunds/{id}/reject": {"post"}, "/api/v1/admin/orders": {"get"},
        "/api/v1/admin/orders/{id}/refund": {"post"}, "/api/v1/membership/plans": {"get"},
        "/api/v1/admin/membership/plans": {"post"}, "/api/v1/admin/membership/plans/{id}": {"put", "delete"},
        "/api/v1/users/membership": {"get"}, "/api/v1/admin/payments/stats": {"get"},
        "/api/v1/admin/payments/discrepancies": {"get"},
        "/api/v1/admin/payments/discrepancies/{id}/resolve": {"post"}, "/api/v1/admin/payments/reconcile": {"post"},
        "/api/v1/pay/sandbox/{order_no}/confirm": {"post"}, "/api/v1/pay/platforms": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
        for method in methods:
            assert paths[path][method]["summary"], (method, path)
    assert {"201", "200", "409"} <= set(paths["/api/v1/orders"]["post"]["responses"])
    assert "409" in paths["/api/v1/coupons/{id}/use"]["post"]["responses"]
    callback = paths["/api/v1/pay/callback/{platform}"]["post"]
    assert callback["security"] == [] and "application/x-www-form-urlencoded" in callback["requestBody"]["content"]
    assert dt  # (imported for symmetry with the other flow tests)
