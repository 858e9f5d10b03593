"""Coupons: what each type takes off, validity, scope, quantities and
per-user limits, the 000 endpoints, reservation/release/spending, issue
and administration."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from payments_test_helpers import make_coupon, make_plan, order_plan, pay_sandbox, window
from learnsail_payments import coupons
from learnsail_payments.models import Coupon, UserCoupon


def gadget_order(client, gadgets, price, coupon_id=None, status=201):
    body = {"product_type": "gadget", "product_id": gadgets.add(price)}
    if coupon_id is not None:
        body["coupon_id"] = coupon_id
    return client.post_json("/api/v1/orders", body, status=status).json


@pytest.mark.parametrize("terms,price,paid", [
    ({"type": "fixed", "discount_amount": "20.00"}, "100.00", 80.0),
    ({"type": "fixed", "discount_amount": "20.00"}, "15.00", 0.01),          # never below 0.01
    ({"type": "percent", "discount_percent": 15}, "99.99", 84.99),           # 15.00 off, half up
    ({"type": "percent", "discount_percent": 50, "max_discount": "30.00"}, "100.00", 70.0),  # capped
    ({"type": "threshold", "discount_amount": "50.00", "min_order_amount": "100.00"}, "100.00", 50.0),
])
def test_what_a_coupon_takes_off(clients, gadgets, terms, price, paid):
    coupon = make_coupon(clients["admin"], **terms)
    order = gadget_order(clients["student"], gadgets, price, coupon["id"])
    assert order["discount_price"] == paid
    assert order["discount_amount"] == pytest.approx(float(Decimal(price) - Decimal(str(paid))))


def test_discount_arithmetic_is_decimal():
    coupon = Coupon(type="percent", discount_percent=33, max_discount=None, discount_amount=None)
    assert coupons.discount_for(coupon, Decimal("10.00")) == Decimal("3.30")
    assert coupons.discount_for(coupon, Decimal("0.05")) == Decimal("0.02")
    assert isinstance(coupons.discount_for(coupon, Decimal("1.00")), Decimal)


@pytest.mark.parametrize("terms,price,reason", [
    ({"type": "threshold", "discount_amount": "50.00", "min_order_amount": "100.00"}, "99.99", "100.00 or more"),
    ({**window(days_before=-1, days_after=5)}, "10.00", "valid from"),
    ({**window(days_before=10, days_after=-1)}, "10.00", "expired"),
    ({"scope": "product_type", "product_type": "membership"}, "10.00", "does not apply"),
    ({"is_active": False}, "10.00", "no longer offered"),
])
def test_a_coupon_that_cannot_be_used_is_a_409_that_says_why(clients, gadgets, dbsession, terms, price, reason):
    coupon = make_coupon(clients["admin"], **terms)
    r = gadget_order(clients["student"], gadgets, price, coupon["id"], status=409)
    assert reason in r["error"]["message"]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(UserCoupon)) == 0


def test_scope_to_a_type_or_to_products(clients, gadgets):
    admin, student = clients["admin"], clients["student"]
    by_type = make_coupon(admin, scope="product_type", product_type="gadget", discount_amount="1.00")
    assert gadget_order(student, gadgets, "10.00", by_type["id"])["discount_price"] == 9.0
    chosen = gadgets.add("10.00")
    only = make_coupon(admin, scope="products", products=[{"product_type": "gadget", "product_id": chosen}],
                       discount_amount="2.00")
    ok = student.post_json("/api/v1/orders", {"product_type": "gadget", "product_id": chosen,
                                              "coupon_id": only["id"]}, status=201).json
    assert ok["discount_price"] == 8.0
    gadget_order(clients["other_student"], gadgets, "10.00", only["id"], status=409)
    r = admin.post_json("/api/v1/admin/coupons", {"name": "x", "type": "fixed", "discount_amount": "1.00",
                                                  "scope": "products", **window()}, status=400)
    assert "products" in r.json["error"]["details"]


def test_per_user_limit_and_total_quantity(clients, gadgets, users, make_user, auth_headers, testapp):
    coupon = make_coupon(clients["admin"], per_user_limit=2, total_quantity=3, discount_amount="1.00")
    student = clients["student"]
    for _ in range(2):
        order = gadget_order(student, gadgets, "10.00", coupon["id"])
        pay_sandbox(student, order["id"])
    r = gadget_order(student, gadgets, "10.00", coupon["id"], status=409)
    assert "the most allowed" in r["error"]["message"]
    gadget_order(clients["other_student"], gadgets, "10.00", coupon["id"])  # the third copy
    late = make_user("student")
    r = testapp.post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadgets.add("10.00"),
                                             "coupon_id": coupon["id"]}, headers=auth_headers(late), status=409)
    assert "run out" in r.json["error"]["message"]
    detail = clients["admin"].get(f"/api/v1/admin/coupons/{coupon['id']}").json
    assert (detail["claimed_count"], detail["used_count"]) == (3, 2)


def test_a_copy_held_by_a_pending_order_is_not_used_twice(clients, gadgets):
    coupon = make_coupon(clients["admin"], per_user_limit=1, discount_amount="1.00")
    first = gadget_order(clients["student"], gadgets, "10.00", coupon["id"])
    r = gadget_order(clients["student"], gadgets, "10.00", coupon["id"], status=409)
    assert r["error"]["details"]["order_id"] == first["id"]
    # cancelling the first order frees the copy for the next
    clients["student"].post_json(f"/api/v1/orders/{first['id']}/cancel", {}, status=200)
    assert gadget_order(clients["student"], gadgets, "10.00", coupon["id"])["discount_price"] == 9.0


def test_the_000_list_of_my_coupons(clients, gadgets, users):
    admin, student = clients["admin"], clients["student"]
    make_coupon(admin, code="PUB5", discount_amount="5.00", min_order_amount="20.00", type="threshold")
    issued = make_coupon(admin, code="VIP", is_public=False, type="percent", discount_percent=10,
                         max_discount="8.00")
    make_coupon(admin, code="NOTMINE", is_public=False)
    admin.post_json(f"/api/v1/admin/coupons/{issued['id']}/issue", {"user_ids": [users.student.id]}, status=200)
    listed = {c["code"]: c for c in student.get("/api/v1/coupons").json}
    assert set(listed) == {"PUB5", "VIP"}
    pub = listed["PUB5"]
    assert set(pub) >= {"id", "code", "name", "type", "discount_amount", "min_order_amount", "start_time",
                        "end_time", "is_valid"}
    assert (pub["discount_amount"], pub["min_order_amount"], pub["is_valid"]) == (5.0, 20.0, True)
    assert listed["VIP"]["discount_amount"] == 8.0  # a percent coupon shows its cap
    assert [c["code"] for c in clients["other_student"].get("/api/v1/coupons").json] == ["PUB5"]
    # for a product: is_valid and the discount at its price
    cheap = gadgets.add("15.00")
    for_cheap = {c["code"]: c for c in student.get("/api/v1/coupons", params={"product_type": "gadget",
                                                                            "product_id": cheap}).json}
    assert for_cheap["PUB5"]["is_valid"] is False and "20.00 or more" in for_cheap["PUB5"]["reason"]
    assert for_cheap["VIP"]["is_valid"] is True and for_cheap["VIP"]["discount_amount"] == 1.5


def test_the_000_use_endpoint(clients, gadgets, dbsession):
    admin, student = clients["admin"], clients["student"]
    coupon = make_coupon(admin, discount_amount="4.00")
    order = gadget_order(student, gadgets, "10.00")
    r = student.post_json(f"/api/v1/coupons/{coupon['id']}/use", {"order_id": order["id"]}, status=200).json
    assert r == {"message": "Coupon used successfully", "order_id": order["id"], "coupon_id": coupon["id"],
                 "discount_amount": 4.0}
    assert student.get(f"/api/v1/orders/{order['id']}").json["discount_price"] == 6.0
    # again: idempotent; another coupon: 409
    student.post_json(f"/api/v1/coupons/{coupon['id']}/use", {"order_id": order["id"]}, status=200)
    second = make_coupon(admin, discount_amount="1.00")
    assert "already has a coupon" in student.post_json(f"/api/v1/coupons/{second['id']}/use",
                                                       {"order_id": order["id"]}, status=409).json["error"]["message"]
    # someone else's order, an unknown coupon, a coupon not issued to the caller: 404
    clients["other_student"].post_json(f"/api/v1/coupons/{second['id']}/use", {"order_id": order["id"]},
                                       status=404)
    student.post_json("/api/v1/coupons/999999/use", {"order_id": order["id"]}, status=404)
    private = make_coupon(admin, is_public=False)
    other_order = gadget_order(student, gadgets, "10.00")
    student.post_json(f"/api/v1/coupons/{private['id']}/use", {"order_id": other_order["id"]}, status=404)
    # once a payment started, the amount is fixed
    student.post_json(f"/api/v1/orders/{other_order['id']}/pay", {"platform": "sandbox"}, status=200)
    assert "payment has started" in student.post_json(f"/api/v1/coupons/{second['id']}/use",
                                                      {"order_id": other_order["id"]}, status=409).json["error"]["message"]
    # a paid order takes no coupon
    pay_sandbox(student, other_order["id"])
    student.post_json(f"/api/v1/coupons/{second['id']}/use", {"order_id": other_order["id"]}, status=409)


def test_payment_spends_the_reserved_copy(clients, app, dbsession):
    plan = make_plan(clients["admin"], price="30.00")
    coupon = make_coupon(clients["admin"], discount_amount="10.00")
    order = order_plan(clients["student"], plan["id"], coupon_id=coupon["id"])
    pay_sandbox(clients["student"], order["id"])
    copy = dbsession.scalar(sa.select(UserCoupon).where(UserCoupon.coupon_id == coupon["id"]))
    dbsession.refresh(copy)
    assert (copy.status, copy.order_id) == ("used", order["id"]) and copy.used_at is not None
    assert dbsession.get(Coupon, coupon["id"]).used_count == 1


def test_batch_issue(clients, users, dbsession):
    coupon = make_coupon(clients["admin"], is_public=False, total_quantity=2, per_user_limit=1)
    r = clients["admin"].post_json(f"/api/v1/admin/coupons/{coupon['id']}/issue",
                                   {"user_ids": [users.student.id, users.teacher.id, 999_999]}, status=200).json
    assert r["issued"] == [users.student.id, users.teacher.id] and r["skipped"] == {"999999": "No such user."}
    again = clients["admin"].post_json(f"/api/v1/admin/coupons/{coupon['id']}/issue",
                                       {"user_ids": [users.student.id]}, status=200).json
    assert again["issued"] == [] and "per-user limit" in again["skipped"][str(users.student.id)]
    r = clients["admin"].post_json(f"/api/v1/admin/coupons/{coupon['id']}/issue",
                                   {"user_ids": [users.other_student.id]}, status=409)
    assert r.json["error"]["details"]["available"] == 0
    clients["student"].post_json(f"/api/v1/admin/coupons/{coupon['id']}/issue",
                                 {"user_ids": [users.student.id]}, status=403)


def test_coupon_administration(clients):
    admin = clients["admin"]
    coupon = make_coupon(admin, code="SPRING", total_quantity=10)
    assert admin.get("/api/v1/admin/coupons").json["count"] == 1
    r = admin.post_json("/api/v1/admin/coupons", {"code": "spring", "name": "dup", "type": "fixed",
                                                  "discount_amount": "1.00", **window()}, status=409)
    assert "code" in r.json["error"]["details"]
    for bad, field in (({"type": "percent"}, "discount_percent"), ({"type": "fixed"}, "discount_amount"),
                       ({"type": "threshold", "discount_amount": "5.00", "min_order_amount": "5.00"},
                        "min_order_amount"),
                       ({"type": "fixed", "discount_amount": "1.00", **window(days_before=-5, days_after=-6)},
                        "end_time")):
        body = {"name": "bad", **window(), **bad}
        assert field in admin.post_json("/api/v1/admin/coupons", body, status=400).json["error"]["details"], bad
    changed = admin.put_json(f"/api/v1/admin/coupons/{coupon['id']}", {"name": "Spring sale", "total_quantity": 20},
                             status=200).json
    assert (changed["name"], changed["total_quantity"], changed["code"]) == ("Spring sale", 20, "SPRING")
    admin.delete(f"/api/v1/admin/coupons/{coupon['id']}", status=204)
    admin.get(f"/api/v1/admin/coupons/{coupon['id']}", status=404)
    assert admin.get("/api/v1/admin/coupons").json["count"] == 0
    for actor in ("student", "teacher", "anonymous"):
        clients[actor].get("/api/v1/admin/coupons", status=401 if actor == "anonymous" else 403)
        clients[actor].post_json("/api/v1/admin/coupons", {"name": "x"}, status=401 if actor == "anonymous" else 403)


def test_total_quantity_cannot_drop_below_the_copies_out(clients, gadgets):
    coupon = make_coupon(clients["admin"], total_quantity=5)
    gadget_order(clients["student"], gadgets, "10.00", coupon["id"])
    gadget_order(clients["other_student"], gadgets, "10.00", coupon["id"])
    clients["admin"].put_json(f"/api/v1/admin/coupons/{coupon['id']}", {"total_quantity": 1}, status=409)
    assert dt  # noqa: B018
