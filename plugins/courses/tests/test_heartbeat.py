"""Progress heartbeats buffered in the cache and flushed by the periodic
task courses.flush_progress."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
import transaction

from courses_test_helpers import published_course
from learnsail.tasks import send_now
from learnsail_courses import heartbeat
from learnsail_courses.models import Enrolment, LearningDay, Progress

INTERVAL = 60


@pytest.fixture
def buffering(app, monkeypatch):
    monkeypatch.setitem(app.registry.settings, "learnsail.courses.progress_buffer_seconds", INTERVAL)
    cache = app.registry["learnsail.cache"]
    cache.delete_prefix("courses:hb")
    yield cache
    cache.delete_prefix("courses:hb")


def row(dbsession, user_id, lesson_id):
    dbsession.expire_all()
    return dbsession.scalar(sa.select(Progress).where(Progress.user_id == user_id, Progress.lesson_id == lesson_id))


def report(client, lesson_id, **body):
    return client.post_json(f"/api/v1/lessons/{lesson_id}/progress", body, status=200).json


def test_heartbeats_are_buffered_and_always_answered_latest(app, buffering, clients, users, dbsession):
    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"])
    student = clients["student"]
    student.post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    first = report(student, lesson["id"], progress_percent=5, last_position=30)  # creates the row at once
    assert row(dbsession, users.student.id, lesson["id"]).last_position == 30
    answer = report(student, lesson["id"], progress_percent=20, last_position=120)
    assert answer["id"] == first["id"] and answer["last_position"] == 120 and answer["progress_percent"] == 20
    assert answer["updated_at"].endswith("Z")
    # the database still holds the first report; the API shows the latest
    assert row(dbsession, users.student.id, lesson["id"]).last_position == 30
    detail = student.get(f"/api/v1/lessons/{lesson['id']}").json
    assert detail["progress"]["last_position"] == 120 and detail["progress"]["progress_percent"] == 20
    # the flush writes it: position, percent, credited seconds, daily log, last access
    written = heartbeat.flush(dbsession, buffering, INTERVAL,
                              now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2 * INTERVAL))
    assert written == 1
    transaction.abort()  # the key deletions queued on the thread's transaction: the fixture drops the keys
    progress = row(dbsession, users.student.id, lesson["id"])
    assert progress.last_position == 120 and progress.progress_percent == Decimal("20.00")
    assert progress.learned_seconds == 30 + 90
    assert dbsession.scalar(sa.select(LearningDay.seconds).where(LearningDay.user_id == users.student.id)) == 120
    assert dbsession.scalar(sa.select(Enrolment.last_accessed_at)
                            .where(Enrolment.user_id == users.student.id)) is not None


def test_a_completing_report_writes_the_buffer_first(app, buffering, clients, users, dbsession):
    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"])
    student = clients["student"]
    student.post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    report(student, lesson["id"], progress_percent=10, last_position=60)
    report(student, lesson["id"], progress_percent=50, last_position=300)   # buffered
    done = report(student, lesson["id"], progress_percent=95, last_position=570)
    assert done["is_completed"] is True and done["last_position"] == 570
    progress = row(dbsession, users.student.id, lesson["id"])
    assert progress.is_completed and progress.last_position == 570
    # 60 + capped 240 (buffered) + 270
    assert progress.learned_seconds == 60 + 240 + 270
    mine = student.get(f"/api/v1/users/courses/{course['id']}/progress").json
    assert mine["completed_lessons"] == 1


def test_the_periodic_task_flushes_finished_epochs(app, buffering, clients, users, dbsession):
    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"])
    clients["student"].post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    first = report(clients["student"], lesson["id"], progress_percent=5, last_position=10)
    # an entry buffered two intervals ago, as a heartbeat then would have left it
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2 * INTERVAL)
    state = heartbeat.buffer_report(dbsession, buffering, users.student.id, lesson["id"],
                                    percent=Decimal(40), position=200, is_completed=None, threshold=90,
                                    interval=INTERVAL, max_credit=300, now=earlier)
    assert state["id"] == first["id"]
    send_now(app.registry, "courses.flush_progress")
    progress = row(dbsession, users.student.id, lesson["id"])
    # the furthest percent and the credited seconds count; the row's position,
    # reported after that entry, stays (newest position wins)
    assert progress.progress_percent == Decimal("40.00") and progress.learned_seconds == 10 + 190
    assert progress.last_position == 10
    assert buffering.count("courses:hb:") == 0


def test_buffering_is_off_by_default_and_declares_its_task(app):
    from learnsail_courses import plugin

    assert app.registry.settings["learnsail.courses.progress_buffer_seconds"] == 0
    assert plugin.learnsail_periodic_tasks({"learnsail.courses.progress_buffer_seconds": 0}) == []
    (periodic,) = plugin.learnsail_periodic_tasks({"learnsail.courses.progress_buffer_seconds": 15})
    assert periodic.task == "courses.flush_progress" and periodic.every == 15


def test_a_buffered_heartbeat_is_one_statement(app, buffering, clients, db_connection):
    """The lesson, its course and the caller's enrolment in one statement;
    the rest is the cache (the sign-in's own reads are the core's)."""
    from courses_test_helpers import own_statements
    from learnsail.testing import count_queries

    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"])
    student = clients["student"]
    student.post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    report(student, lesson["id"], progress_percent=5, last_position=30)   # the row, at once
    report(student, lesson["id"], progress_percent=6, last_position=40)   # buffered from here on
    with count_queries(db_connection.engine) as statements:
        answer = report(student, lesson["id"], progress_percent=7, last_position=50)
    assert answer["last_position"] == 50
    assert len(own_statements(statements)) == 1, statements
    # not enrolled: the same statement answers 403
    other = clients["other_student"]
    other.post_json(f"/api/v1/lessons/{lesson['id']}/progress", {"progress_percent": 5}, status=403)
