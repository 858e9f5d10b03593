"""Comments and ratings, replies, likes, moderation; learning statistics;
personal data hooks."""

from __future__ import annotations

import sqlalchemy as sa

from courses_test_helpers import make_category, own_statements, published_course
from learnsail.testing import count_queries
from learnsail.testing.authz import check_matrix
from learnsail_courses.models import Course, Note


def enrol(client, course_id):
    client.post_json(f"/api/v1/courses/{course_id}/enroll", {}, status=201)


def comment(client, course_id, status=201, **body):
    return client.post_json(f"/api/v1/courses/{course_id}/comments", body, status=status).json


def course_row(dbsession, course_id):
    row = dbsession.get(Course, course_id)
    dbsession.refresh(row)
    return row


def test_rating_updates_the_course_and_is_once_per_user(clients, dbsession):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    cid = course["id"]
    # not enrolled: may comment, may not rate
    comment(clients["student"], cid, status=403, content="Great", rating=5)
    plain = comment(clients["student"], cid, content="Looks good")
    assert plain["rating"] is None
    enrol(clients["student"], cid)
    enrol(clients["other_student"], cid)
    rated = comment(clients["student"], cid, content="很好", rating=5)
    assert set(rated) >= {"id", "content", "rating", "course_id", "user_id", "created_at"}
    assert rated["rating"] == 5 and rated["course_id"] == cid
    r = comment(clients["student"], cid, status=400, content="Again", rating=1)
    assert r["error"]["code"] == "VALIDATION_ERROR" and "rating" in r["error"]["details"]
    comment(clients["other_student"], cid, content="Meh", rating=2)
    row = course_row(dbsession, cid)
    assert float(row.rating) == 3.5 and row.rating_count == 2
    detail = clients["anonymous"].get(f"/api/v1/courses/{cid}").json
    assert detail["rating"] == 3.5 and detail["rating_count"] == 2
    for bad in ({"content": ""}, {"content": "x", "rating": 6}, {"content": "x", "rating": 0}):
        clients["student"].post_json(f"/api/v1/courses/{cid}/comments", bad, status=400)
    # deleting the rated comment updates the rating
    clients["student"].delete(f"/api/v1/comments/{rated['id']}", status=204)
    row = course_row(dbsession, cid)
    assert float(row.rating) == 2 and row.rating_count == 1


def test_threads_with_replies_likes_and_sort(clients, db_connection):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    cid = course["id"]
    first = comment(clients["student"], cid, content="First")
    comment(clients["other_student"], cid, content="Second")
    reply = comment(clients["teacher"], cid, content="Thanks", parent_id=first["id"])
    nested = comment(clients["student"], cid, content="You're welcome", parent_id=reply["id"])
    comment(clients["student"], cid, status=400, content="x", parent_id=first["id"], rating=3)
    r = comment(clients["student"], cid, status=400, content="x", lesson_id=999999)
    assert "lesson_id" in r["error"]["details"]
    clients["other_student"].post_json(f"/api/v1/comments/{first['id']}/like", {}, status=200)
    liked = clients["other_student"].post_json(f"/api/v1/comments/{first['id']}/like", {}).json
    assert liked == {"id": first["id"], "like_count": 1, "liked": True}
    page = clients["other_student"].get(f"/api/v1/courses/{cid}/comments").json
    assert [c["content"] for c in page["results"]] == ["Second", "First"]
    thread = page["results"][1]
    assert {"id", "content", "rating", "created_at", "user", "replies", "like_count"} <= set(thread)
    assert thread["like_count"] == 1 and thread["liked"] is True
    assert set(thread["user"]) == {"id", "username", "avatar_url"}
    assert [(r["content"], r["parent_id"]) for r in thread["replies"]] == [("Thanks", first["id"]),
                                                                         ("You're welcome", reply["id"])]
    by_likes = clients["anonymous"].get(f"/api/v1/courses/{cid}/comments", params={"sort": "likes"}).json
    assert by_likes["results"][0]["id"] == first["id"] and by_likes["results"][0]["liked"] is False
    clients["other_student"].delete(f"/api/v1/comments/{first['id']}/like", status=200)
    assert clients["anonymous"].get(f"/api/v1/courses/{cid}/comments").json["results"][1]["like_count"] == 0
    clients["anonymous"].get(f"/api/v1/courses/{cid}/comments", params={"sort": "bogus"}, status=400)

    def queries() -> int:
        clients["student"].get(f"/api/v1/courses/{cid}/comments")
        with count_queries(db_connection.engine) as statements:
            clients["student"].get(f"/api/v1/courses/{cid}/comments", params={"page_size": 100})
        return len(own_statements(statements))

    before = queries()
    for n in range(5):
        top = comment(clients["other_student"], cid, content=f"More {n}")
        comment(clients["teacher"], cid, content="reply", parent_id=top["id"])
    assert queries() == before
    assert nested["parent_id"] == reply["id"]


def test_only_the_author_or_a_moderator_deletes(testapp, actor_headers, clients):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    mine = comment(clients["student"], course["id"], content="mine")
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/comments/{mine['id']}",
                 {"anonymous": 401, "other_student": 403, "teacher": 403, "other_teacher": 403, "student": 204,
                  "admin": 404})


def test_moderation_hides_comments_and_their_ratings(clients, dbsession, testapp, actor_headers):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    cid = course["id"]
    enrol(clients["student"], cid)
    rated = comment(clients["student"], cid, content="spam", rating=1)
    url = f"/api/v1/comments/{rated['id']}/moderation"
    check_matrix(testapp, actor_headers, "PUT", url,
                 {"anonymous": 401, "student": 403, "other_student": 403, "teacher": 403, "other_teacher": 403,
                  "admin": 200}, json={"is_hidden": True})
    assert clients["anonymous"].get(f"/api/v1/courses/{cid}/comments").json["count"] == 0
    assert course_row(dbsession, cid).rating_count == 0
    hidden = clients["admin"].get(f"/api/v1/courses/{cid}/comments", params={"include_hidden": "true"}).json
    assert hidden["count"] == 1 and hidden["results"][0]["is_hidden"] is True
    clients["admin"].put_json(url, {"is_hidden": False})
    assert course_row(dbsession, cid).rating_count == 1


def test_comment_approval_setting(app, clients, monkeypatch):
    monkeypatch.setitem(app.registry.settings, "learnsail.courses.comment_approval", True)
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    waiting = comment(clients["student"], course["id"], content="needs approval")
    assert waiting["is_approved"] is False
    assert clients["anonymous"].get(f"/api/v1/courses/{course['id']}/comments").json["count"] == 0
    assert clients["student"].get(f"/api/v1/courses/{course['id']}/comments").json["count"] == 1  # own
    clients["admin"].put_json(f"/api/v1/comments/{waiting['id']}/moderation", {"is_approved": True})
    assert clients["anonymous"].get(f"/api/v1/courses/{course['id']}/comments").json["count"] == 1


def test_draft_course_comments_are_404(clients):
    from courses_test_helpers import make_course

    draft = make_course(clients["teacher"])
    clients["student"].get(f"/api/v1/courses/{draft['id']}/comments", status=404)
    clients["student"].post_json(f"/api/v1/courses/{draft['id']}/comments", {"content": "x"}, status=404)


# --- statistics -----------------------------------------------------------------

def test_learning_stats(clients):
    admin, teacher, student = clients["admin"], clients["teacher"], clients["student"]
    category = make_category(admin, "统计分类")
    course, _, (one, two) = published_course(teacher, admin, category_id=category["id"])
    other, _, (three, _) = published_course(teacher, admin)
    empty = student.get("/api/v1/users/learning/stats").json
    assert empty["total_learning_hours"] == 0 and empty["most_learned_category"] is None
    assert len(empty["learning_trends"]) == 7 and empty["learning_trends"][-1]["hours"] == 0
    enrol(student, course["id"])
    enrol(student, other["id"])
    for position in (200, 400, 600):
        student.post_json(f"/api/v1/lessons/{one['id']}/progress", {"progress_percent": 100 * position / 600,
                                                                   "last_position": position})
    student.post_json(f"/api/v1/lessons/{two['id']}/progress", {"progress_percent": 100, "last_position": 3600})
    student.post_json(f"/api/v1/lessons/{three['id']}/progress", {"progress_percent": 5, "last_position": 60})
    stats = student.get("/api/v1/users/learning/stats", params={"days": 3}).json
    assert set(stats) == {"total_learning_hours", "completed_courses", "in_progress_courses", "avg_completion_rate",
                          "most_learned_category", "learning_trends"}
    # 600 s + one jump capped at 300 s + 60 s
    assert stats["total_learning_hours"] == round(960 / 3600, 2)
    assert stats["completed_courses"] == 1 and stats["in_progress_courses"] == 1
    assert stats["avg_completion_rate"] == 50
    assert stats["most_learned_category"] == "统计分类"
    assert len(stats["learning_trends"]) == 3 and stats["learning_trends"][-1]["hours"] == round(960 / 3600, 2)
    student.get("/api/v1/users/learning/stats", params={"days": 0}, status=400)
    clients["anonymous"].get("/api/v1/users/learning/stats", status=401)
    assert clients["other_student"].get("/api/v1/users/learning/stats").json["total_learning_hours"] == 0


# --- personal data hooks --------------------------------------------------------

def test_user_export_and_erasure(app, clients, users, dbsession):
    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"])
    enrol(clients["student"], course["id"])
    clients["student"].post_json(f"/api/v1/lessons/{lesson['id']}/progress", {"progress_percent": 50})
    clients["student"].post_json(f"/api/v1/lessons/{lesson['id']}/notes", {"content": "private"}, status=201)
    comment(clients["student"], course["id"], content="rated", rating=4)
    clients["student"].post_json(f"/api/v1/users/courses/{course['id']}/collect", {})
    hook = app.registry["learnsail.pm"].hook
    (exported,) = [r for r in hook.learnsail_user_export(user_id=users.student.id, session=dbsession) if r]
    data = exported["courses"]
    assert data["notes"][0]["content"] == "private" and data["comments"][0]["rating"] == 4
    assert data["enrolments"][0]["course_id"] == course["id"]
    hook.learnsail_user_erased(user_id=users.student.id, session=dbsession)
    dbsession.flush()
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Note)
                            .where(Note.user_id == users.student.id)) == 0
    row = course_row(dbsession, course["id"])
    assert row.student_count == 0 and row.rating_count == 0
    assert [r for r in hook.learnsail_user_export(user_id=users.student.id, session=dbsession) if r] == []


# --- demo data ------------------------------------------------------------------

def test_demo_data_is_loaded_once_and_usable(app, dbsession, testapp):
    from learnsail.app import call_in_order

    registry = app.registry

    def load():
        return dict(call_in_order(registry["learnsail.pm"], "learnsail_demo_data", registry["learnsail.plugins"].order,
                                  session=dbsession, settings=registry.settings))["courses"]

    summary = load()
    assert "4 published courses" in summary and "demo_student" in summary
    assert load() is None
    dbsession.commit()
    listed = testapp.get("/api/v1/courses", params={"search": "机器学习"}).json
    assert [c["title"] for c in listed["results"]] == ["机器学习入门"]
    python = testapp.get("/api/v1/courses", params={"search": "Python 入门"}).json["results"][0]
    chapters = testapp.get(f"/api/v1/courses/{python['id']}/chapters").json
    assert len(chapters) == 2 and len(chapters[0]["lessons"]) == 2
