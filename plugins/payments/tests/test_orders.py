"""Orders: creation priced by the quote hook, reuse of a pending order,
the owner rule, the history list and its query count, cancel, expiry, the
state machine and its log."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from payments_test_helpers import make_coupon, make_plan, order_plan, pay_sandbox
from learnsail.testing import count_queries
from learnsail_payments import states
from learnsail_payments.models import Order, OrderEvent, OrderItem, UserCoupon


def test_an_order_is_priced_by_its_seller(clients, gadgets, dbsession):
    gadget = gadgets.add("88.80")
    r = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadget}, status=201)
    order = r.json
    assert order["status"] == "pending" and order["original_price"] == 88.8 and order["discount_price"] == 88.8
    assert order["title"] == f"Gadget {gadget}" and order["product"]["image_url"].endswith(f"{gadget}.png")
    assert re.fullmatch(r"\d{14}[0-9a-f]{16}", order["order_no"])
    created = dt.datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
    expires = dt.datetime.fromisoformat(order["expired_at"].replace("Z", "+00:00"))
    assert expires - created == dt.timedelta(minutes=30)
    row = dbsession.get(Order, order["id"])
    assert row.amount == Decimal("88.80") and isinstance(row.amount, Decimal)
    (item,) = dbsession.scalars(sa.select(OrderItem).where(OrderItem.order_id == row.id)).all()
    assert (item.product_type, item.product_id, item.unit_price, item.quantity) == ("gadget", gadget,
                                                                                    Decimal("88.80"), 1)
    (event,) = dbsession.scalars(sa.select(OrderEvent).where(OrderEvent.order_id == row.id)).all()
    assert (event.from_status, event.to_status, event.actor_type, event.actor_id) == \
        (None, "pending", "user", order["user_id"])


def test_order_numbers_are_unique_and_unguessable(clients, gadgets):
    numbers = {clients["student"].post_json("/api/v1/orders", {"product_type": "gadget",
                                                               "product_id": gadgets.add("1.00")}).json["order_no"]
               for _ in range(5)}
    assert len(numbers) == 5 and len({n[14:] for n in numbers}) == 5


@pytest.mark.parametrize("body,status,field", [
    ({}, 400, "product_type"),
    ({"product_type": "gadget"}, 400, "product_id"),
    ({"course_id": 1, "product_type": "membership", "product_id": 1}, 400, "course_id"),
    ({"product_type": "ebook", "product_id": 1}, 400, "product_type"),
    ({"product_type": "Not A Type!", "product_id": 1}, 400, "product_type"),
    ({"course_id": 5}, 400, "product_type"),  # nobody sells courses in this app
])
def test_a_bad_order_request_is_refused(clients, body, status, field):
    r = clients["student"].post_json("/api/v1/orders", body, status=status)
    assert field in r.json["error"]["details"]


def test_an_unknown_or_unpurchasable_product(clients, gadgets, dbsession):
    r = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget", "product_id": 999_999},
                                     status=404)
    assert r.json["error"]["code"] == "RESOURCE_NOT_FOUND"
    gadget = gadgets.add("5.00")
    gadgets.refused[gadget] = "You already own this gadget."
    r = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadget}, status=409)
    assert r.json["error"]["message"] == "You already own this gadget."
    free = gadgets.add("0.00")
    clients["student"].post_json("/api/v1/orders", {"product_type": "gadget", "product_id": free}, status=409)
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Order)) == 0


def test_anonymous_callers_cannot_order(testapp):
    assert testapp.post_json("/api/v1/orders", {"product_type": "membership", "product_id": 1},
                             status=401).json["error"]["code"] == "AUTH_FAILED"


def test_a_pending_order_is_reused_for_the_same_product(clients, gadgets, dbsession):
    gadget = gadgets.add("10.00")
    body = {"product_type": "gadget", "product_id": gadget}
    first = clients["student"].post_json("/api/v1/orders", body, status=201).json
    gadgets.prices[gadget] = Decimal("12.00")  # the quoted price holds while the order is pending
    again = clients["student"].post_json("/api/v1/orders", body, status=200).json
    assert again["id"] == first["id"] and again["discount_price"] == 10.0
    # another buyer gets their own
    other = clients["other_student"].post_json("/api/v1/orders", body, status=201).json
    assert other["id"] != first["id"] and other["discount_price"] == 12.0
    # a coupon asked for on the reorder is applied to the pending order
    coupon = make_coupon(clients["admin"], discount_amount="3.00")
    with_coupon = clients["student"].post_json("/api/v1/orders", {**body, "coupon_id": coupon["id"]},
                                               status=200).json
    assert with_coupon["id"] == first["id"] and with_coupon["discount_price"] == 7.0
    other_coupon = make_coupon(clients["admin"], discount_amount="4.00")
    r = clients["student"].post_json("/api/v1/orders", {**body, "coupon_id": other_coupon["id"]}, status=409)
    assert r.json["error"]["details"]["order_id"] == first["id"]
    # once it is cancelled, ordering again makes a new one at today's price
    clients["student"].post_json(f"/api/v1/orders/{first['id']}/cancel", {}, status=200)
    fresh = clients["student"].post_json("/api/v1/orders", body, status=201).json
    assert fresh["id"] != first["id"] and fresh["discount_price"] == 12.0


def test_an_expired_pending_order_is_not_reused(clients, gadgets, dbsession):
    gadget = gadgets.add("10.00")
    body = {"product_type": "gadget", "product_id": gadget}
    first = clients["student"].post_json("/api/v1/orders", body, status=201).json
    dbsession.execute(sa.update(Order).where(Order.id == first["id"])
                      .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    assert clients["student"].get(f"/api/v1/orders/{first['id']}").json["status"] == "expired"
    fresh = clients["student"].post_json("/api/v1/orders", body, status=201).json
    assert fresh["id"] != first["id"]
    dbsession.expire_all()
    assert dbsession.get(Order, first["id"]).status == "expired"


def test_only_the_buyer_and_order_admins_see_an_order(clients, gadgets):
    order = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget",
                                                            "product_id": gadgets.add("3.00")}).json
    url = f"/api/v1/orders/{order['id']}"
    assert clients["student"].get(url).json["id"] == order["id"]
    assert clients["admin"].get(url).json["id"] == order["id"]
    for other in ("other_student", "teacher"):
        assert clients[other].get(url, status=404).json["error"]["code"] == "RESOURCE_NOT_FOUND"
        clients[other].get(url + "/events", status=404)
        clients[other].post_json(url + "/cancel", {}, status=404)
        clients[other].post_json(url + "/pay", {"platform": "sandbox"}, status=404)
        clients[other].post_json(url + "/refund", {"reason": "x"}, status=404)
    assert clients["anonymous"].get(url, status=401).json["error"]["code"] == "AUTH_FAILED"
    assert clients["student"].get("/api/v1/orders/999999", status=404)
    # an administrator sees it but does not pay for the buyer
    clients["admin"].post_json(url + "/pay", {"platform": "sandbox"}, status=403)
    assert [o["id"] for o in clients["other_student"].get("/api/v1/users/orders").json["results"]] == []


def test_the_history_filters_by_status_and_pages(clients, gadgets, dbsession):
    student = clients["student"]
    ids = [student.post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadgets.add("2.00")}).json["id"]
           for _ in range(3)]
    student.post_json(f"/api/v1/orders/{ids[0]}/cancel", {}, status=200)
    pay_sandbox(student, ids[1])
    dbsession.execute(sa.update(Order).where(Order.id == ids[2])
                      .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)))
    page = student.get("/api/v1/users/orders").json
    assert page["count"] == 3 and [o["id"] for o in page["results"]] == ids[::-1]
    assert set(page["results"][0]) >= {"id", "order_no", "course_title", "price", "status", "created_at", "paid_at"}
    for status, expected in (("cancelled", [ids[0]]), ("paid", [ids[1]]), ("expired", [ids[2]]), ("pending", [])):
        assert [o["id"] for o in student.get("/api/v1/users/orders", params={"status": status}).json["results"]] \
            == expected, status
    assert student.get("/api/v1/users/orders", params={"status": "bogus"}, status=400)
    two = student.get("/api/v1/users/orders", params={"page_size": 2}).json
    assert len(two["results"]) == 2 and two["next"] and two["previous"] is None


def test_the_history_issues_a_constant_number_of_queries(app, clients, gadgets, users, auth_headers, testapp):
    headers = auth_headers(users.student)

    def queries():
        app.registry["learnsail.auth_cache"].clear()
        app.registry.get("learnsail.permission_cache", {}).clear()
        with count_queries(app.registry["learnsail.db_engine"]) as statements:
            testapp.get("/api/v1/users/orders", {"page_size": 100}, headers=headers)
        return len(statements)

    clients["student"].post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadgets.add("1.00")})
    one = queries()
    for _ in range(8):
        clients["student"].post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadgets.add("1.00")})
    assert queries() == one


def test_cancel_releases_the_coupon_and_only_pending_orders_cancel(clients, dbsession):
    plan = make_plan(clients["admin"])
    coupon = make_coupon(clients["admin"], discount_amount="5.00")
    order = order_plan(clients["student"], plan["id"], coupon_id=coupon["id"])
    copy = dbsession.scalar(sa.select(UserCoupon).where(UserCoupon.order_id == order["id"]))
    assert copy.status == "reserved"
    cancelled = clients["student"].post_json(f"/api/v1/orders/{order['id']}/cancel", {"reason": "wrong plan"},
                                             status=200).json
    assert cancelled["status"] == "cancelled"
    dbsession.refresh(copy)
    assert (copy.status, copy.order_id) == ("available", None)
    r = clients["student"].post_json(f"/api/v1/orders/{order['id']}/cancel", {}, status=409)
    assert r.json["error"]["details"]["status"] == "cancelled"
    events = clients["student"].get(f"/api/v1/orders/{order['id']}/events").json
    assert events[-1]["reason"] == "wrong plan" and events[-1]["actor_type"] == "user"
    # an order manager may cancel anyone's pending order
    other = order_plan(clients["other_student"], plan["id"])
    clients["admin"].post_json(f"/api/v1/orders/{other['id']}/cancel", {}, status=200)
    assert clients["admin"].get(f"/api/v1/orders/{other['id']}/events").json[-1]["actor_type"] == "admin"


def test_the_expiry_task_expires_unpaid_orders_and_releases_their_coupons(app, clients, dbsession):
    from learnsail.tasks import send_now

    plan = make_plan(clients["admin"])
    coupon = make_coupon(clients["admin"])
    late = order_plan(clients["student"], plan["id"], coupon_id=coupon["id"])
    fresh = order_plan(clients["other_student"], make_plan(clients["admin"])["id"])
    dbsession.execute(sa.update(Order).where(Order.id == late["id"])
                      .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)))
    dbsession.commit()
    send_now(app.registry, "payments.expire_orders")
    dbsession.expire_all()
    assert dbsession.get(Order, late["id"]).status == "expired"
    assert dbsession.get(Order, late["id"]).pending_key is None
    assert dbsession.get(Order, fresh["id"]).status == "pending"
    assert dbsession.scalar(sa.select(UserCoupon.status).where(UserCoupon.coupon_id == coupon["id"])) == "available"
    r = clients["student"].post_json(f"/api/v1/orders/{late['id']}/pay", {"platform": "sandbox"}, status=409)
    assert r.json["error"]["details"]["status"] == "expired"


def test_the_state_machine_refuses_moves_it_does_not_know(dbsession, clients, gadgets):
    order_id = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget",
                                                               "product_id": gadgets.add("1.00")}).json["id"]
    order = dbsession.get(Order, order_id)
    with pytest.raises(states.InvalidTransition):
        states.transition(dbsession, order, "refunded", actor_type=states.SYSTEM)
    with pytest.raises(states.InvalidTransition):
        order.status = "paid"  # only transition() may change it
    states.transition(dbsession, order, "cancelled", actor_type=states.SYSTEM, reason="test")
    assert order.status == "cancelled"
    with pytest.raises(states.InvalidTransition):
        states.transition(dbsession, order, "paid", actor_type=states.SYSTEM)
    dbsession.flush()
    for allowed_from, targets in states.TRANSITIONS.items():
        assert all(states.allowed(allowed_from, t) for t in targets)
    assert not states.allowed("expired", "pending") and not states.allowed("refunded", "paid")


def test_the_event_log_is_immutable(dbsession, clients, gadgets):
    order_id = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget",
                                                               "product_id": gadgets.add("1.00")}).json["id"]
    event = dbsession.scalar(sa.select(OrderEvent).where(OrderEvent.order_id == order_id))
    event.reason = "rewritten"
    with pytest.raises(RuntimeError, match="immutable"):
        dbsession.flush()
    dbsession.rollback()
    event = dbsession.scalar(sa.select(OrderEvent).where(OrderEvent.order_id == order_id))
    dbsession.delete(event)
    with pytest.raises(RuntimeError, match="immutable"):
        dbsession.flush()
    dbsession.rollback()


def test_admins_list_every_order(clients, gadgets):
    mine = clients["student"].post_json("/api/v1/orders", {"product_type": "gadget",
                                                           "product_id": gadgets.add("1.00")}).json
    theirs = clients["other_student"].post_json("/api/v1/orders", {"product_type": "gadget",
                                                                   "product_id": gadgets.add("1.00")}).json
    page = clients["admin"].get("/api/v1/admin/orders").json
    assert {o["id"] for o in page["results"]} == {mine["id"], theirs["id"]}
    only = clients["admin"].get("/api/v1/admin/orders", params={"user_id": mine["user_id"]}).json
    assert [o["id"] for o in only["results"]] == [mine["id"]] and only["results"][0]["user_id"] == mine["user_id"]
    assert clients["admin"].get("/api/v1/admin/orders", params={"order_no": theirs["order_no"]}).json["count"] == 1
    clients["student"].get("/api/v1/admin/orders", status=403)
