"""The catalogue: GET /courses (filters, search, sort), /courses/hot and
GET /courses/{id}."""

from __future__ import annotations

import pytest

from courses_test_helpers import make_category, make_course, own_statements, published_course
from learnsail.testing import count_queries

URL = "/api/v1/courses"


def titles(response):
    return [c["title"] for c in response.json["results"]]


def test_only_published_courses_are_listed_with_000_fields(clients):
    teacher, admin = clients["teacher"], clients["admin"]
    published_course(teacher, admin, "Visible course", tags=["t1"])
    make_course(teacher, "Draft course")
    page = clients["anonymous"].get(URL)
    assert titles(page) == ["Visible course"]
    item = page.json["results"][0]
    assert {"id", "title", "cover_image_url", "teacher_name", "price", "rating", "student_count",
            "difficulty"} <= set(item)
    assert item["teacher_name"] == clients["teacher"].user.username and item["tags"] == ["t1"]
    # a teacher sees all their own; admins may ask for any status
    mine = teacher.get(URL, params={"teacher_id": teacher.user.id})
    assert set(titles(mine)) == {"Visible course", "Draft course"}
    assert titles(clients["other_teacher"].get(URL, params={"teacher_id": teacher.user.id})) == ["Visible course"]
    assert titles(admin.get(URL, params={"status": "draft"})) == ["Draft course"]
    assert titles(clients["student"].get(URL, params={"status": "draft"})) == ["Visible course"]


def test_filters(clients):
    teacher, admin = clients["teacher"], clients["admin"]
    root = make_category(admin)
    child = make_category(admin, parent_id=root["id"])
    other = make_category(admin)
    published_course(teacher, admin, "In child", category_id=child["id"], difficulty="advanced", price=50,
                     tags=["python", "web"])
    published_course(teacher, admin, "In root", category_id=root["id"], price=10, tags=["python"])
    published_course(teacher, admin, "Elsewhere", category_id=other["id"], price=0)
    anon = clients["anonymous"]
    assert set(titles(anon.get(URL, params={"category_id": root["id"]}))) == {"In child", "In root"}
    assert titles(anon.get(URL, params={"category_id": child["id"]})) == ["In child"]
    assert titles(anon.get(URL, params={"difficulty": "advanced"})) == ["In child"]
    assert set(titles(anon.get(URL, params={"price_min": 5, "price_max": 20}))) == {"In root"}
    assert titles(anon.get(URL, params={"tags": "python,web"})) == ["In child"]
    assert set(titles(anon.get(URL + "?tags=python"))) == {"In child", "In root"}
    assert titles(anon.get(URL, params={"is_free": "true"})) == ["Elsewhere"]
    assert titles(anon.get(URL, params={"sort": "price"})) == ["Elsewhere", "In root", "In child"]
    assert titles(anon.get(URL, params={"sort": "-price"})) == ["In child", "In root", "Elsewhere"]
    assert titles(anon.get(URL, params={"sort": "newest"}))[0] == "Elsewhere"


def test_bad_filters_are_validation_errors(clients):
    for params, field in (({"difficulty": "expert"}, "difficulty"), ({"sort": "random"}, "sort"),
                          ({"price_min": 9, "price_max": 1}, "price_min"), ({"category_id": "x"}, "category_id"),
                          ({"page": 0}, "page")):
        r = clients["anonymous"].get(URL, params=params, status=400)
        assert r.json["error"]["code"] == "VALIDATION_ERROR" and field in r.json["error"]["details"]


def test_search_finds_chinese_and_latin_words(clients):
    teacher, admin = clients["teacher"], clients["admin"]
    published_course(teacher, admin, "机器学习实战", description="从线性回归到神经网络")
    published_course(teacher, admin, "Web development", description="HTML, CSS and 100% JavaScript")
    anon = clients["anonymous"]
    assert titles(anon.get(URL, params={"search": "机器学习"})) == ["机器学习实战"]
    assert titles(anon.get(URL, params={"search": "神经网络"})) == ["机器学习实战"]
    assert titles(anon.get(URL, params={"search": "javascript"})) == ["Web development"]
    assert titles(anon.get(URL, params={"search": "web css"})) == ["Web development"]
    assert titles(anon.get(URL, params={"search": "100%"})) == ["Web development"]
    assert titles(anon.get(URL, params={"search": "化学"})) == []


def test_popular_and_rating_sorts(clients, dbsession):
    from learnsail_courses.models import Course

    teacher, admin = clients["teacher"], clients["admin"]
    a, _, _ = published_course(teacher, admin, "A")
    b, _, _ = published_course(teacher, admin, "B")
    row_a, row_b = dbsession.get(Course, a["id"]), dbsession.get(Course, b["id"])
    row_a.student_count, row_b.student_count = 5, 1
    row_a.rating, row_b.rating = 3, 4.5
    dbsession.commit()
    assert titles(clients["anonymous"].get(URL, params={"sort": "popular"})) == ["A", "B"]
    assert titles(clients["anonymous"].get(URL, params={"sort": "rating"})) == ["B", "A"]
    hot = clients["anonymous"].get(URL + "/hot", params={"limit": 1}).json
    assert [c["title"] for c in hot] == ["A"]


def test_detail_has_teacher_category_tags_and_enrolment(clients):
    teacher, admin = clients["teacher"], clients["admin"]
    category = make_category(admin, "Detail category")
    course, _, _ = published_course(teacher, admin, "Detailed", category_id=category["id"], tags=["x", "y"])
    anon = clients["anonymous"].get(f"{URL}/{course['id']}").json
    assert {"id", "title", "description", "cover_image_url", "teacher", "category", "difficulty", "price",
            "duration", "created_at", "updated_at", "status", "student_count", "rating", "rating_count", "tags",
            "is_enrolled"} <= set(anon)
    assert anon["teacher"]["id"] == teacher.user.id and set(anon["teacher"]) == {"id", "name", "avatar_url", "bio"}
    assert anon["category"] == {"id": category["id"], "name": "Detail category"}
    assert anon["tags"] == ["x", "y"] and anon["is_enrolled"] is False and anon["progress"] is None
    assert anon["duration"] == 20
    clients["student"].post_json(f"{URL}/{course['id']}/enroll", {}, status=201)
    mine = clients["student"].get(f"{URL}/{course['id']}").json
    assert mine["is_enrolled"] is True and mine["progress"]["progress_percent"] == 0
    assert mine["student_count"] == 1


def test_draft_is_404_for_students_and_other_teachers(clients):
    course = make_course(clients["teacher"])
    for actor in ("anonymous", "student", "other_teacher"):
        r = clients[actor].get(f"{URL}/{course['id']}", status=404)
        assert r.json["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert clients["teacher"].get(f"{URL}/{course['id']}").json["status"] == "draft"
    clients["admin"].get(f"{URL}/{course['id']}", status=200)
    clients["anonymous"].get(f"{URL}/999999", status=404)


def test_catalogue_and_detail_issue_constant_queries(clients, db_connection):
    teacher, admin, student = clients["teacher"], clients["admin"], clients["student"]
    category = make_category(admin)

    def queries(url, params=None) -> int:
        student.get(url, params=params)
        with count_queries(db_connection.engine) as statements:
            student.get(url, params=params)
        return len(own_statements(statements))

    first, _, _ = published_course(teacher, admin, category_id=category["id"], tags=["a"])
    student.post_json(f"{URL}/{first['id']}/enroll", {})
    params = {"page_size": 100, "category_id": category["id"], "search": "Course"}
    list_one, detail_one = queries(URL, params), queries(f"{URL}/{first['id']}")
    for n in range(6):
        published_course(clients["other_teacher" if n % 2 else "teacher"], admin, category_id=category["id"],
                         tags=[f"t{n}", "a"])
    assert queries(URL, params) == list_one
    assert queries(f"{URL}/{first['id']}") == detail_one


def test_cached_detail_is_fresh_after_changes_and_never_leaks_drafts(clients, db_connection):
    teacher, admin = clients["teacher"], clients["admin"]
    course, chapter, _ = published_course(teacher, admin, "Cached")
    url = f"{URL}/{course['id']}"
    anon = clients["anonymous"]
    anon.get(url)
    with count_queries(db_connection.engine) as statements:
        assert anon.get(url).json["title"] == "Cached"
    assert statements == []  # served from the cache
    teacher.put_json(url, {"title": "Cached, renamed"})
    assert anon.get(url).json["title"] == "Cached, renamed"
    clients["student"].post_json(f"{URL}/{course['id']}/enroll", {}, status=201)
    assert anon.get(url).json["student_count"] == 1
    teacher.post_json(f"/api/v1/chapters/{chapter['id']}/lessons", {"title": "More", "duration": 600},
                      status=201)
    assert anon.get(url).json["duration"] == 30
    # a draft cached for its teacher stays a 404 for students
    draft = make_course(teacher, "Cached draft")
    teacher.get(f"{URL}/{draft['id']}", status=200)
    clients["other_student"].get(f"{URL}/{draft['id']}", status=404)
    anon.get(f"{URL}/{draft['id']}", status=404)


def test_mysql_search_uses_the_ngram_fulltext_index():
    """MySQL is not on this machine: check the SQL the MySQL dialect gets."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql

    from learnsail_courses.models import Course
    from learnsail_courses.search import search_condition

    stmt = sa.select(Course.id).where(search_condition('机器学习 "web" x', fulltext=True))
    compiled = stmt.compile(dialect=mysql.dialect())
    sql = str(compiled)
    assert "MATCH (courses_courses.title, courses_courses.description) AGAINST (%s IN BOOLEAN MODE)" in sql
    assert '+"机器学习" +" web "' in compiled.params.values()
    assert "LIKE" in sql  # the one-character word
    assert "MATCH" not in str(sa.select(Course.id).where(search_condition("web", fulltext=False))
                              .compile(dialect=mysql.dialect()))


def test_public_counts_are_cached_and_dropped_when_the_catalogue_changes(clients, db_connection):
    teacher, admin, anon = clients["teacher"], clients["admin"], clients["anonymous"]
    published_course(teacher, admin, "Counted one")
    before = anon.get(URL).json["count"]
    with count_queries(db_connection.engine) as statements:
        page = anon.get(URL).json
    assert page["count"] == before
    assert len(statements) == 1 and "count(" not in statements[0].lower()  # the page only
    # publishing, unpublishing and deleting show at once
    course, _, _ = published_course(teacher, admin, "Counted two")
    assert anon.get(URL).json["count"] == before + 1
    teacher.put_json(f"{URL}/{course['id']}", {"status": "draft"}, status=200)
    assert anon.get(URL).json["count"] == before
    # a teacher's own list (every status) is counted each time, never cached
    own = teacher.get(URL, params={"teacher_id": teacher.user.id}).json["count"]
    make_course(teacher, "Counted draft")
    assert teacher.get(URL, params={"teacher_id": teacher.user.id}).json["count"] == own + 1
    # filters have counts of their own
    assert anon.get(URL, params={"search": "Counted"}).json["count"] == 1


@pytest.mark.parametrize("sort", ["newest", "price", "-price", "popular"])
def test_paging_through_the_catalogue_sees_every_course_once_in_order(clients, db_connection, sort):
    teacher, admin, anon = clients["teacher"], clients["admin"], clients["anonymous"]
    for n in range(7):
        published_course(teacher, admin, f"Paged {n}", price=[0, 30, 30, 10, 99, 0, 30][n])
    expected = [c["id"] for c in anon.get(URL, params={"sort": sort, "page_size": 100}).json["results"]]
    seen = []
    for page in range(1, 20):
        body = anon.get(URL, params={"sort": sort, "page_size": 2, "page": page}).json
        seen += [c["id"] for c in body["results"]]
        if body["next"] is None:
            break
    assert seen == expected
    # the same deep page again seeks from the row before it (every seek
    # ends on "id < the anchor's id") instead of skipping rows
    with count_queries(db_connection.engine) as statements:
        again = anon.get(URL, params={"sort": sort, "page_size": 2, "page": 3}).json
    assert [c["id"] for c in again["results"]] == expected[4:6]
    seeks = any("courses_courses.id < " in s for s in statements)
    assert seeks is (sort != "popular")  # student counts move without a catalogue change: popular skips
    # a new course shows at once and the pages stay right
    published_course(teacher, admin, "Paged new", price=5)
    expected = [c["id"] for c in anon.get(URL, params={"sort": sort, "page_size": 100}).json["results"]]
    got = [c["id"] for p in (1, 2, 3, 4, 5)
           for c in anon.get(URL, params={"sort": sort, "page_size": 2, "page": p}).json["results"]]
    assert got == expected[:10]
