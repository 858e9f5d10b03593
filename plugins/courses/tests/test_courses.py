"""Courses: writing, the review workflow, deletion, chapters and lessons."""

from __future__ import annotations

import sqlalchemy as sa

from courses_test_helpers import (add_chapter, add_lesson, make_category, make_course, own_statements,
                                  published_course)
from learnsail.testing.authz import ADMIN_ONLY, check_matrix
from learnsail_courses.models import Course

NOBODY_BUT = {"anonymous": 401, "student": 403, "other_student": 403, "teacher": 403, "other_teacher": 403,
              "admin": 403}


def test_teacher_creates_a_draft_with_000_fields(clients, users):
    category = make_category(clients["admin"])
    r = clients["teacher"].post_json("/api/v1/courses", {
        "title": "Python 入门", "description": "从零开始", "cover_image_url": "https://cdn.example/p.png",
        "category_id": category["id"], "difficulty": "beginner", "price": 0, "tags": ["python"]}, status=201)
    body = r.json
    assert {"id", "title", "description", "cover_image_url", "teacher_id", "category_id", "difficulty", "price",
            "created_at", "status"} <= set(body)
    assert body["status"] == "draft" and body["teacher_id"] == users.teacher.id
    assert body["price"] == 0 and body["is_free"] is True and body["tags"] == ["python"]


def test_only_teachers_and_admins_create(testapp, actor_headers):
    check_matrix(testapp, actor_headers, "POST", "/api/v1/courses",
                 {"anonymous": 401, "student": 403, "other_student": 403, "teacher": 201,
                  "other_teacher": 201, "admin": 201}, json={"title": "Matrix"})


def test_bad_course_bodies_are_refused(clients, dbsession):
    before = dbsession.scalar(sa.select(sa.func.count()).select_from(Course))
    r = clients["teacher"].post_json("/api/v1/courses", {"title": "", "difficulty": "expert", "price": -1,
                                                         "category_id": 999999, "owner": 1}, status=400)
    assert {"title", "difficulty", "price", "owner"} <= set(r.json["error"]["details"])
    r = clients["teacher"].post_json("/api/v1/courses", {"title": "x", "category_id": 999999}, status=400)
    assert "category_id" in r.json["error"]["details"]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Course)) == before


def test_only_the_owner_or_an_admin_edits(testapp, actor_headers, clients):
    course = make_course(clients["teacher"])
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/courses/{course['id']}",
                 {"anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403,
                  "teacher": 200, "admin": 200}, json={"description": "edited"})
    r = clients["other_teacher"].put_json(f"/api/v1/courses/{course['id']}", {"title": "Mine now"}, status=403)
    assert r.json["error"]["code"] == "PERMISSION_DENIED"
    assert clients["teacher"].put_json(f"/api/v1/courses/{course['id']}", {"price": 99.5}).json["is_free"] is False


def test_review_workflow(clients, users, dbsession):
    teacher, admin = clients["teacher"], clients["admin"]
    course = make_course(teacher)
    url = f"/api/v1/courses/{course['id']}"
    # nothing to review yet
    r = teacher.put_json(url, {"status": "reviewing"}, status=400)
    assert "status" in r.json["error"]["details"]
    add_lesson(teacher, add_chapter(teacher, course["id"])["id"])
    # a teacher cannot publish by PUT, nor review
    teacher.put_json(url, {"status": "published"}, status=400)
    assert teacher.put_json(url, {"status": "reviewing"}).json["status"] == "reviewing"
    r = teacher.put_json(url + "/review", {"status": "published"}, status=403)
    assert r.json["error"]["code"] == "PERMISSION_DENIED"
    # rejecting needs a reason
    admin.put_json(url + "/review", {"status": "rejected"}, status=400)
    r = admin.put_json(url + "/review", {"status": "rejected", "review_comment": "Add a syllabus."}).json
    assert r["status"] == "rejected" and r["reviewer_id"] == users.admin.id and r["reviewed_at"].endswith("Z")
    assert set(r) == {"id", "title", "status", "review_comment", "reviewed_at", "reviewer_id"}
    # reviewing is only for courses in review
    admin.put_json(url + "/review", {"status": "published"}, status=400)
    teacher.put_json(url, {"status": "reviewing"}, status=200)
    assert admin.put_json(url + "/review", {"status": "published"}).json["status"] == "published"
    row = dbsession.get(Course, course["id"])
    dbsession.refresh(row)
    assert row.published_at is not None and row.review_comment is None
    # unpublish, publish again via review, archive
    assert teacher.put_json(url, {"status": "draft"}).json["status"] == "draft"
    teacher.put_json(url, {"status": "reviewing"})
    admin.put_json(url + "/review", {"status": "published"})
    assert teacher.put_json(url, {"status": "archived"}).json["status"] == "archived"
    teacher.put_json(url, {"status": "reviewing"}, status=400)


def test_review_is_admin_only(testapp, actor_headers, clients):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    clients["teacher"].put_json(f"/api/v1/courses/{course['id']}", {"status": "draft"})
    clients["teacher"].put_json(f"/api/v1/courses/{course['id']}", {"status": "reviewing"})
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/courses/{course['id']}/review", ADMIN_ONLY,
                 json={"status": "published"})


def test_review_notifies_the_teacher(clients, users, dbsession):
    from learnsail.notifications.models import Notification

    course, _, _ = published_course(clients["teacher"], clients["admin"], title="Notified")
    titles = list(dbsession.scalars(sa.select(Notification.title).where(Notification.user_id == users.teacher.id)))
    assert any("Notified" in t and "published" in t for t in titles)


def test_review_fires_course_published(app, clients):
    seen = []

    class Listener:
        from learnsail import hookimpl

        @hookimpl
        def learnsail_course_published(self, course, session):
            seen.append(course.id)

    pm = app.registry["learnsail.pm"]
    listener = Listener()
    pm.register(listener)
    try:
        course, _, _ = published_course(clients["teacher"], clients["admin"])
    finally:
        pm.unregister(listener)
    assert seen == [course["id"]]


def test_soft_delete(clients, dbsession):
    course = make_course(clients["teacher"])
    clients["other_teacher"].delete(f"/api/v1/courses/{course['id']}", status=403)
    clients["teacher"].delete(f"/api/v1/courses/{course['id']}", status=204)
    clients["teacher"].put_json(f"/api/v1/courses/{course['id']}", {"title": "gone"}, status=404)
    row = dbsession.get(Course, course["id"])
    assert row is not None and row.deleted_at is not None


def test_delete_refused_while_students_are_enrolled(clients):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    clients["student"].post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    r = clients["teacher"].delete(f"/api/v1/courses/{course['id']}", status=409)
    assert r.json["error"]["details"] == {"student_count": 1}


# --- chapters and lessons ---------------------------------------------------------

def test_chapters_and_lessons_in_order_with_duration_totals(clients):
    teacher = clients["teacher"]
    course = make_course(teacher)
    one = add_chapter(teacher, course["id"], "One")
    two = add_chapter(teacher, course["id"], "Two", is_free=True)
    assert (one["sort_order"], two["sort_order"]) == (1, 2)
    a = add_lesson(teacher, one["id"], "A", duration=90)
    b = add_lesson(teacher, one["id"], "B", duration=61, type="document", resource_url="https://x/y.pdf")
    add_lesson(teacher, two["id"], "C", duration=30, is_trial=True)
    detail = clients["teacher"].get(f"/api/v1/courses/{course['id']}").json
    assert detail["duration"] == 4  # 181 s, rounded up to minutes
    chapters = teacher.get(f"/api/v1/courses/{course['id']}/chapters").json
    assert [c["title"] for c in chapters] == ["One", "Two"]
    assert [lesson["title"] for lesson in chapters[0]["lessons"]] == ["A", "B"]
    assert {"id", "title", "duration", "is_free", "type"} <= set(chapters[0]["lessons"][0])
    # reorder
    teacher.put_json(f"/api/v1/chapters/{one['id']}/lessons/order", {"ids": [b["id"], a["id"]]}, status=200)
    teacher.put_json(f"/api/v1/courses/{course['id']}/chapters/order", {"ids": [two["id"], one["id"]]})
    chapters = teacher.get(f"/api/v1/courses/{course['id']}/chapters").json
    assert [c["title"] for c in chapters] == ["Two", "One"]
    assert [lesson["title"] for lesson in chapters[1]["lessons"]] == ["B", "A"]
    r = teacher.put_json(f"/api/v1/courses/{course['id']}/chapters/order", {"ids": [one["id"]]}, status=400)
    assert "ids" in r.json["error"]["details"]
    # durations follow changes and deletions
    teacher.put_json(f"/api/v1/lessons/{a['id']}", {"duration": 600})
    assert teacher.get(f"/api/v1/courses/{course['id']}").json["duration"] == 12  # 691 s
    teacher.delete(f"/api/v1/lessons/{b['id']}", status=204)
    assert teacher.get(f"/api/v1/courses/{course['id']}").json["duration"] == 11  # 630 s
    teacher.delete(f"/api/v1/chapters/{two['id']}", status=204)
    assert teacher.get(f"/api/v1/courses/{course['id']}").json["duration"] == 10
    lessons = teacher.get(f"/api/v1/chapters/{one['id']}/lessons").json
    assert [x["title"] for x in lessons] == ["A"]
    assert {"id", "title", "description", "video_id", "duration", "sort_order", "is_free", "type"} <= set(lessons[0])


def test_moving_a_lesson_between_chapters(clients):
    teacher = clients["teacher"]
    course = make_course(teacher)
    one, two = add_chapter(teacher, course["id"]), add_chapter(teacher, course["id"])
    lesson = add_lesson(teacher, one["id"])
    moved = teacher.put_json(f"/api/v1/lessons/{lesson['id']}", {"chapter_id": two["id"]}).json
    assert moved["chapter_id"] == two["id"]
    other = make_course(teacher)
    foreign = add_chapter(teacher, other["id"])
    r = teacher.put_json(f"/api/v1/lessons/{lesson['id']}", {"chapter_id": foreign["id"]}, status=400)
    assert "chapter_id" in r.json["error"]["details"]


def test_structure_is_edited_only_by_the_owner_or_admin(testapp, actor_headers, clients):
    course = make_course(clients["teacher"])
    chapter = add_chapter(clients["teacher"], course["id"])
    lesson = add_lesson(clients["teacher"], chapter["id"])
    expected = {"anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403,
                "teacher": 200, "admin": 200}
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/chapters/{chapter['id']}", expected,
                 json={"title": "Renamed"})
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/lessons/{lesson['id']}", expected,
                 json={"title": "Renamed"})
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/courses/{course['id']}/chapters",
                 {**expected, "teacher": 201, "admin": 201}, json={"title": "New"})
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/chapters/{chapter['id']}/lessons",
                 {**expected, "teacher": 201, "admin": 201}, json={"title": "New"})
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/lessons/{lesson['id']}",
                 {**expected, "teacher": 204, "admin": 404})


def test_draft_structure_is_invisible_to_students(clients):
    course = make_course(clients["teacher"])
    chapter = add_chapter(clients["teacher"], course["id"])
    lesson = add_lesson(clients["teacher"], chapter["id"])
    for url in (f"/api/v1/courses/{course['id']}/chapters", f"/api/v1/chapters/{chapter['id']}/lessons",
                f"/api/v1/lessons/{lesson['id']}", f"/api/v1/courses/{course['id']}"):
        r = clients["student"].get(url, status=404)
        assert r.json["error"]["code"] == "RESOURCE_NOT_FOUND"
        clients["admin"].get(url, status=200)
        clients["teacher"].get(url, status=200)
        clients["other_teacher"].get(url, status=404)


def test_chapters_listing_issues_constant_queries(clients, db_connection):
    from learnsail.testing import count_queries

    teacher = clients["teacher"]
    course, chapter, _ = published_course(teacher, clients["admin"], lessons=1)
    url = f"/api/v1/courses/{course['id']}/chapters"

    def queries() -> int:
        clients["student"].get(url)
        with count_queries(db_connection.engine) as statements:
            clients["student"].get(url)
        return len(own_statements(statements))

    one = queries()
    for _ in range(4):
        extra = add_chapter(teacher, course["id"])
        for _ in range(3):
            add_lesson(teacher, extra["id"])
    assert queries() == one


def test_enrolled_students_hear_of_course_updates(clients, users, dbsession):
    from learnsail.notifications.models import Notification

    course, chapter, _ = published_course(clients["teacher"], clients["admin"], title="Updated one")
    clients["student"].post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    add_lesson(clients["teacher"], chapter["id"], "Bonus lesson")
    clients["teacher"].put_json(f"/api/v1/courses/{course['id']}", {"description": "Now with more"})

    def titles(user):
        return list(dbsession.scalars(sa.select(Notification.title).where(Notification.user_id == user.id)
                                      .order_by(Notification.id)))

    assert titles(users.student) == ["New lesson in “Updated one”: Bonus lesson", "“Updated one” was updated"]
    assert titles(users.other_student) == []
