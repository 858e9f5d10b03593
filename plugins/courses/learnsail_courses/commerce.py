"""Courses as products: the quote the payments plugin asks for before an
order, and the enrolment an order buys (``learnsail_product_quote``,
``learnsail_order_paid``, ``learnsail_order_refunded``).  The payments
plugin is never imported: it reaches this module through the platform
hooks, and without it paid courses cannot be bought (``POST /enroll``
answers 402 and says so)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail_courses.access import usable
from learnsail_courses.learning import end_enrolment, enrol
from learnsail_courses.models import MEMBER, PAID, PUBLISHED, TRIAL, Course, Enrolment

#: the ``product_type`` this plugin sells
PRODUCT = "course"


def quote(session: Session, course_id: Any, user: Any) -> dict:
    """What ``course_id`` costs ``user`` and whether they may buy it: a
    published, priced course they are not already enrolled in (a trial or a
    membership enrolment may be turned into a bought one)."""
    course = session.get(Course, course_id) if isinstance(course_id, int) else None
    if course is None or course.deleted_at is not None:
        return {"title": "", "price": Decimal("0.00"), "currency": "CNY", "purchasable": False,
                "reason": f"No course with id {course_id}.", "found": False}
    answer = {"title": course.title, "price": Decimal(course.price).quantize(Decimal("0.01")), "currency": "CNY",
              "image_url": course.cover_image_url, "purchasable": False, "reason": None, "found": True}
    user_id = getattr(user, "id", None)
    if course.status != PUBLISHED:
        answer["reason"] = "This course is not on sale."
    elif course.is_free:
        answer["reason"] = "This course is free: enrol in it directly."
    elif user_id is not None and user_id == course.teacher_id:
        answer["reason"] = "You teach this course."
    elif user_id is not None and session.scalar(
            sa.select(Enrolment.id).where(Enrolment.user_id == user_id, Enrolment.course_id == course.id,
                                          Enrolment.kind.not_in((TRIAL, MEMBER)), usable(utcnow()))):
        answer["reason"] = "You are already enrolled in this course."
    else:
        answer["purchasable"] = True
    return answer


def fulfil(session: Session, hook: Any, order: Any) -> Enrolment | None:
    """Enrol the buyer of a paid ``course`` order (other kinds: None)."""
    if order.product_type != PRODUCT:
        return None
    course = session.get(Course, int(order.product_id))
    if course is None:
        raise LookupError(f"order {order.order_no}: no course {order.product_id}")
    enrolment, _created = enrol(session, hook, order.user_id, course, kind=PAID, order_no=order.order_no,
                                price_paid=Decimal(order.amount))
    return enrolment


def revoke(session: Session, hook: Any, order: Any) -> Enrolment | None:
    """End the enrolment a fully refunded ``course`` order bought.  A
    partial refund keeps it; an enrolment that no longer rests on this
    order (renewed since by another) is left alone."""
    if order.product_type != PRODUCT or order.status != "refunded":
        return None
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.user_id == order.user_id,
                                                          Enrolment.course_id == int(order.product_id),
                                                          Enrolment.order_no == order.order_no))
    if enrolment is None or enrolment.kind != PAID:
        return None
    # the right it bought ends now, even if the student had left the course
    # (so enrolling again does not take it up: learning.bought_before)
    now = utcnow()
    if enrolment.valid_until is None or enrolment.valid_until > now:
        enrolment.valid_until = now
    end_enrolment(session, hook, enrolment, "refunded")
    return enrolment
