"""Categories (a tree) and tags."""

from __future__ import annotations

import sqlalchemy as sa

from courses_test_helpers import make_category, make_course, own_statements, published_course
from learnsail.testing.authz import ADMIN_ONLY, check_matrix
from learnsail_courses.models import Category, Tag

URL = "/api/v1/categories"


def test_create_category_answers_201_with_000_fields(clients):
    r = clients["admin"].post_json(URL, {"name": "编程", "description": "Programming", "sort_order": 2},
                                   status=201)
    body = r.json
    assert {"id", "name", "parent_id", "description", "sort_order", "created_at"} <= set(body)
    assert body["name"] == "编程" and body["parent_id"] is None and body["sort_order"] == 2
    assert body["level"] == 1 and body["path"] == f"/{body['id']}/"


def test_tree_lists_roots_with_nested_children_and_counts(clients):
    admin = clients["admin"]
    root = make_category(admin, "Root A", sort_order=1)
    child = make_category(admin, "Child A1", parent_id=root["id"])
    grandchild = make_category(admin, "Grandchild", parent_id=child["id"])
    assert grandchild["level"] == 3 and grandchild["path"] == f"/{root['id']}/{child['id']}/{grandchild['id']}/"
    make_category(admin, "Root B", sort_order=2)
    page = clients["anonymous"].get(URL).json
    assert set(page) == {"count", "next", "previous", "results"}
    assert [c["name"] for c in page["results"]] == ["Root A", "Root B"]
    (kid,) = page["results"][0]["children"]
    assert kid["name"] == "Child A1" and kid["children"][0]["name"] == "Grandchild"
    assert page["results"][0]["course_count"] == 0
    under = clients["anonymous"].get(URL, params={"parent_id": root["id"]}).json
    assert [c["id"] for c in under["results"]] == [child["id"]]


def test_inactive_categories_are_hidden_from_the_public(clients):
    admin = clients["admin"]
    make_category(admin, "Hidden one", is_active=False)
    assert "Hidden one" not in [c["name"] for c in clients["student"].get(URL).json["results"]]
    assert "Hidden one" not in [c["name"] for c in clients["student"].get(
        URL, params={"include_inactive": "true"}).json["results"]]
    assert "Hidden one" in [c["name"] for c in admin.get(URL, params={"include_inactive": "true"}).json["results"]]


def test_only_category_managers_write(testapp, actor_headers, clients):
    check_matrix(testapp, actor_headers, "POST", URL, {**ADMIN_ONLY, "admin": 201},
                 json=lambda actor: {"name": f"By {actor}"})
    target = make_category(clients["admin"])
    check_matrix(testapp, actor_headers, "PUT", f"{URL}/{target['id']}", ADMIN_ONLY,
                 json={"description": "changed"})
    check_matrix(testapp, actor_headers, "DELETE", f"{URL}/{target['id']}", {**ADMIN_ONLY, "admin": 204})


def test_bad_input_is_a_validation_error_and_changes_nothing(clients, dbsession):
    admin = clients["admin"]
    before = dbsession.scalar(sa.select(sa.func.count()).select_from(Category))
    r = admin.post_json(URL, {"name": "", "parent_id": 0, "colour": "x"}, status=400)
    assert {"name", "parent_id", "colour"} <= set(r.json["error"]["details"])
    r = admin.post_json(URL, {"name": "Orphan", "parent_id": 999999}, status=400)
    assert "parent_id" in r.json["error"]["details"]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Category)) == before


def test_duplicate_name_is_a_conflict(clients):
    make_category(clients["admin"], "Unique name")
    r = clients["admin"].post_json(URL, {"name": "Unique name"}, status=409)
    assert r.json["error"]["code"] == "CONFLICT" and "name" in r.json["error"]["details"]


def test_moving_a_category_moves_its_subtree(clients):
    admin = clients["admin"]
    a = make_category(admin, "Move A")
    b = make_category(admin, "Move B")
    child = make_category(admin, "Move child", parent_id=a["id"])
    leaf = make_category(admin, "Move leaf", parent_id=child["id"])
    r = admin.put_json(f"{URL}/{child['id']}", {"parent_id": b["id"]}, status=200).json
    assert r["parent_id"] == b["id"] and r["path"] == f"/{b['id']}/{child['id']}/" and r["level"] == 2
    tree = admin.get(URL, params={"parent_id": child["id"]}).json["results"]
    assert tree[0]["id"] == leaf["id"] and tree[0]["path"] == f"/{b['id']}/{child['id']}/{leaf['id']}/"
    # never under itself or its own descendants
    r = admin.put_json(f"{URL}/{child['id']}", {"parent_id": leaf["id"]}, status=400)
    assert "parent_id" in r.json["error"]["details"]
    admin.put_json(f"{URL}/{child['id']}", {"parent_id": None}, status=200)


def test_delete_is_refused_while_children_or_courses_exist(clients):
    admin = clients["admin"]
    parent = make_category(admin)
    child = make_category(admin, parent_id=parent["id"])
    r = admin.delete(f"{URL}/{parent['id']}", status=409)
    assert r.json["error"]["code"] == "CONFLICT" and r.json["error"]["details"]["children"] == 1
    make_course(clients["teacher"], category_id=child["id"])
    r = admin.delete(f"{URL}/{child['id']}", status=409)
    assert r.json["error"]["details"]["courses"] == 1
    lonely = make_category(admin)
    admin.delete(f"{URL}/{lonely['id']}", status=204)
    admin.delete(f"{URL}/{lonely['id']}", status=404)


def test_tree_listing_issues_constant_queries(app, clients, db_connection):
    from learnsail.testing import count_queries

    admin = clients["admin"]

    def queries() -> int:
        clients["student"].get(URL)
        with count_queries(db_connection.engine) as statements:
            clients["student"].get(URL, params={"page_size": 100})
        return len(own_statements(statements))

    root = make_category(admin)
    one = queries()
    for _ in range(5):
        make_category(admin, parent_id=make_category(admin, parent_id=root["id"])["id"])
    assert queries() == one


# --- tags ------------------------------------------------------------------------

def test_tags_batch_create_list_update_delete(clients, dbsession):
    admin = clients["admin"]
    made = admin.post_json("/api/v1/tags", {"tags": [{"name": "Python", "type": "skill", "colour": "#3366ff"},
                                                     {"name": "入门", "type": "level"}]}, status=201).json
    assert [t["name"] for t in made] == ["Python", "入门"] and made[0]["colour"] == "#3366ff"
    assert [t["name"] for t in clients["anonymous"].get("/api/v1/tags", params={"type": "level"}).json] == ["入门"]
    r = admin.post_json("/api/v1/tags", {"tags": [{"name": "Go"}, {"name": "Python"}]}, status=409)
    assert r.json["error"]["details"]["names"] == ["Python"]
    assert dbsession.scalar(sa.select(Tag.id).where(Tag.name == "Go")) is None  # nothing created
    admin.post_json("/api/v1/tags", {"tags": [{"name": "Bad", "colour": "blue"}]}, status=400)
    renamed = admin.put_json(f"/api/v1/tags/{made[0]['id']}", {"name": "Python 3"}, status=200).json
    assert renamed["name"] == "Python 3"
    r = admin.delete(f"/api/v1/tags?ids={made[0]['id']},999999", status=404)
    assert r.json["error"]["details"]["ids"] == [999999]
    admin.delete(f"/api/v1/tags?ids={made[0]['id']},{made[1]['id']}", status=204)
    assert clients["anonymous"].get("/api/v1/tags").json == []


def test_tags_are_admin_only(testapp, actor_headers):
    check_matrix(testapp, actor_headers, "POST", "/api/v1/tags", {**ADMIN_ONLY, "admin": 201},
                 json={"tags": [{"name": "matrix"}]})


def test_course_tags_map_to_tag_rows(clients, dbsession):
    course = make_course(clients["teacher"], tags=["数据", "AI", "数据"])
    assert course["tags"] == ["AI", "数据"]
    assert set(dbsession.scalars(sa.select(Tag.name))) >= {"AI", "数据"}
    updated = clients["teacher"].put_json(f"/api/v1/courses/{course['id']}", {"tags": ["AI"]}).json
    assert updated["tags"] == ["AI"]


def test_renaming_or_deleting_a_tag_shows_on_every_course_carrying_it(clients):
    teacher, admin, anon = clients["teacher"], clients["admin"], clients["anonymous"]
    course, _, _ = published_course(teacher, admin, "Tagged course", tags=["Rename me", "Keep"])
    tag_id = next(t["id"] for t in anon.get("/api/v1/tags").json if t["name"] == "Rename me")
    admin.put_json(f"/api/v1/tags/{tag_id}", {"name": "Renamed"}, status=200)
    card = next(c for c in anon.get("/api/v1/courses", params={"search": "Tagged"}).json["results"])
    assert card["tags"] == ["Keep", "Renamed"]
    assert anon.get(f"/api/v1/courses/{course['id']}").json["tags"] == ["Keep", "Renamed"]
    assert [c["id"] for c in anon.get("/api/v1/courses", params={"tags": "Renamed"}).json["results"]] \
        == [course["id"]]
    admin.delete(f"/api/v1/tags?ids={tag_id}", status=204)
    assert anon.get(f"/api/v1/courses/{course['id']}").json["tags"] == ["Keep"]
    assert anon.get("/api/v1/courses", params={"tags": "Renamed"}).json["count"] == 0
