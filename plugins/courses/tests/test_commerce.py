"""Courses as products: the quote, the enrolment an order buys and the
refund that ends it (the payments side of these hooks is tested in
plugins/payments and tests/test_payments_with_courses.py), and videos set
on lessons through ``learnsail_lesson_video``."""

from __future__ import annotations

import datetime as dt
import types
from decimal import Decimal

import pytest
import sqlalchemy as sa

from courses_test_helpers import add_chapter, add_lesson, make_course, published_course
from learnsail import hookimpl
from learnsail.errors import ValidationFailed
from learnsail_courses.models import Course, Enrolment, Lesson


def quote(app, dbsession, course_id, user):
    return app.registry["learnsail.pm"].hook.learnsail_product_quote(kind="course", ref_id=course_id, user=user,
                                                                    session=dbsession)


def order(user, course_id, amount="99.00", status="paid", order_no="LS20261201000001"):
    return types.SimpleNamespace(id=1, order_no=order_no, user_id=user.id, product_type="course",
                                 product_id=course_id, title="A course", currency="CNY", amount=Decimal(amount),
                                 paid_at=dt.datetime.now(dt.timezone.utc), status=status,
                                 refunded_amount=Decimal("0"))


def test_quote_prices_a_published_paid_course_and_says_why_not(app, dbsession, clients, users):
    paid, _, _ = published_course(clients["teacher"], clients["admin"], price="199.90")
    answer = quote(app, dbsession, paid["id"], users.student)
    assert answer["price"] == Decimal("199.90") and answer["currency"] == "CNY"
    assert answer["purchasable"] is True and answer["reason"] is None and answer["title"] == paid["title"]
    # other kinds are not ours
    assert app.registry["learnsail.pm"].hook.learnsail_product_quote(
        kind="appointment", ref_id=paid["id"], user=users.student, session=dbsession) is None
    # unknown, draft, free, own course: not purchasable, with the reason
    assert quote(app, dbsession, 10 ** 6, users.student)["found"] is False
    draft = make_course(clients["teacher"], price=50)
    assert "not on sale" in quote(app, dbsession, draft["id"], users.student)["reason"]
    free, _, _ = published_course(clients["teacher"], clients["admin"])
    assert "free" in quote(app, dbsession, free["id"], users.student)["reason"]
    assert "teach" in quote(app, dbsession, paid["id"], users.teacher)["reason"]


def test_order_paid_enrols_once_and_a_full_refund_ends_it(app, dbsession, clients, users):
    paid, _, _ = published_course(clients["teacher"], clients["admin"], price="99.00")
    hook = app.registry["learnsail.pm"].hook
    bought = order(users.student, paid["id"])
    hook.learnsail_order_paid(order=bought, session=dbsession)
    hook.learnsail_order_paid(order=bought, session=dbsession)  # a second delivery changes nothing
    enrolment = dbsession.scalar(sa.select(Enrolment).where(Enrolment.user_id == users.student.id,
                                                            Enrolment.course_id == paid["id"]))
    assert (enrolment.kind, enrolment.status, enrolment.order_no) == ("paid", "active", bought.order_no)
    assert enrolment.price_paid == Decimal("99.00") and enrolment.valid_until is None
    assert dbsession.get(Course, paid["id"]).student_count == 1
    assert "already enrolled" in quote(app, dbsession, paid["id"], users.student)["reason"]
    assert clients["student"].get(f"/api/v1/courses/{paid['id']}").json["is_enrolled"] is True

    # a partial refund keeps the place; the full one ends it
    hook.learnsail_order_refunded(order=order(users.student, paid["id"], status="partially_refunded"),
                                  session=dbsession)
    dbsession.refresh(enrolment)
    assert enrolment.status == "active"
    hook.learnsail_order_refunded(order=order(users.student, paid["id"], status="refunded"), session=dbsession)
    dbsession.refresh(enrolment)
    assert enrolment.status == "ended"
    dbsession.expire_all()
    assert dbsession.get(Course, paid["id"]).student_count == 0
    assert clients["student"].get(f"/api/v1/courses/{paid['id']}").json["is_enrolled"] is False
    assert quote(app, dbsession, paid["id"], users.student)["purchasable"] is True


def test_a_refund_of_another_order_or_product_leaves_the_enrolment(app, dbsession, clients, users):
    paid, _, _ = published_course(clients["teacher"], clients["admin"], price="10.00")
    hook = app.registry["learnsail.pm"].hook
    hook.learnsail_order_paid(order=order(users.student, paid["id"], order_no="LS-A"), session=dbsession)
    hook.learnsail_order_refunded(order=order(users.student, paid["id"], status="refunded", order_no="LS-B"),
                                  session=dbsession)
    other = types.SimpleNamespace(**{**vars(order(users.student, paid["id"], status="refunded", order_no="LS-A")),
                                     "product_type": "membership"})
    hook.learnsail_order_refunded(order=other, session=dbsession)
    enrolment = dbsession.scalar(sa.select(Enrolment).where(Enrolment.user_id == users.student.id,
                                                            Enrolment.course_id == paid["id"]))
    assert enrolment.status == "active"


def test_a_paid_order_upgrades_a_trial_and_survives_an_unpublished_course(app, dbsession, clients, users):
    paid, _, _ = published_course(clients["teacher"], clients["admin"], price="20.00")
    clients["student"].post_json(f"/api/v1/courses/{paid['id']}/enroll", {"enrollment_type": "trial"}, status=201)
    assert quote(app, dbsession, paid["id"], users.student)["purchasable"] is True
    clients["teacher"].put_json(f"/api/v1/courses/{paid['id']}", {"status": "draft"}, status=200)  # unpublished
    app.registry["learnsail.pm"].hook.learnsail_order_paid(order=order(users.student, paid["id"]), session=dbsession)
    enrolment = dbsession.scalar(sa.select(Enrolment).where(Enrolment.user_id == users.student.id,
                                                            Enrolment.course_id == paid["id"]))
    assert (enrolment.kind, enrolment.valid_until) == ("paid", None)


def test_a_video_id_needs_a_plugin_that_owns_videos(clients):
    course = make_course(clients["teacher"])
    chapter = add_chapter(clients["teacher"], course["id"])
    r = clients["teacher"].post_json(f"/api/v1/chapters/{chapter['id']}/lessons", {"title": "L", "video_id": 5},
                                     status=400)
    assert "video_id" in r.json["error"]["details"]
    lesson = add_lesson(clients["teacher"], chapter["id"], duration=60)
    clients["teacher"].put_json(f"/api/v1/lessons/{lesson['id']}", {"video_id": 5}, status=400)
    # detaching nothing is fine
    clients["teacher"].put_json(f"/api/v1/lessons/{lesson['id']}", {"video_id": None}, status=200)


def test_the_video_plugin_checks_the_video_and_sets_the_duration(app, clients, users, dbsession):
    calls = []

    class Videos:
        @hookimpl
        def learnsail_lesson_video(self, lesson, course, video_id, user_id, session):
            calls.append((lesson.id, video_id, user_id))
            if video_id == 13:
                raise ValidationFailed({"video_id": ["Not one of your videos."]})
            return {"duration": 300} if video_id else {}

    pm = app.registry["learnsail.pm"]
    plugin = Videos()
    pm.register(plugin)
    try:
        course = make_course(clients["teacher"])
        chapter = add_chapter(clients["teacher"], course["id"])
        lesson = clients["teacher"].post_json(f"/api/v1/chapters/{chapter['id']}/lessons",
                                              {"title": "L", "video_id": 7, "duration": 10}, status=201).json
        assert (lesson["video_id"], lesson["duration"]) == (7, 300)
        assert clients["teacher"].get(f"/api/v1/courses/{course['id']}").json["duration"] == 5
        r = clients["teacher"].put_json(f"/api/v1/lessons/{lesson['id']}", {"video_id": 13}, status=400)
        assert r.json["error"]["details"]["video_id"] == ["Not one of your videos."]
        assert dbsession.get(Lesson, lesson["id"]).video_id == 7
        # an unchanged video_id is not asked again; detaching keeps the duration
        clients["teacher"].put_json(f"/api/v1/lessons/{lesson['id']}", {"video_id": 7, "title": "L2"}, status=200)
        assert clients["teacher"].put_json(f"/api/v1/lessons/{lesson['id']}", {"video_id": None},
                                           status=200).json["video_id"] is None
    finally:
        pm.unregister(plugin)
    assert calls == [(lesson["id"], 7, users.teacher.id), (lesson["id"], 13, users.teacher.id),
                     (lesson["id"], None, users.teacher.id)]


@pytest.mark.parametrize("editor", ["other_teacher", "student"])
def test_only_the_courses_teacher_sets_a_video(clients, editor):
    course = make_course(clients["teacher"])
    chapter = add_chapter(clients["teacher"], course["id"])
    lesson = add_lesson(clients["teacher"], chapter["id"])
    clients[editor].put_json(f"/api/v1/lessons/{lesson['id']}", {"video_id": 1}, status=403)
