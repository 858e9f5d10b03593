"""Menus (004 §2.2.2 菜单管理): admin CRUD and the tree each caller sees."""

from __future__ import annotations

import sqlalchemy as sa

from learnsail.identity import rbac
from learnsail.identity.models import AuditEntry, Menu
from learnsail.testing import count_queries
from learnsail.testing.authz import ADMIN_ONLY, check_matrix
from learnsail.testing.identity import bearer

ADMIN = "/api/v1/admin/menus"
PUBLIC_MATRIX = {actor: 200 for actor in ADMIN_ONLY}


def envelope(response):
    return response.json["error"]


def add(clients, **body):
    return clients["admin"].post_json(ADMIN, body, status=201).json


def names(tree):
    return [(node["name"], names(node["children"])) if node["children"] else node["name"] for node in tree]


def test_admin_menu_endpoints_are_admin_only(testapp, actor_headers):
    made = check_matrix(testapp, actor_headers, "POST", ADMIN, {**ADMIN_ONLY, "admin": 201},
                        json=lambda actor: {"name": f"by {actor}"})
    menu_id = made["admin"].json["id"]
    check_matrix(testapp, actor_headers, "GET", ADMIN, ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "PUT", f"{ADMIN}/{menu_id}", ADMIN_ONLY, json={"sort_order": 3})
    check_matrix(testapp, actor_headers, "DELETE", f"{ADMIN}/{menu_id}", {**ADMIN_ONLY, "admin": 204})
    check_matrix(testapp, actor_headers, "GET", "/api/v1/menus", PUBLIC_MATRIX)


def test_create_update_and_list(clients, dbsession, users):
    parent = add(clients, name="学习中心", path="/learn", icon="book", sort_order=2)
    assert parent["is_active"] is True and parent["permission"] is None and parent["parent_id"] is None
    assert parent["created_at"].endswith("Z")
    child = add(clients, name="Audit", parent_id=parent["id"], permission="core:audit:view")
    r = clients["admin"].put_json(f"{ADMIN}/{child['id']}", {"name": "Audit log", "sort_order": -1})
    assert r.json["name"] == "Audit log" and r.json["sort_order"] == -1
    assert r.json["permission"] == "core:audit:view" and r.json["parent_id"] == parent["id"]
    listed = clients["admin"].get(ADMIN).json
    assert [m["id"] for m in listed if m["id"] in (parent["id"], child["id"])] == [child["id"], parent["id"]]
    actions = [e.action for e in dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.target_type == "menu")
                                                   .order_by(AuditEntry.id))]
    assert actions == ["core:menu:create", "core:menu:create", "core:menu:update"]
    entry = dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:menu:update")).one()
    assert entry.before["name"] == "Audit" and entry.after["name"] == "Audit log"
    assert entry.actor_id == users.admin.id


def test_bad_input_names_the_field_and_changes_nothing(clients, dbsession):
    before = dbsession.scalar(sa.select(sa.func.count()).select_from(Menu))
    err = envelope(clients["admin"].post_json(ADMIN, {}, status=400))
    assert set(err["details"]) == {"name"}
    err = envelope(clients["admin"].post_json(ADMIN, {"name": "x" * 51, "sort_order": "first",
                                                      "is_active": "maybe", "url": "/x"}, status=400))
    assert set(err["details"]) == {"name", "sort_order", "is_active", "url"}
    err = envelope(clients["admin"].post_json(ADMIN, {"name": "Ghost", "permission": "nope:nothing:here",
                                                      "parent_id": 999999}, status=400))
    assert set(err["details"]) == {"permission", "parent_id"}
    assert "nope:nothing:here" in err["details"]["permission"][0]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Menu)) == before
    clients["admin"].put_json(f"{ADMIN}/999999", {"name": "x"}, status=404)
    clients["admin"].delete(f"{ADMIN}/999999", status=404)
    err = envelope(clients["admin"].put_json(f"{ADMIN}/abc", {"name": "x"}, status=400))
    assert "id" in err["details"]


def test_nesting_cycles_are_refused(clients, dbsession):
    top = add(clients, name="Top")
    middle = add(clients, name="Middle", parent_id=top["id"])
    leaf = add(clients, name="Leaf", parent_id=middle["id"])
    for menu, parent in ((top, leaf["id"]), (middle, middle["id"])):
        err = envelope(clients["admin"].put_json(f"{ADMIN}/{menu['id']}", {"name": "moved",
                                                                           "parent_id": parent}, status=400))
        assert set(err["details"]) == {"parent_id"}
    dbsession.expire_all()
    assert dbsession.get(Menu, top["id"]).parent_id is None and dbsession.get(Menu, top["id"]).name == "Top"


def test_an_entry_with_children_cannot_be_deleted(clients, dbsession):
    top = add(clients, name="Top")
    leaf = add(clients, name="Leaf", parent_id=top["id"])
    err = envelope(clients["admin"].delete(f"{ADMIN}/{top['id']}", status=409))
    assert err["code"] == "CONFLICT" and err["details"]["children"] == 1
    clients["admin"].delete(f"{ADMIN}/{leaf['id']}", status=204)
    clients["admin"].delete(f"{ADMIN}/{top['id']}", status=204)
    assert dbsession.get(Menu, top["id"]) is None
    deleted = dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:menu:delete")
                                .order_by(AuditEntry.id)).all()
    assert [e.before["name"] for e in deleted] == ["Leaf", "Top"] and deleted[0].after is None


def test_each_caller_sees_the_tree_their_role_allows(clients, testapp, dbsession):
    home = add(clients, name="Home", path="/", sort_order=0)
    admin = add(clients, name="Admin", sort_order=9, permission="core:roles:view")
    add(clients, name="Roles", parent_id=admin["id"], permission="core:roles:manage", sort_order=1)
    add(clients, name="Audit", parent_id=admin["id"], sort_order=0)  # no permission, but under Admin
    account = add(clients, name="Account", sort_order=5, permission="core:account:self")
    add(clients, name="Profile", parent_id=account["id"], sort_order=2)
    add(clients, name="Security", parent_id=account["id"], sort_order=1)
    add(clients, name="Hidden", sort_order=1, is_active=False)
    hidden_parent = add(clients, name="Switched off", sort_order=1, is_active=False)
    add(clients, name="Orphaned child", parent_id=hidden_parent["id"])
    # an entry whose plugin was disabled: its permission is no longer declared
    dbsession.add(Menu(name="Gone plugin", permission="quiz:quiz:view", sort_order=3))
    dbsession.commit()

    assert names(testapp.get("/api/v1/menus").json) == ["Home"]
    student = clients["student"].get("/api/v1/menus").json
    assert names(student) == ["Home", ("Account", ["Security", "Profile"])]
    assert names(clients["teacher"].get("/api/v1/menus").json) == names(student)
    assert names(clients["admin"].get("/api/v1/menus").json) == [
        "Home", ("Account", ["Security", "Profile"]), ("Admin", ["Audit", "Roles"])]
    node = student[0]
    assert node == {**node, "id": home["id"], "path": "/", "parent_id": None, "children": []}


def test_granting_a_permission_shows_its_entries(clients, testapp, users, app):
    add(clients, name="Audit", permission="core:audit:view")
    auditor = clients["admin"].post_json("/api/v1/roles", {"name": "auditor"}, status=201).json
    clients["admin"].post_json(f"/api/v1/users/{users.teacher.id}/roles/{auditor['id']}", status=201)
    as_auditor = bearer(app.registry.settings, users.teacher, role="auditor")
    assert names(testapp.get("/api/v1/menus", headers=as_auditor).json) == []
    clients["admin"].put_json(f"/api/v1/roles/{auditor['id']}/permissions", {"permissions": ["core:audit:view"]})
    assert names(testapp.get("/api/v1/menus", headers=as_auditor).json) == ["Audit"]


def test_the_tree_costs_the_same_queries_whatever_its_size(clients, app, dbsession):
    engine = app.registry["learnsail.db_engine"]
    student = clients["student"]

    def grow(count):
        for i in range(count):
            parent = Menu(name=f"group {i}", sort_order=i, permission="core:account:self")
            dbsession.add(parent)
            dbsession.flush()
            dbsession.add_all(Menu(name=f"item {i}.{j}", parent_id=parent.id, sort_order=j) for j in range(3))
        dbsession.commit()

    def measure():
        # cold caches each time, so both sizes pay for the caller and their grants alike
        app.registry["learnsail.auth_cache"].clear()
        rbac.invalidate(app.registry)
        with count_queries(engine) as statements:
            tree = student.get("/api/v1/menus").json
        return tree, statements

    grow(2)
    small_tree, small = measure()
    grow(20)
    large_tree, large = measure()
    assert len(small_tree) == 2 and len(large_tree) == 22
    assert len(large) == len(small), (small, large)
    assert sum("FROM menus" in statement for statement in large) == 1
