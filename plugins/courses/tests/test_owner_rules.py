"""Owner rules of the routes no other test put through a matrix: a course
that is not published is 404 on every route that reads it for everyone
but its teacher and course managers; only a course's teacher (or a course
manager) changes it; notes are private; validity windows are the course
managers'."""

from __future__ import annotations

import pytest

from courses_test_helpers import add_chapter, add_lesson, make_course, published_course
from learnsail.testing.authz import ADMIN_ONLY, check_matrix

#: the course's teacher and course managers; 404 for everyone else
OWNERS_SEE = {"anonymous": 404, "student": 404, "other_student": 404, "other_teacher": 404, "teacher": 200,
              "admin": 200}
#: the same on a route that needs a signed-in learner
OWNERS_SEE_SIGNED_IN = {**OWNERS_SEE, "anonymous": 401}
#: only the course's teacher and course managers change it
OWNERS_EDIT = {"anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403, "teacher": 200,
               "admin": 200}


@pytest.fixture
def draft(clients):
    """A course in review (not published) with a chapter and a lesson."""
    teacher = clients["teacher"]
    course = make_course(teacher, title="Not out yet")
    chapter = add_chapter(teacher, course["id"])
    lesson = add_lesson(teacher, chapter["id"], duration=60, is_free=True)
    teacher.put_json(f"/api/v1/courses/{course['id']}", {"status": "reviewing"}, status=200)
    return course, chapter, lesson


@pytest.mark.parametrize("url,expected", [
    ("/api/v1/courses/{course}", OWNERS_SEE),
    ("/api/v1/courses/{course}/chapters", OWNERS_SEE),
    ("/api/v1/chapters/{chapter}/lessons", OWNERS_SEE),
    ("/api/v1/courses/{course}/comments", OWNERS_SEE),
    ("/api/v1/lessons/{lesson}", OWNERS_SEE_SIGNED_IN),
    ("/api/v1/lessons/{lesson}/notes", OWNERS_SEE_SIGNED_IN),
])
def test_a_course_not_published_is_read_only_by_its_owners(testapp, actor_headers, draft, url, expected):
    course, chapter, lesson = draft
    check_matrix(testapp, actor_headers, "GET", url.format(course=course["id"], chapter=chapter["id"],
                                                            lesson=lesson["id"]), expected)


def test_a_course_not_published_takes_nothing_from_outsiders(testapp, actor_headers, clients, draft):
    course, _, lesson = draft
    outsiders = {"anonymous": 401, "student": 404, "other_student": 404, "other_teacher": 404}

    def matrix(owners):
        return {**outsiders, **owners}

    check_matrix(testapp, actor_headers, "POST", f"/api/v1/courses/{course['id']}/comments",
                 matrix({"teacher": 201, "admin": 201}), json={"content": "Hello"})
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/lessons/{lesson['id']}/progress",
                 matrix({"teacher": 200, "admin": 200}), json={"progress_percent": 10})
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/lessons/{lesson['id']}/notes",
                 matrix({"teacher": 201, "admin": 201}), json={"content": "n"})
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/users/courses/{course['id']}/collect",
                 matrix({"teacher": 200, "admin": 200}))
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/courses/{course['id']}/enroll",
                 matrix({"teacher": 400, "admin": 400}), json={})
    comment = clients["teacher"].post_json(f"/api/v1/courses/{course['id']}/comments", {"content": "c"},
                                           status=201).json
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/comments/{comment['id']}/like",
                 matrix({"teacher": 200, "admin": 200}))
    # the catalogue: not for others, whatever they ask
    for client in ("anonymous", "student", "other_teacher"):
        for params in ({}, {"status": "reviewing"}, {"teacher_id": clients["teacher"].user.id},
                       {"search": "Not out yet"}):
            assert clients[client].get("/api/v1/courses", params=params).json["count"] == 0, (client, params)
        assert clients[client].get("/api/v1/courses/hot").json == []


def test_only_its_teacher_reorders_deletes_and_sees_figures(testapp, actor_headers, clients):
    course, chapter, lessons = published_course(clients["teacher"], clients["admin"])
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/courses/{course['id']}/chapters/order", OWNERS_EDIT,
                 json={"ids": [chapter["id"]]})
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/chapters/{chapter['id']}/lessons/order", OWNERS_EDIT,
                 json={"ids": [x["id"] for x in reversed(lessons)]})
    spare = add_chapter(clients["teacher"], course["id"])
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/chapters/{spare['id']}",
                 {"anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403, "teacher": 204,
                  "admin": 404})
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/courses/{course['id']}",
                 {"anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403, "teacher": 204,
                  "admin": 404})
    other, _, _ = published_course(clients["teacher"], clients["admin"])
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/courses/{other['id']}",
                 {"anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403, "admin": 204,
                  "teacher": 404})


def test_validity_windows_are_the_course_managers(testapp, actor_headers, clients, users):
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    clients["student"].post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/courses/{course['id']}/students/{users.student.id}",
                 ADMIN_ONLY, json={"valid_until": None})


def test_notes_and_course_progress_are_private(testapp, actor_headers, clients):
    course, _, (lesson, _) = published_course(clients["teacher"], clients["admin"])
    student = clients["student"]
    student.post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    note = student.post_json(f"/api/v1/lessons/{lesson['id']}/notes", {"content": "mine"}, status=201).json
    others = {"anonymous": 401, "other_student": 404, "teacher": 404, "other_teacher": 404, "admin": 404}
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/notes/{note['id']}", {**others, "student": 200},
                 json={"content": "changed"})
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/notes/{note['id']}", {**others, "student": 204})
    # a lesson's notes list is the caller's own
    for actor in ("other_student", "teacher", "admin"):
        assert clients[actor].get(f"/api/v1/lessons/{lesson['id']}/notes").json == []
    check_matrix(testapp, actor_headers, "GET", f"/api/v1/users/courses/{course['id']}/progress",
                 {"anonymous": 401, "other_student": 404, "other_teacher": 404, "student": 200,
                  "teacher": 404, "admin": 404})


def test_tags_are_changed_by_tag_managers(testapp, actor_headers, clients):
    tag = clients["admin"].post_json("/api/v1/tags", {"tags": [{"name": "owned"}]}, status=201).json[0]
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/tags/{tag['id']}", ADMIN_ONLY, json={"colour": "#000000"})
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/tags?ids={tag['id']}", {**ADMIN_ONLY, "admin": 204})


def test_a_hidden_or_unapproved_comment_is_404_but_for_its_author_and_moderators(testapp, actor_headers, clients):
    """Liking (or replying to) a comment by its id worked on hidden and
    unapproved comments, which the list never shows: their like counts, and
    that they exist, reached anyone who guessed the id."""
    course, _, _ = published_course(clients["teacher"], clients["admin"])
    url = f"/api/v1/courses/{course['id']}/comments"
    hidden = clients["student"].post_json(url, {"content": "rude"}, status=201).json
    clients["admin"].put_json(f"/api/v1/comments/{hidden['id']}/moderation", {"is_hidden": True}, status=200)
    waiting = clients["student"].post_json(url, {"content": "new"}, status=201).json
    clients["admin"].put_json(f"/api/v1/comments/{waiting['id']}/moderation", {"is_approved": False}, status=200)
    others = {"anonymous": 401, "other_student": 404, "teacher": 404, "other_teacher": 404, "admin": 200}
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/comments/{hidden['id']}/like", {**others, "student": 404})
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/comments/{waiting['id']}/like", {**others, "student": 200})
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/comments/{waiting['id']}/like",
                 {**others, "student": 200})
    r = clients["other_student"].post_json(url, {"content": "me too", "parent_id": waiting["id"]}, status=400)
    assert "parent_id" in r.json["error"]["details"]
    clients["student"].post_json(url, {"content": "reply to mine", "parent_id": waiting["id"]}, status=201)


def test_the_lesson_list_gives_resource_urls_to_those_who_may_study_them(clients):
    """The chapter's lesson list answered the resource_url of free and trial
    lessons to anonymous callers, who may not study them (GET /lessons/{id}
    is 401 for them), and withheld it for the lessons of a free chapter,
    which every signed-in caller may study: it now follows the same rule as
    the lesson itself."""
    teacher = clients["teacher"]
    course = make_course(teacher, price=50)
    paid_chapter = add_chapter(teacher, course["id"])
    free_chapter = add_chapter(teacher, course["id"], is_free=True)
    url = "https://cdn.example/{}.pdf"
    free = add_lesson(teacher, paid_chapter["id"], is_free=True, resource_url=url.format("free"))
    trial = add_lesson(teacher, paid_chapter["id"], is_trial=True, resource_url=url.format("trial"))
    locked = add_lesson(teacher, paid_chapter["id"], resource_url=url.format("locked"))
    opened = add_lesson(teacher, free_chapter["id"], resource_url=url.format("opened"))
    teacher.put_json(f"/api/v1/courses/{course['id']}", {"status": "reviewing"}, status=200)
    clients["admin"].put_json(f"/api/v1/courses/{course['id']}/review", {"status": "published"}, status=200)

    def urls(client, chapter):
        return {x["id"]: x["resource_url"] for x in client.get(f"/api/v1/chapters/{chapter['id']}/lessons").json}

    def detail(client, lesson):
        return client.get(f"/api/v1/lessons/{lesson['id']}").json["resource_url"]

    assert urls(clients["anonymous"], paid_chapter) == {free["id"]: None, trial["id"]: None, locked["id"]: None}
    assert urls(clients["anonymous"], free_chapter) == {opened["id"]: None}
    student = clients["student"]
    assert urls(student, paid_chapter) == {free["id"]: url.format("free"), trial["id"]: url.format("trial"),
                                           locked["id"]: None}
    assert urls(student, free_chapter) == {opened["id"]: url.format("opened")}
    for lesson in (free, trial, locked, opened):  # the list agrees with the lesson itself
        assert detail(student, lesson) == (None if lesson is locked else lesson["resource_url"])
    assert urls(teacher, paid_chapter)[locked["id"]] == url.format("locked")
