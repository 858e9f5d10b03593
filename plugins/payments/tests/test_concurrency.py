"""What must hold whatever the concurrency, on an app whose requests
really commit: 50 racing duplicates of one payment notification make one
paid transition and one fulfilment; 50 racing orders with one single-use
coupon use it once.  On MariaDB (``LEARNSAIL_TEST_DB=mariadb``) with 50
threads and row locks; on SQLite, which serialises writers, with 4 --
there a request whose snapshot another writer outdated is replayed
(SQLITE_BUSY), so the app may replay a request more often than the
default 3 times (``retry.attempts``)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from payments_test_helpers import Gadgets, call, call_json, committing_app, quick_users, race, window
from learnsail.testing.identity import bearer
from learnsail_payments.gateways import gateways_of
from learnsail_payments.models import Coupon, Order, OrderEvent, UserCoupon


@pytest.fixture(scope="module")
def live(tmp_path_factory, _database_maker, learnsail_db_backend):
    threads = 50 if learnsail_db_backend == "mariadb" else 4
    extra = {} if learnsail_db_backend == "mariadb" else {"retry.attempts": 30}
    app = committing_app(_database_maker(), str(tmp_path_factory.mktemp("live")), **extra)
    gadgets = Gadgets()
    app.registry["learnsail.pm"].register(gadgets, name="gadgets-live")
    admin, = quick_users(app.registry, 1, "live_admin")
    with Session(app.registry["learnsail.db_engine"]) as session:
        from learnsail.identity.services import ensure_default_roles

        session.get(type(admin), admin.id).role = ensure_default_roles(session)["admin"]
        session.commit()
    yield app, gadgets, threads
    app.registry["learnsail.db_engine"].dispose()


def _count(app, stmt):
    with Session(app.registry["learnsail.db_engine"]) as session:
        return session.scalar(stmt)


def test_racing_duplicate_notifications_pay_once(live):
    app, gadgets, threads = live
    settings = app.registry.settings
    (buyer,) = quick_users(app.registry, 1, "dup_buyer")
    gadget = gadgets.add("66.00")
    r = call_json(app, "POST", "/api/v1/orders", {"product_type": "gadget", "product_id": gadget},
                  bearer(settings, buyer))
    assert r.status_int == 201, r.text
    order = r.json
    sandbox = gateways_of(app.registry)["sandbox"]
    signed = [sandbox.sign_notification(order_no=order["order_no"], status="paid",
                                        amount=sa.Numeric().python_type("66.00"), transaction_id="SBX-RACE")
              for _ in range(threads)]

    answers = race(threads, lambda i: call(app, "POST", "/api/v1/pay/callback/sandbox", body=signed[i][1],
                                           headers=signed[i][0]))
    assert all(not isinstance(a, BaseException) for a in answers), answers
    assert [a.status_int for a in answers] == [200] * threads, [a.text for a in answers if a.status_int != 200]
    assert all(json.loads(a.body) == {"code": 0, "message": "success"} for a in answers)
    assert _count(app, sa.select(sa.func.count()).select_from(OrderEvent).where(
        OrderEvent.order_id == order["id"], OrderEvent.to_status == "paid")) == 1
    assert _count(app, sa.select(Order.status).where(Order.id == order["id"])) == "paid"
    assert gadgets.paid.count((order["order_no"], buyer.id)) == 1


def test_racing_orders_use_a_single_use_coupon_once(live):
    app, gadgets, threads = live
    settings = app.registry.settings
    buyers = quick_users(app.registry, threads, "coupon_buyer")
    with Session(app.registry["learnsail.db_engine"]) as session:
        import datetime as dt
        from decimal import Decimal

        span = window()
        coupon = Coupon(code="ONLYONE", name="Only one", type="fixed", discount_amount=Decimal("5.00"),
                        start_time=dt.datetime.fromisoformat(span["start_time"]),
                        end_time=dt.datetime.fromisoformat(span["end_time"]), total_quantity=1, per_user_limit=1,
                        is_public=True, claimed_count=0, used_count=0)
        session.add(coupon)
        session.commit()
        coupon_id = coupon.id
    gadget = gadgets.add("20.00")

    def order(i):
        return call_json(app, "POST", "/api/v1/orders",
                         {"product_type": "gadget", "product_id": gadget, "coupon_id": coupon_id},
                         bearer(settings, buyers[i]))

    answers = race(threads, order)
    assert all(not isinstance(a, BaseException) for a in answers), answers
    statuses = sorted(a.status_int for a in answers)
    assert statuses == [201] + [409] * (threads - 1), [a.text for a in answers if a.status_int not in (201, 409)]
    assert _count(app, sa.select(sa.func.count()).select_from(UserCoupon)
                  .where(UserCoupon.coupon_id == coupon_id)) == 1
    assert _count(app, sa.select(sa.func.count()).select_from(Order).where(Order.coupon_id == coupon_id)) == 1
    assert _count(app, sa.select(Coupon.claimed_count).where(Coupon.id == coupon_id)) == 1


def test_one_buyer_racing_one_copy_over_many_products(live):
    app, gadgets, threads = live
    settings = app.registry.settings
    (buyer,) = quick_users(app.registry, 1, "copy_buyer")
    admin_headers = None
    with Session(app.registry["learnsail.db_engine"]) as session:
        import datetime as dt
        from decimal import Decimal

        span = window()
        coupon = Coupon(code="MINE1", name="Mine", type="fixed", discount_amount=Decimal("1.00"),
                        start_time=dt.datetime.fromisoformat(span["start_time"]),
                        end_time=dt.datetime.fromisoformat(span["end_time"]), per_user_limit=1, is_public=False,
                        claimed_count=1, used_count=0)
        session.add(coupon)
        session.flush()
        session.add(UserCoupon(coupon_id=coupon.id, user_id=buyer.id, seq=1, status="available"))
        session.commit()
        coupon_id = coupon.id
    products = [gadgets.add("9.00") for _ in range(threads)]
    assert admin_headers is None
    answers = race(threads, lambda i: call_json(
        app, "POST", "/api/v1/orders", {"product_type": "gadget", "product_id": products[i], "coupon_id": coupon_id},
        bearer(settings, buyer)))
    assert sorted(a.status_int for a in answers) == [201] + [409] * (threads - 1)
    assert _count(app, sa.select(sa.func.count()).select_from(Order).where(Order.coupon_id == coupon_id)) == 1
    assert _count(app, sa.select(UserCoupon.status).where(UserCoupon.coupon_id == coupon_id)) == "reserved"
