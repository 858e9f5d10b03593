"""What fuzzing the OpenAPI contract of the payments routes found (as in
tests/test_fuzz_regressions.py): each request here once got a 500, a
response that broke its documented schema, or a document that OpenAPI
tools refused."""

from __future__ import annotations

from numbers import Number


def _bounds(node, where=""):
    """Every ``minimum``/``maximum`` of a JSON document, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, dict):
                yield f"{where}/{key}", value
            else:
                yield from _bounds(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _bounds(value, f"{where}/{i}")


def test_money_bounds_in_the_openapi_document_are_numbers(testapp):
    """A Decimal field's Range (prices, amounts, discounts) was written as
    the string "99999999.00": no JSON Schema number, so schemathesis (and
    any OpenAPI client generator) refused every operation carrying one."""
    document = testapp.get("/api/openapi.json").json
    bounds = dict(_bounds(document))
    amount = [where for where in bounds if "/api/v1/orders/{id}/refund" in where or "Refund" in where]
    assert amount, "the refund amount has a documented range"
    wrong = {where: value for where, value in bounds.items()
             if not isinstance(value, Number) or isinstance(value, bool)}
    assert not wrong, wrong


# --- answers against their documented schemas ---------------------------------------------

def test_every_answer_matches_its_documented_schema(testapp, clients, users, gadgets, dbsession):
    from learnsail.testing.contract import documented_path, mismatches
    from payments_test_helpers import make_coupon, make_plan, pay_sandbox, post_callback, signed

    document = testapp.get("/api/openapi.json").json
    problems: list[str] = []
    student, admin = clients["student"], clients["admin"]

    def go(client, method, url, body=None, status="*"):
        if method in ("post", "put"):
            response = getattr(client, f"{method}_json")(url, body or {}, status=status)
        else:
            response = getattr(client, method)(url, status=status)
        assert response.status_int < 300, (method, url, response.text[:300])
        if response.body:
            problems.extend(mismatches(document, method, documented_path(document, url.split("?")[0]), response))
            return response.json
        return None

    plan = make_plan(admin)
    go(admin, "put", f"/api/v1/admin/membership/plans/{plan['id']}", {"description": "d"})
    go(clients["anonymous"], "get", "/api/v1/membership/plans")
    go(admin, "get", "/api/v1/membership/plans?include_inactive=true")
    coupon = make_coupon(admin, is_public=False, type="percent", discount_percent=10, max_discount="20.00",
                         discount_amount=None)
    go(admin, "get", f"/api/v1/admin/coupons/{coupon['id']}")
    go(admin, "put", f"/api/v1/admin/coupons/{coupon['id']}", {"name": "Ten off"})
    go(admin, "get", "/api/v1/admin/coupons")
    go(admin, "post", f"/api/v1/admin/coupons/{coupon['id']}/issue", {"user_ids": [users.student.id, 999999]})
    gadget = gadgets.add("100.00")
    go(student, "get", "/api/v1/coupons")
    go(student, "get", f"/api/v1/coupons?product_type=gadget&product_id={gadget}")
    order = go(student, "post", "/api/v1/orders", {"product_type": "gadget", "product_id": gadget})
    go(student, "post", f"/api/v1/coupons/{coupon['id']}/use", {"order_id": order["id"]})
    go(student, "get", f"/api/v1/orders/{order['id']}")
    go(student, "get", f"/api/v1/orders/{order['id']}/events")
    go(student, "get", "/api/v1/pay/platforms")
    go(student, "post", f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"})
    pay_sandbox(student, order["id"])
    go(student, "get", "/api/v1/users/orders")
    go(student, "get", "/api/v1/users/membership")
    refund = go(student, "post", f"/api/v1/orders/{order['id']}/refund", {"reason": "r", "amount": "10.00"})
    go(admin, "get", "/api/v1/admin/refunds")
    go(admin, "post", f"/api/v1/admin/refunds/{refund['id']}/reject", {"note": "no"})
    go(admin, "post", f"/api/v1/admin/orders/{order['id']}/refund", {"amount": "5.00"})
    go(admin, "get", "/api/v1/admin/orders")
    go(admin, "get", "/api/v1/admin/payments/stats")
    go(admin, "post", "/api/v1/admin/payments/reconcile")
    cancelled = go(student, "post", "/api/v1/orders", {"product_type": "membership", "product_id": plan["id"]})
    go(student, "post", f"/api/v1/orders/{cancelled['id']}/cancel", {"reason": "changed my mind"})
    headers, body = signed(testapp.app, cancelled)
    post_callback(testapp, headers, body, status=200)  # paid after the cancel: a finding
    findings = go(admin, "get", "/api/v1/admin/payments/discrepancies")
    go(admin, "post", f"/api/v1/admin/payments/discrepancies/{findings['results'][0]['id']}/resolve",
       {"note": "refunded at the platform"})
    # the platform's answers, accepted and refused, are what the callback documents
    other = go(student, "post", "/api/v1/orders", {"product_type": "gadget", "product_id": gadgets.add("3.00")})
    headers, body = signed(testapp.app, other)
    for response in (post_callback(testapp, headers, body, status=200),
                     post_callback(testapp, headers, body, status=400),
                     post_callback(testapp, {}, b"{}", status=400),
                     post_callback(testapp, {}, b"{}", platform="p" * 30, status=400)):
        problems.extend(mismatches(document, "post", "/api/v1/pay/callback/{platform}", response))
    assert not problems, "\n".join(problems)


# --- review findings ----------------------------------------------------------------------

def test_ordering_again_with_a_coupon_after_a_payment_started_changes_nothing(clients, gadgets, dbsession):
    """Ordering the product again answers the pending order; a coupon given
    then was applied even though a payment had started, so the amount the
    buyer was charged no longer matched the order and their payment's
    notification was refused as wrong_amount (paid, never fulfilled)."""
    from payments_test_helpers import make_coupon, snapshot

    student = clients["student"]
    coupon = make_coupon(clients["admin"], discount_amount="20.00")
    body = {"product_type": "gadget", "product_id": gadgets.add("100.00")}
    order = student.post_json("/api/v1/orders", body, status=201).json
    params = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=200).json
    before = snapshot(dbsession)
    r = student.post_json("/api/v1/orders", {**body, "coupon_id": coupon["id"]}, status=409)
    assert r.json["error"]["code"] == "CONFLICT" and "payment has started" in r.json["error"]["message"]
    assert snapshot(dbsession) == before
    assert student.get(f"/api/v1/orders/{order['id']}").json["amount"] == 100.0
    # the payment started at 100.00 still goes through
    from payments_test_helpers import _path

    paid = student.post_json(_path(params["pay_params"]["confirm_url"]), {}, status=200).json
    assert paid["status"] == "paid" and gadgets.paid == [(order["order_no"], order["user_id"])]
    # and the coupon was never touched
    assert student.get(f"/api/v1/coupons").json[0]["available"] == 1


def test_sales_statistics_until_the_first_days_of_year_one(clients):
    """The default period is the 30 days before ``until``: before year 1
    that date does not exist (OverflowError, a 500)."""
    admin = clients["admin"]
    r = admin.get("/api/v1/admin/payments/stats", params={"until": "0001-01-05T00:00:00Z"}, status=200)
    assert r.json["since"].startswith("0001-01-01") and r.json["totals"]["orders"] == 0
    admin.get("/api/v1/admin/payments/stats", params={"until": "0001-01-01T00:00:00Z"}, status=400)
    admin.get("/api/v1/admin/payments/stats", params={"since": "9999-12-01T00:00:00Z",
                                                      "until": "9999-12-31T23:59:59Z"}, status=200)
