"""Who may call what: every route's matrix (one request per actor)."""

from __future__ import annotations

import pytest

from payments_test_helpers import make_coupon, make_plan, order_plan, pay_sandbox
from learnsail.testing.authz import ADMIN_ONLY, SIGNED_IN, check_matrix

#: a student's order: the buyer and admins see it, others get 404
BUYER_OR_ADMIN = {"anonymous": 401, "other_student": 404, "teacher": 404, "other_teacher": 404, "admin": 200,
                  "student": 200}


@pytest.mark.parametrize("method,url,body", [
    ("GET", "/api/v1/admin/orders", None),
    ("GET", "/api/v1/admin/refunds", None),
    ("GET", "/api/v1/admin/coupons", None),
    ("GET", "/api/v1/admin/payments/stats", None),
    ("GET", "/api/v1/admin/payments/discrepancies", None),
    ("POST", "/api/v1/admin/payments/reconcile", {}),
])
def test_administration_is_for_admins(testapp, actor_headers, method, url, body):
    check_matrix(testapp, actor_headers, method, url, ADMIN_ONLY, json=body)


def test_creating_coupons_and_plans_is_for_admins(testapp, actor_headers):
    from payments_test_helpers import window

    check_matrix(testapp, actor_headers, "POST", "/api/v1/admin/coupons", {**ADMIN_ONLY, "admin": 201},
                 json={"name": "c", "type": "fixed", "discount_amount": "1.00", **window()})
    check_matrix(testapp, actor_headers, "POST", "/api/v1/admin/membership/plans", {**ADMIN_ONLY, "admin": 201},
                 json={"name": "p", "duration_days": 3, "price": "3.00"})


def test_reading_an_order_and_its_log(testapp, actor_headers, clients):
    order = order_plan(clients["student"], make_plan(clients["admin"])["id"])
    check_matrix(testapp, actor_headers, "GET", f"/api/v1/orders/{order['id']}", BUYER_OR_ADMIN)
    check_matrix(testapp, actor_headers, "GET", f"/api/v1/orders/{order['id']}/events", BUYER_OR_ADMIN)


def test_reviewing_refunds_is_for_admins(testapp, actor_headers, clients):
    order = order_plan(clients["student"], make_plan(clients["admin"])["id"])
    pay_sandbox(clients["student"], order["id"])
    refund = clients["student"].post_json(f"/api/v1/orders/{order['id']}/refund", {"reason": "x"}, status=201).json
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/admin/refunds/{refund['id']}/reject", ADMIN_ONLY,
                 json={"note": "no"})


def test_the_buyers_own_routes(testapp, actor_headers, clients):
    check_matrix(testapp, actor_headers, "GET", "/api/v1/users/orders", SIGNED_IN)
    check_matrix(testapp, actor_headers, "GET", "/api/v1/users/membership", SIGNED_IN)
    check_matrix(testapp, actor_headers, "GET", "/api/v1/coupons", SIGNED_IN)
    check_matrix(testapp, actor_headers, "GET", "/api/v1/membership/plans", {**SIGNED_IN, "anonymous": 200})
    coupon = make_coupon(clients["admin"])
    order = order_plan(clients["student"], make_plan(clients["admin"])["id"])
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/coupons/{coupon['id']}/use",
                 {"anonymous": 401, "other_student": 404, "teacher": 404, "other_teacher": 404, "admin": 403,
                  "student": 200}, json={"order_id": order["id"]})


# --- the routes of one order, and the administrators' items --------------------------------

#: only the buyer acts on an order: administrators get 403, everyone else 404
BUYER_ONLY = {"anonymous": 401, "other_student": 404, "teacher": 404, "other_teacher": 404, "admin": 403}


def test_only_the_buyer_pays_confirms_and_asks_a_refund(testapp, actor_headers, clients, app):
    from payments_test_helpers import _path

    plan = make_plan(clients["admin"])
    order = order_plan(clients["student"], plan["id"])
    responses = check_matrix(testapp, actor_headers, "POST", f"/api/v1/orders/{order['id']}/pay",
                             {**BUYER_ONLY, "student": 200}, json={"platform": "sandbox"})
    confirm = _path(responses["student"].json["pay_params"]["confirm_url"])
    check_matrix(testapp, actor_headers, "POST", confirm,
                 {"anonymous": 401, "other_student": 404, "teacher": 404, "other_teacher": 404, "admin": 403,
                  "student": 200}, json={})
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/orders/{order['id']}/refund",
                 {**BUYER_ONLY, "student": 201}, json={"reason": "changed my mind"})


def test_cancelling_is_the_buyers_or_an_order_managers(testapp, actor_headers, clients):
    plan = make_plan(clients["admin"])
    mine = order_plan(clients["student"], plan["id"])
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/orders/{mine['id']}/cancel",
                 {"anonymous": 401, "other_student": 404, "teacher": 404, "other_teacher": 404, "student": 200,
                  "admin": 409}, json={})
    theirs = order_plan(clients["other_student"], plan["id"])
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/orders/{theirs['id']}/cancel",
                 {"anonymous": 401, "student": 404, "teacher": 404, "other_teacher": 404, "admin": 200,
                  "other_student": 409}, json={})


def test_the_administrators_items(testapp, actor_headers, clients, users):
    from payments_test_helpers import make_coupon, post_callback, signed

    admin = clients["admin"]
    coupon = make_coupon(admin, is_public=False)
    url = f"/api/v1/admin/coupons/{coupon['id']}"
    check_matrix(testapp, actor_headers, "GET", url, ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "PUT", url, ADMIN_ONLY, json={"name": "renamed"})
    check_matrix(testapp, actor_headers, "POST", f"{url}/issue", ADMIN_ONLY, json={"user_ids": [users.student.id]})
    check_matrix(testapp, actor_headers, "DELETE", url, {**ADMIN_ONLY, "admin": 204})
    plan = make_plan(admin)
    plan_url = f"/api/v1/admin/membership/plans/{plan['id']}"
    check_matrix(testapp, actor_headers, "PUT", plan_url, ADMIN_ONLY, json={"sort_order": 3})
    order = order_plan(clients["student"], plan["id"])
    pay_sandbox(clients["student"], order["id"])
    check_matrix(testapp, actor_headers, "DELETE", plan_url, {**ADMIN_ONLY, "admin": 409})
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/admin/orders/{order['id']}/refund",
                 {**ADMIN_ONLY, "admin": 201}, json={"amount": "1.00"})
    refund = clients["student"].post_json(f"/api/v1/orders/{order['id']}/refund", {"reason": "x"}, status=201).json
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/admin/refunds/{refund['id']}/approve", ADMIN_ONLY,
                 json={"note": "ok"})
    late = order_plan(clients["student"], plan["id"])
    clients["student"].post_json(f"/api/v1/orders/{late['id']}/cancel", {}, status=200)
    headers, body = signed(testapp.app, late)
    post_callback(testapp, headers, body, status=200)
    finding = admin.get("/api/v1/admin/payments/discrepancies").json["results"][0]
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/admin/payments/discrepancies/{finding['id']}/resolve",
                 ADMIN_ONLY, json={"note": "refunded at the platform"})
