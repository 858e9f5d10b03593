"""Payments and courses together, through the API only: a student buys a
paid course with a coupon and is enrolled, sees the order in their
history; an administrator refunds it and the enrolment ends.  The same
flow through the sandbox (as ``make run`` offers it), through WeChat Pay
and Alipay callbacks signed as those platforms sign them (the test kit's
loopback fakes: run with ``LEARNSAIL_TEST_DB=mariadb`` it is on MariaDB),
on the demo data, and with 50 racing duplicate notifications (one
enrolment) on an app whose requests really commit."""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.parse
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

pytest.importorskip("learnsail_payments")
pytest.importorskip("learnsail_courses")

from learnsail.testing.identity import bearer  # noqa: E402
from learnsail_courses.models import Enrolment  # noqa: E402
from learnsail_payments.gateways import REGISTRY_KEY  # noqa: E402
from learnsail_payments.models import Order, OrderEvent  # noqa: E402


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    return "courses,payments"


def published_paid_course(clients, price="199.00", title="深度学习实战"):
    teacher, admin = clients["teacher"], clients["admin"]
    course = teacher.post_json("/api/v1/courses", {"title": title, "price": price}, status=201).json
    chapter = teacher.post_json(f"/api/v1/courses/{course['id']}/chapters", {"title": "第一章"}, status=201).json
    teacher.post_json(f"/api/v1/chapters/{chapter['id']}/lessons", {"title": "导论", "duration": 600}, status=201)
    teacher.put_json(f"/api/v1/courses/{course['id']}", {"status": "reviewing"}, status=200)
    admin.put_json(f"/api/v1/courses/{course['id']}/review", {"status": "published"}, status=200)
    return course


def course_coupon(admin, **terms):
    now = dt.datetime.now(dt.timezone.utc)
    body = {"name": "课程立减", "type": "threshold", "discount_amount": "50.00", "min_order_amount": "100.00",
            "is_public": True, "scope": "product_type", "product_type": "course",
            "start_time": (now - dt.timedelta(days=1)).isoformat(), "end_time": (now + dt.timedelta(days=30)).isoformat(),
            **terms}
    return admin.post_json("/api/v1/admin/coupons", body, status=201).json


def path_of(url):
    parts = urllib.parse.urlsplit(url)
    return parts.path + "?" + parts.query


def is_enrolled(client, course_id):
    return client.get(f"/api/v1/courses/{course_id}").json["is_enrolled"]


def test_a_student_buys_a_course_with_a_coupon_and_an_admin_refunds_it(clients, dbsession, users):
    student, admin = clients["student"], clients["admin"]
    course = published_paid_course(clients)
    coupon = course_coupon(admin, code="COURSE50")
    # 000: the coupons valid for this course
    offered = student.get("/api/v1/coupons", params={"course_id": course["id"]}).json
    assert [(c["code"], c["is_valid"], c["discount_amount"]) for c in offered] == [("COURSE50", True, 50.0)]
    # enrolling directly needs payment
    student.post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=402)

    order = student.post_json("/api/v1/orders", {"course_id": course["id"], "coupon_id": coupon["id"]},
                              status=201).json
    assert {k: order[k] for k in ("user_id", "course_id", "course_title", "original_price", "discount_price",
                                  "status")} == {
        "user_id": users.student.id, "course_id": course["id"], "course_title": "深度学习实战",
        "original_price": 199.0, "discount_price": 149.0, "status": "pending"}
    assert order["order_no"] and order["created_at"] and order["expired_at"]

    pay = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=200).json
    assert pay["pay_params"]["amount"] == "149.00"
    assert student.post_json(path_of(pay["pay_params"]["confirm_url"]), {}, status=200).json["status"] == "paid"
    assert is_enrolled(student, course["id"]) is True
    enrolment = dbsession.scalar(sa.select(Enrolment).where(Enrolment.user_id == users.student.id,
                                                            Enrolment.course_id == course["id"]))
    assert (enrolment.kind, enrolment.order_no, enrolment.price_paid) == ("paid", order["order_no"], Decimal("149.00"))

    detail = student.get(f"/api/v1/orders/{order['id']}").json
    assert detail["course"]["id"] == course["id"] and detail["coupon"]["code"] == "COURSE50"
    assert detail["status"] == "paid" and detail["paid_at"]
    history = student.get("/api/v1/users/orders").json["results"]
    assert [(o["course_title"], o["price"], o["status"]) for o in history] == [("深度学习实战", 149.0, "paid")]
    # ordering it again: already enrolled
    r = student.post_json("/api/v1/orders", {"course_id": course["id"]}, status=409)
    assert "already enrolled" in r.json["error"]["message"]

    refund = admin.post_json(f"/api/v1/admin/orders/{order['id']}/refund", {"reason": "课程不适合"},
                             status=201).json
    assert refund["status"] == "succeeded" and refund["amount"] == 149.0
    assert is_enrolled(student, course["id"]) is False
    assert student.get(f"/api/v1/orders/{order['id']}").json["status"] == "refunded"
    # and they may buy it again
    student.post_json("/api/v1/orders", {"course_id": course["id"]}, status=201)


def test_a_partial_refund_keeps_the_enrolment(clients, users):
    student, admin = clients["student"], clients["admin"]
    course = published_paid_course(clients, price="80.00", title="Partial")
    order = student.post_json("/api/v1/orders", {"course_id": course["id"]}, status=201).json
    pay = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=200).json
    student.post_json(path_of(pay["pay_params"]["confirm_url"]), {}, status=200)
    refund = student.post_json(f"/api/v1/orders/{order['id']}/refund", {"reason": "one lesson broken",
                                                                        "amount": "20.00"}, status=201).json
    admin.post_json(f"/api/v1/admin/refunds/{refund['id']}/approve", {}, status=200)
    assert student.get(f"/api/v1/orders/{order['id']}").json["status"] == "partially_refunded"
    assert is_enrolled(student, course["id"]) is True


def test_the_demo_course_is_bought_with_the_demo_coupon(app, dbsession, testapp):
    from learnsail.app import call_in_order
    from learnsail.identity.models import User
    from learnsail_courses.models import Course

    plugin_set = app.registry["learnsail.plugins"]
    call_in_order(app.registry["learnsail.pm"], "learnsail_demo_data", plugin_set.order, session=dbsession,
                  settings=app.registry.settings)
    dbsession.commit()
    student = dbsession.scalar(sa.select(User).where(User.username == "demo_student"))
    headers = bearer(app.registry.settings, student)
    course = dbsession.scalar(sa.select(Course).where(Course.price > 0))
    coupons = testapp.get("/api/v1/coupons", {"course_id": course.id}, headers=headers).json
    (demo,) = [c for c in coupons if c["code"] == "DEMO50"]
    assert demo["is_valid"] is True
    order = testapp.post_json("/api/v1/orders", {"course_id": course.id, "coupon_id": demo["id"]},
                              headers=headers, status=201).json
    assert (order["original_price"], order["discount_price"]) == (199.0, 149.0)
    pay = testapp.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, headers=headers).json
    testapp.post_json(path_of(pay["pay_params"]["confirm_url"]), {}, headers=headers, status=200)
    assert testapp.get(f"/api/v1/courses/{course.id}", headers=headers).json["is_enrolled"] is True
    plans = testapp.get("/api/v1/membership/plans").json
    assert [p["name"] for p in plans] == ["月度会员", "年度会员"]


# --- the real platforms' callbacks, signed as they sign them -------------------------

@pytest.fixture
def wechat(app, monkeypatch):
    from learnsail_payments.testing import FakeWeChatPay, WeChatKit

    with FakeWeChatPay(WeChatKit.create(), refund_status="PROCESSING") as fake:
        monkeypatch.setitem(app.registry[REGISTRY_KEY], "wechat", fake.gateway())
        yield fake


@pytest.fixture
def alipay(app, monkeypatch):
    from learnsail_payments.testing import AlipayKit, FakeAlipay

    with FakeAlipay(AlipayKit.create()) as fake:
        monkeypatch.setitem(app.registry[REGISTRY_KEY], "alipay", fake.gateway())
        yield fake


def test_a_course_bought_through_wechat_pay(clients, testapp, wechat, dbsession):
    student, admin = clients["student"], clients["admin"]
    course = published_paid_course(clients, price="99.00", title="WeChat course")
    order = student.post_json("/api/v1/orders", {"course_id": course["id"]}, status=201).json
    pay = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "wechat", "scene": "native"},
                            status=200).json
    assert pay["pay_params"]["code_url"].startswith("weixin://")
    assert wechat.notify_url(order["order_no"]).endswith("/api/v1/pay/callback/wechat")
    headers, body = wechat.pay(order["order_no"])
    # tampered: refused, with WeChat's failure form, nothing changes
    r = testapp.post("/api/v1/pay/callback/wechat", body.replace(b'"ciphertext":"', b'"ciphertext":"A'),
                     headers=headers, status=500)
    assert r.json["code"] == "FAIL" and r.json["message"].startswith("bad_signature")
    assert dbsession.get(Order, order["id"]).status == "pending"
    r = testapp.post("/api/v1/pay/callback/wechat", body, headers=headers, status=200)
    assert r.json["code"] == "SUCCESS"
    assert is_enrolled(student, course["id"]) is True
    # the same notification again: a replayed nonce
    r = testapp.post("/api/v1/pay/callback/wechat", body, headers=headers, status=500)
    assert r.json["message"].startswith("replayed_nonce")
    # WeChat refunds asynchronously: the refund completes with its notification
    refund = admin.post_json(f"/api/v1/admin/orders/{order['id']}/refund", {"reason": "duplicate purchase"},
                             status=201).json
    assert refund["status"] == "processing" and is_enrolled(student, course["id"]) is True
    wechat.refunds[refund["refund_no"]]["status"] = "SUCCESS"
    headers, body = wechat.refund_notification(refund["refund_no"])
    assert testapp.post("/api/v1/pay/callback/wechat", body, headers=headers, status=200).json["code"] == "SUCCESS"
    assert is_enrolled(student, course["id"]) is False
    assert student.get(f"/api/v1/orders/{order['id']}").json["status"] == "refunded"


def test_a_course_bought_through_alipay(clients, testapp, alipay, dbsession):
    student, admin = clients["student"], clients["admin"]
    course = published_paid_course(clients, price="120.50", title="Alipay course")
    coupon = course_coupon(admin, code="ALI50")
    order = student.post_json("/api/v1/orders", {"course_id": course["id"], "coupon_id": coupon["id"]},
                              status=201).json
    pay = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "alipay"}, status=200).json
    alipay.accept(pay["pay_params"])
    body = alipay.pay(order["order_no"])
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    forged = body.replace(b"total_amount=70.50", b"total_amount=0.01")
    assert forged != body
    assert testapp.post("/api/v1/pay/callback/alipay", forged, headers=form, status=200).body == b"fail"
    assert dbsession.get(Order, order["id"]).status == "pending"
    assert testapp.post("/api/v1/pay/callback/alipay", body, headers=form, status=200).body == b"success"
    assert is_enrolled(student, course["id"]) is True
    # Alipay resends a notification unchanged (same notify_id) until it hears
    # "success": a resend of the applied one is acknowledged, changing nothing
    events = dbsession.scalar(sa.select(sa.func.count()).select_from(OrderEvent)
                              .where(OrderEvent.order_id == order["id"]))
    assert testapp.post("/api/v1/pay/callback/alipay", body, headers=form, status=200).body == b"success"
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(OrderEvent)
                            .where(OrderEvent.order_id == order["id"])) == events
    assert student.get(f"/api/v1/orders/{order['id']}").json["platform"] == "alipay"
    refund = admin.post_json(f"/api/v1/admin/orders/{order['id']}/refund", {}, status=201).json
    assert refund["status"] == "succeeded" and is_enrolled(student, course["id"]) is False
    # Alipay's own refund notification afterwards is a duplicate: success, nothing changes
    note = alipay.refund_notification(order["order_no"], refund["refund_no"])
    assert testapp.post("/api/v1/pay/callback/alipay", note, headers=form, status=200).body == b"success"
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(OrderEvent)
                            .where(OrderEvent.order_id == order["id"], OrderEvent.to_status == "refunded")) == 1


# --- racing duplicates, with real commits -------------------------------------------------

def test_racing_duplicate_notifications_enrol_once(tmp_path, _database_maker, learnsail_db_backend):
    from webob import Request

    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app
    from learnsail.identity.services import create_user
    from learnsail.testing import isolated_environ
    from learnsail_courses.demo import load
    from learnsail_courses.models import Course

    threads = 50 if learnsail_db_backend == "mariadb" else 4
    config = configure({"learnsail.data_dir": str(tmp_path), "learnsail.database_url": _database_maker(),
                        "learnsail.plugins": "courses,payments", "learnsail.log_level": "CRITICAL",
                        "learnsail.secret": "race-secret-race-secret-race-secret-race!",
                        **({} if learnsail_db_backend == "mariadb" else {"retry.attempts": 30})},
                       environ=isolated_environ())
    registry = config.registry
    migrations.upgrade(registry.settings, registry["learnsail.plugins"])
    app = make_wsgi_app(config)
    engine = registry["learnsail.db_engine"]
    try:
        with Session(engine, expire_on_commit=False) as session:
            session.info["learnsail.registry"] = registry
            load(session)
            buyer = create_user(session, username="racer", password="correct horse battery", role="student")
            session.commit()
            course_id = session.scalar(sa.select(Course.id).where(Course.price > 0))
            buyer.role.name
        headers = {**bearer(registry.settings, buyer), "Content-Type": "application/json"}
        made = Request.blank("/api/v1/orders", method="POST", headers=headers,
                             body=json.dumps({"course_id": course_id}).encode()).get_response(app)
        assert made.status_int == 201, made.text
        order = made.json
        sandbox = registry[REGISTRY_KEY]["sandbox"]
        signed = [sandbox.sign_notification(order_no=order["order_no"], status="paid", amount=Decimal("199.00"),
                                            transaction_id="SBX-RACE-COURSE") for _ in range(threads)]
        barrier, answers = threading.Barrier(threads), [None] * threads

        def post(i):
            barrier.wait()
            answers[i] = Request.blank("/api/v1/pay/callback/sandbox", method="POST", headers=signed[i][0],
                                       body=signed[i][1]).get_response(app)

        workers = [threading.Thread(target=post, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert [a.status_int for a in answers] == [200] * threads, [a.text for a in answers if a.status_int != 200]
        with Session(engine) as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(Enrolment).where(
                Enrolment.user_id == buyer.id, Enrolment.course_id == course_id)) == 1
            assert session.scalar(sa.select(sa.func.count()).select_from(OrderEvent).where(
                OrderEvent.order_id == order["id"], OrderEvent.to_status == "paid")) == 1
            assert session.scalar(sa.select(Course.student_count).where(Course.id == course_id)) == 1
    finally:
        engine.dispose()


def test_a_lost_wechat_notification_is_cured_by_reconciliation(clients, wechat, dbsession, app):
    """Paid at WeChat Pay, the notification never arrived: reconciliation
    asks the platform (a signed query, verified answer) and enrols."""
    from learnsail_payments.models import PaymentAttempt

    student = clients["student"]
    course = published_paid_course(clients, price="59.00", title="Reconciled course")
    order = student.post_json("/api/v1/orders", {"course_id": course["id"]}, status=201).json
    student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "wechat", "scene": "native"}, status=200)
    wechat.pay(order["order_no"])  # the buyer paid; the notification is lost
    dbsession.execute(sa.update(PaymentAttempt).where(PaymentAttempt.order_id == order["id"]).values(
        last_started_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)))
    summary = clients["admin"].post_json("/api/v1/admin/payments/reconcile", {}, status=200).json
    assert summary["settled"] == 1
    assert is_enrolled(student, course["id"]) is True
    assert student.get(f"/api/v1/orders/{order['id']}").json["platform"] == "wechat"


def test_a_bought_course_left_is_taken_up_again_without_paying_twice(clients, users, dbsession):
    """Leaving a bought course ended the paid enrolment for good: enrolling
    again answered 402 and the course could be bought (and paid) a second
    time.  Enrolling again now restores what was bought; after a full
    refund it does not."""
    student, admin = clients["student"], clients["admin"]
    course = published_paid_course(clients, price="60.00", title="Bought once")
    order = student.post_json("/api/v1/orders", {"course_id": course["id"]}, status=201).json
    pay = student.post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=200).json
    student.post_json(path_of(pay["pay_params"]["confirm_url"]), {}, status=200)
    student.delete(f"/api/v1/courses/{course['id']}/enroll", status=204)
    assert is_enrolled(student, course["id"]) is False
    again = student.post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201).json
    assert (again["kind"], again["status"]) == ("paid", "active")
    assert is_enrolled(student, course["id"]) is True
    row = dbsession.scalar(sa.select(Enrolment).where(Enrolment.user_id == users.student.id,
                                                      Enrolment.course_id == course["id"]))
    assert (row.order_no, row.price_paid) == (order["order_no"], Decimal("60.00"))
    r = student.post_json("/api/v1/orders", {"course_id": course["id"]}, status=409)
    assert "already enrolled" in r.json["error"]["message"]
    # refunded in full (after leaving once more), it is gone: buying it is the way back
    student.delete(f"/api/v1/courses/{course['id']}/enroll", status=204)
    admin.post_json(f"/api/v1/admin/orders/{order['id']}/refund", {}, status=201)
    student.post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=402)
    student.post_json("/api/v1/orders", {"course_id": course["id"]}, status=201)
