"""Enrolment, progress, my courses, notes and collections."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from courses_test_helpers import add_lesson, make_course, own_statements, published_course
from learnsail.testing import count_queries
from learnsail.testing.authz import check_matrix
from learnsail_courses.models import Course, Enrolment, Progress


def enrol(client, course_id, status=201):
    return client.post_json(f"/api/v1/courses/{course_id}/enroll", {}, status=status).json


def report(client, lesson_id, status=200, **body):
    return client.post_json(f"/api/v1/lessons/{lesson_id}/progress", body, status=status).json


# --- enrolment ------------------------------------------------------------------

def test_enrolment_is_idempotent_and_counts_students(clients, dbsession):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    first = enrol(clients["student"], course["id"])
    assert first["status"] == "active" and first["kind"] == "free"
    again = enrol(clients["student"], course["id"], status=200)
    assert again["id"] == first["id"]
    row = dbsession.get(Course, course["id"])
    dbsession.refresh(row)
    assert row.student_count == 1
    # leaving ends it; enrolling again renews it
    clients["student"].delete(f"/api/v1/courses/{course['id']}/enroll", status=204)
    clients["student"].delete(f"/api/v1/courses/{course['id']}/enroll", status=404)
    dbsession.refresh(row)
    assert row.student_count == 0
    assert enrol(clients["student"], course["id"])["id"] == first["id"]
    dbsession.refresh(row)
    assert row.student_count == 1


def test_enrolling_in_a_draft_or_paid_course_is_refused(clients):
    draft = make_course(clients["teacher"])
    clients["student"].post_json(f"/api/v1/courses/{draft['id']}/enroll", {}, status=404)
    paid, _, _ = published_course(clients["teacher"], clients["admin"], price=99)
    r = clients["student"].post_json(f"/api/v1/courses/{paid['id']}/enroll", {}, status=402)
    assert r.json["error"]["code"] == "PAYMENT_REQUIRED"
    assert "payments plugin" in r.json["error"]["message"]
    assert r.json["error"]["details"]["payments_enabled"] is False


def test_enrolment_hooks_fire(app, clients):
    from learnsail import hookimpl

    events = []

    class Listener:
        @hookimpl
        def learnsail_enrolment_created(self, enrolment, session):
            events.append(("created", enrolment.course_id))

        @hookimpl
        def learnsail_enrolment_ended(self, enrolment, reason, session):
            events.append(("ended", reason))

        @hookimpl
        def learnsail_lesson_completed(self, progress, session):
            events.append(("lesson", progress.lesson_id))

        @hookimpl
        def learnsail_course_completed(self, enrolment, session):
            events.append(("course", enrolment.course_id))

    course, _, (one, two) = published_course(clients["teacher"], clients["admin"])
    pm = app.registry["learnsail.pm"]
    listener = Listener()
    pm.register(listener)
    try:
        enrol(clients["student"], course["id"])
        report(clients["student"], one["id"], progress_percent=95)
        report(clients["student"], one["id"], progress_percent=100)  # completed once only
        report(clients["student"], two["id"], progress_percent=10, is_completed=True)  # a video: not yet
        report(clients["student"], two["id"], progress_percent=90)
        clients["student"].delete(f"/api/v1/courses/{course['id']}/enroll", status=204)
    finally:
        pm.unregister(listener)
    assert events == [("created", course["id"]), ("lesson", one["id"]), ("lesson", two["id"]),
                      ("course", course["id"]), ("ended", "left")]


def test_is_enrolled_hook_answers_for_other_plugins(app, clients, users, dbsession):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    ask = app.registry["learnsail.pm"].hook.learnsail_is_enrolled
    assert ask(user_id=users.student.id, course_id=course["id"], session=dbsession) is False
    enrol(clients["student"], course["id"])
    assert ask(user_id=users.student.id, course_id=course["id"], session=dbsession) is True


def test_student_list_is_for_the_teacher_and_admins(testapp, actor_headers, clients):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    enrol(clients["student"], course["id"])
    url = f"/api/v1/courses/{course['id']}/students"
    check_matrix(testapp, actor_headers, "GET", url, {"anonymous": 401, "student": 403, "other_student": 403,
                                                      "other_teacher": 403, "teacher": 200, "admin": 200})
    page = clients["teacher"].get(url).json
    assert page["count"] == 1 and page["results"][0]["username"] == clients["student"].user.username
    assert page["results"][0]["state"] == "enrolled"


def test_validity_window_is_enforced(clients, users, dbsession):
    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"], price=0)
    enrol(clients["student"], course["id"])
    report(clients["student"], lesson["id"], progress_percent=10)
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).isoformat()
    url = f"/api/v1/courses/{course['id']}/students/{users.student.id}"
    clients["teacher"].put_json(url, {"valid_until": past}, status=403)
    assert clients["admin"].put_json(url, {"valid_until": past}).json["valid_until"] is not None
    # expired: no progress, not enrolled, not in my courses; enrolling again renews
    report(clients["student"], lesson["id"], status=403, progress_percent=20)
    assert clients["student"].get(f"/api/v1/courses/{course['id']}").json["is_enrolled"] is False
    assert clients["student"].get("/api/v1/users/courses").json["count"] == 0
    renewed = enrol(clients["student"], course["id"])
    assert renewed["valid_until"] is None
    report(clients["student"], lesson["id"], progress_percent=20)


# --- progress -------------------------------------------------------------------

def test_progress_rules(clients, dbsession, users):
    course, _, (lesson, other) = published_course(clients["teacher"], clients["admin"])
    # not enrolled, lesson neither free nor trial
    r = clients["student"].post_json(f"/api/v1/lessons/{lesson['id']}/progress", {"progress_percent": 10},
                                     status=403)
    assert r.json["error"]["code"] == "PERMISSION_DENIED"
    enrol(clients["student"], course["id"])
    for bad in (101, -1, "x"):
        r = clients["student"].post_json(f"/api/v1/lessons/{lesson['id']}/progress", {"progress_percent": bad},
                                         status=400)
        assert "progress_percent" in r.json["error"]["details"]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Progress)
                            .where(Progress.user_id == users.student.id)) == 0
    body = report(clients["student"], lesson["id"], progress_percent=50, last_position=300)
    assert set(body) == {"id", "lesson_id", "user_id", "progress_percent", "last_position", "is_completed",
                         "updated_at"}
    assert body["is_completed"] is False and body["last_position"] == 300
    body = report(clients["student"], lesson["id"], progress_percent=89.99, last_position=540)
    assert body["is_completed"] is False
    body = report(clients["student"], lesson["id"], progress_percent=90, last_position=545)
    assert body["is_completed"] is True
    # rewinding keeps the completion and the furthest percent, and moves the resume point
    body = report(clients["student"], lesson["id"], progress_percent=5, last_position=30)
    assert body["is_completed"] is True and body["progress_percent"] == 90 and body["last_position"] == 30
    detail = clients["student"].get(f"/api/v1/lessons/{lesson['id']}").json
    assert detail["progress"] == {"progress_percent": 90, "last_position": 30, "is_completed": True}
    assert detail["locked"] is False
    progress = clients["student"].get(f"/api/v1/users/courses/{course['id']}/progress").json
    assert progress["total_lessons"] == 2 and progress["completed_lessons"] == 1
    assert progress["progress_percent"] == 50 and progress["last_accessed"] is not None
    (chapter,) = progress["chapters"]
    assert chapter["total_lessons"] == 2 and chapter["completed_lessons"] == 1


def test_free_and_trial_lessons_are_open_without_enrolment(clients):
    course, chapter, _ = published_course(clients["teacher"], clients["admin"])
    # editing a published course is allowed; the new lessons are open to all
    free = add_lesson(clients["teacher"], chapter["id"], is_free=True, resource_url="https://x/free.mp4")
    trial = add_lesson(clients["teacher"], chapter["id"], is_trial=True)
    report(clients["other_student"], free["id"], progress_percent=40)
    report(clients["other_student"], trial["id"], progress_percent=40)
    lessons = clients["other_student"].get(f"/api/v1/chapters/{chapter['id']}/lessons").json
    urls = {x["id"]: x["resource_url"] for x in lessons}
    assert urls[free["id"]] == "https://x/free.mp4"
    clients["anonymous"].post_json(f"/api/v1/lessons/{free['id']}/progress", {"progress_percent": 1}, status=401)


def test_documents_are_completed_when_the_report_says_so(clients):
    course, chapter, (video, _) = published_course(clients["teacher"], clients["admin"])
    document = add_lesson(clients["teacher"], chapter["id"], type="document")
    enrol(clients["student"], course["id"])
    assert report(clients["student"], video["id"], progress_percent=5, is_completed=True)["is_completed"] is False
    done = report(clients["student"], document["id"], progress_percent=0, is_completed=True)
    assert done["is_completed"] is True and done["progress_percent"] == 100


def test_completion_threshold_per_course(clients):
    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"], completion_threshold=50)
    enrol(clients["student"], course["id"])
    assert report(clients["student"], lesson["id"], progress_percent=50)["is_completed"] is True


def test_progress_on_a_draft_course_lesson_is_404(clients):
    course = make_course(clients["teacher"])
    from courses_test_helpers import add_chapter
    lesson = add_lesson(clients["teacher"], add_chapter(clients["teacher"], course["id"])["id"], is_free=True)
    clients["student"].post_json(f"/api/v1/lessons/{lesson['id']}/progress", {"progress_percent": 1}, status=404)


# --- my courses -----------------------------------------------------------------

def test_my_courses_with_status_filter(clients, db_connection):
    teacher, admin, student = clients["teacher"], clients["admin"], clients["student"]
    done, _, done_lessons = published_course(teacher, admin, "Done", lessons=1)
    started, _, started_lessons = published_course(teacher, admin, "Started")
    fresh, _, _ = published_course(teacher, admin, "Fresh")
    for c in (done, started, fresh):
        enrol(student, c["id"])
    report(student, done_lessons[0]["id"], progress_percent=100)
    report(student, started_lessons[0]["id"], progress_percent=30)

    def names(status=None):
        params = {"status": status} if status else {}
        return [c["title"] for c in student.get("/api/v1/users/courses", params=params).json["results"]]

    assert set(names()) == {"Done", "Started", "Fresh"}
    assert names()[0] == "Started"  # last accessed first
    assert names("completed") == ["Done"]
    assert names("in_progress") == ["Started"]
    item = student.get("/api/v1/users/courses", params={"status": "completed"}).json["results"][0]
    assert {"id", "title", "cover_image_url", "teacher_name", "progress_percent", "last_accessed",
            "status"} <= set(item)
    assert item["status"] == "completed" and item["progress_percent"] == 100
    student.get("/api/v1/users/courses", params={"status": "bogus"}, status=400)
    assert clients["other_student"].get("/api/v1/users/courses").json["count"] == 0

    def queries() -> int:
        student.get("/api/v1/users/courses")
        with count_queries(db_connection.engine) as statements:
            student.get("/api/v1/users/courses", params={"page_size": 100})
        return len(own_statements(statements))

    before = queries()
    for n in range(4):
        c, _, _ = published_course(clients["other_teacher"] if n % 2 else teacher, admin)
        enrol(student, c["id"])
    assert queries() == before


def test_course_progress_needs_an_enrolment(clients):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    clients["student"].get(f"/api/v1/users/courses/{course['id']}/progress", status=404)
    clients["anonymous"].get(f"/api/v1/users/courses/{course['id']}/progress", status=401)


# --- notes ----------------------------------------------------------------------

def test_notes_crud_and_ownership(clients):
    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"])
    url = f"/api/v1/lessons/{lesson['id']}/notes"
    clients["student"].post_json(url, {"content": "not enrolled"}, status=403)
    enrol(clients["student"], course["id"])
    created = clients["student"].post_json(url, {"content": "第一条笔记", "position": 125}, status=201).json
    assert {"id", "content", "position", "lesson_id", "user_id", "created_at"} <= set(created)
    clients["student"].post_json(url, {"content": "earlier", "position": 5}, status=201)
    clients["student"].post_json(url, {"content": ""}, status=400)
    clients["student"].post_json(url, {"content": "x", "position": -1}, status=400)
    listed = clients["student"].get(url).json
    assert [n["content"] for n in listed] == ["earlier", "第一条笔记"]
    assert {"id", "content", "position", "created_at", "updated_at"} <= set(listed[0])
    # notes are private
    enrol(clients["other_student"], course["id"])
    assert clients["other_student"].get(url).json == []
    note_url = f"/api/v1/notes/{created['id']}"
    clients["other_student"].put_json(note_url, {"content": "mine now"}, status=404)
    clients["other_student"].delete(note_url, status=404)
    assert clients["student"].put_json(note_url, {"content": "edited"}).json["content"] == "edited"
    clients["student"].delete(note_url, status=204)
    assert [n["content"] for n in clients["student"].get(url).json] == ["earlier"]


# --- collections ----------------------------------------------------------------

def test_collections_with_000_400s(clients):
    course, _, _ = published_course(clients["teacher"], clients["admin"], "Collected one")
    url = f"/api/v1/users/courses/{course['id']}/collect"
    r = clients["student"].post_json(url, {}).json
    assert r == {"message": "Course collected successfully", "course_id": course["id"],
                 "user_id": clients["student"].user.id}
    r = clients["student"].post_json(url, {}, status=400)
    assert r.json["error"]["code"] == "VALIDATION_ERROR"
    page = clients["student"].get("/api/v1/users/collections").json
    assert page["count"] == 1
    assert {"id", "title", "cover_image_url", "teacher_name", "price", "rating", "collected_at"} <= set(
        page["results"][0])
    assert clients["other_student"].get("/api/v1/users/collections").json["count"] == 0
    clients["other_student"].delete(url, status=400)
    assert clients["student"].delete(url).json["message"] == "Course uncollected successfully"
    clients["student"].delete(url, status=400)
    draft = make_course(clients["teacher"])
    clients["student"].post_json(f"/api/v1/users/courses/{draft['id']}/collect", {}, status=404)
    clients["anonymous"].post_json(url, {}, status=401)


def test_enrolment_rows_are_unique(dbsession, clients, users):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    enrol(clients["student"], course["id"])
    enrol(clients["student"], course["id"], status=200)
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Enrolment)
                            .where(Enrolment.course_id == course["id"])) == 1


# --- trial and member enrolments ----------------------------------------------------

def test_trial_enrolment_of_a_paid_course(clients, dbsession, users):
    course, chapter, (locked, _) = published_course(clients["teacher"], clients["admin"], price=99)
    trial_lesson = add_lesson(clients["teacher"], chapter["id"], is_trial=True)
    url = f"/api/v1/courses/{course['id']}/enroll"
    trial = clients["student"].post_json(url, {"enrollment_type": "trial"}, status=201).json
    assert trial["kind"] == "trial" and trial["valid_until"] is not None
    assert clients["student"].post_json(url, {"enrollment_type": "trial"}, status=200).json["id"] == trial["id"]
    # a trial opens the trial lessons only, is not "enrolled" and is no student
    report(clients["student"], trial_lesson["id"], progress_percent=50)
    report(clients["student"], locked["id"], status=403, progress_percent=50)
    detail = clients["student"].get(f"/api/v1/courses/{course['id']}").json
    assert detail["is_enrolled"] is False and detail["enrollment_type"] == "trial"
    assert detail["student_count"] == 0
    mine = clients["student"].get("/api/v1/users/courses").json["results"]
    assert [(c["id"], c["kind"]) for c in mine] == [(course["id"], "trial")]
    # paid enrolment still needs payments; an expired trial is not renewed
    clients["student"].post_json(url, {}, status=402)
    row = dbsession.scalar(sa.select(Enrolment).where(Enrolment.id == trial["id"]))
    row.valid_until = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    dbsession.commit()
    r = clients["student"].post_json(url, {"enrollment_type": "trial"}, status=400)
    assert "enrollment_type" in r.json["error"]["details"]
    clients["student"].post_json(url, {"enrollment_type": "bogus"}, status=400)


def test_trials_can_be_switched_off(app, clients, monkeypatch):
    monkeypatch.setitem(app.registry.settings, "learnsail.courses.trial_days", 0)
    course, _, _ = published_course(clients["teacher"], clients["admin"], price=10)
    clients["student"].post_json(f"/api/v1/courses/{course['id']}/enroll", {"enrollment_type": "trial"},
                                 status=400)


def test_a_trial_is_upgraded_by_a_free_enrolment(clients, dbsession):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    url = f"/api/v1/courses/{course['id']}/enroll"
    trial = clients["student"].post_json(url, {"enrollment_type": "trial"}, status=201).json
    full = clients["student"].post_json(url, {}, status=201).json
    assert full["id"] == trial["id"] and full["kind"] == "free" and full["valid_until"] is None
    row = dbsession.get(Course, course["id"])
    dbsession.refresh(row)
    assert row.student_count == 1


def test_member_only_courses_ask_the_membership_hook(app, clients, users):
    from learnsail import hookimpl

    free, _, (lesson, _) = published_course(clients["teacher"], clients["admin"], is_member_only=True)
    paid, _, _ = published_course(clients["teacher"], clients["admin"], is_member_only=True, price=30)
    assert clients["anonymous"].get(f"/api/v1/courses/{free['id']}").json["is_member_only"] is True
    r = clients["student"].post_json(f"/api/v1/courses/{free['id']}/enroll", {}, status=403)
    assert "members only" in r.json["error"]["message"]
    clients["student"].post_json(f"/api/v1/courses/{paid['id']}/enroll", {}, status=402)
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)

    class Membership:
        @hookimpl
        def learnsail_member_until(self, user_id, session):
            return until if user_id == users.student.id else None

    pm = app.registry["learnsail.pm"]
    plugin = Membership()
    pm.register(plugin)
    try:
        member = clients["student"].post_json(f"/api/v1/courses/{paid['id']}/enroll", {}, status=201).json
        assert member["kind"] == "member" and member["valid_until"].startswith(until.strftime("%Y-%m-%dT%H:%M"))
        clients["student"].post_json(f"/api/v1/courses/{free['id']}/enroll", {}, status=201)
        clients["other_student"].post_json(f"/api/v1/courses/{free['id']}/enroll", {}, status=403)
    finally:
        pm.unregister(plugin)
    report(clients["student"], lesson["id"], progress_percent=20)


def test_progress_figures_follow_lesson_changes(clients):
    teacher, student = clients["teacher"], clients["student"]
    course, chapter, (one, two) = published_course(teacher, clients["admin"])
    enrol(student, course["id"])
    report(student, one["id"], progress_percent=100)
    assert student.get("/api/v1/users/courses").json["results"][0]["progress_percent"] == 50
    teacher.delete(f"/api/v1/lessons/{two['id']}", status=204)
    assert student.get("/api/v1/users/courses").json["results"][0]["progress_percent"] == 100
    add_lesson(teacher, chapter["id"])
    add_lesson(teacher, chapter["id"])
    assert student.get("/api/v1/users/courses").json["results"][0]["progress_percent"] == 33.33
    assert student.get(f"/api/v1/users/courses/{course['id']}/progress").json["progress_percent"] == 33.33


def test_an_archived_course_stays_open_to_its_students(clients):
    teacher = clients["teacher"]
    course, chapter, (lesson, _) = published_course(teacher, clients["admin"])
    enrol(clients["student"], course["id"])
    teacher.put_json(f"/api/v1/courses/{course['id']}", {"status": "archived"})
    assert clients["student"].get(f"/api/v1/courses/{course['id']}").json["status"] == "archived"
    clients["student"].get(f"/api/v1/courses/{course['id']}/chapters", status=200)
    report(clients["student"], lesson["id"], progress_percent=30)
    clients["other_student"].get(f"/api/v1/courses/{course['id']}", status=404)
    clients["other_student"].post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=404)
    assert [c["id"] for c in clients["anonymous"].get("/api/v1/courses").json["results"]] == []


def test_course_stats_for_its_teacher(testapp, actor_headers, clients):
    course, _, (one, two) = published_course(clients["teacher"], clients["admin"])
    enrol(clients["student"], course["id"])
    enrol(clients["other_student"], course["id"])
    report(clients["student"], one["id"], progress_percent=100, last_position=600)
    report(clients["student"], two["id"], progress_percent=100)
    report(clients["other_student"], one["id"], progress_percent=30, last_position=100)
    url = f"/api/v1/courses/{course['id']}/stats"
    check_matrix(testapp, actor_headers, "GET", url, {"anonymous": 401, "student": 403, "other_student": 403,
                                                      "other_teacher": 403, "teacher": 200, "admin": 200})
    stats = clients["teacher"].get(url).json
    assert stats["student_count"] == 2 and stats["completed_count"] == 1 and stats["trial_count"] == 0
    assert stats["avg_progress_percent"] == 50
    assert stats["total_learning_hours"] == round(400 / 3600, 2)
    assert [(x["id"], x["started"], x["completed"]) for x in stats["lessons"]] == [(one["id"], 2, 1),
                                                                                  (two["id"], 1, 1)]
