"""Roles, grants, inheritance, who holds which identity, identity switch
(000 §六 角色权限管理API, 004 §2.2.2, 003 身份切换)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from learnsail.errors import Conflict, ValidationFailed
from learnsail.identity import rbac
from learnsail.identity.models import AuditEntry, RefreshToken, Role, User
from learnsail.testing.authz import ADMIN_ONLY, SIGNED_IN, check_matrix
from learnsail.testing.identity import bearer
from learnsail.testing import count_queries

AUDIT = "/api/v1/admin/audit-log"


def envelope(response):
    body = response.json
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def role_id(dbsession, name):
    return dbsession.scalar(sa.select(Role.id).where(Role.name == name))


def audit_entries(dbsession, action, target_id=None):
    stmt = sa.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
    if target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == str(target_id))
    dbsession.expire_all()
    return list(dbsession.scalars(stmt))


def create_role(clients, **body):
    return clients["admin"].post_json("/api/v1/roles", body, status=201).json


# --- who may call what ---------------------------------------------------------------

def test_every_role_endpoint_is_admin_only(testapp, actor_headers, users, dbsession, make_user):
    def new_role(actor):
        return {"name": f"made_by_{actor}", "permissions": ["core:audit:view"]}

    created = check_matrix(testapp, actor_headers, "POST", "/api/v1/roles", {**ADMIN_ONLY, "admin": 201},
                           json=new_role)
    rid = created["admin"].json["id"]
    check_matrix(testapp, actor_headers, "GET", "/api/v1/roles", ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "GET", f"/api/v1/roles/{rid}", ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "GET", "/api/v1/permissions", ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/roles/{rid}", ADMIN_ONLY,
                 json={"description": "changed"})
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/roles/{rid}/permissions", ADMIN_ONLY,
                 json={"permissions": []})
    student = make_user("student").id  # not an actor: a new role would end its tokens
    check_matrix(testapp, actor_headers, "GET", f"/api/v1/users/{student}/roles", ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "POST", f"/api/v1/users/{student}/roles/{rid}",
                 {**ADMIN_ONLY, "admin": 201})
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/users/{student}/roles/{rid}",
                 {**ADMIN_ONLY, "admin": 204})
    check_matrix(testapp, actor_headers, "PUT", f"/api/v1/users/{student}/role", ADMIN_ONLY,
                 json={"role_id": role_id(dbsession, "teacher")})
    check_matrix(testapp, actor_headers, "DELETE", f"/api/v1/roles/{rid}", {**ADMIN_ONLY, "admin": 204})
    # nobody but the admin changed anything
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Role)
                            .where(Role.name.like("made_by_%"))) == 0
    assert [e.actor_id for e in audit_entries(dbsession, "core:role:create")] == [users.admin.id]


def test_identity_endpoints_serve_every_signed_in_caller(testapp, actor_headers, users):
    check_matrix(testapp, actor_headers, "GET", "/api/v1/users/identities", SIGNED_IN)
    check_matrix(testapp, actor_headers, "POST", "/api/v1/users/identity/switch", SIGNED_IN,
                 json=lambda actor: {"role": users[actor].role.name if actor in users else "student"})


# --- roles --------------------------------------------------------------------------

def test_list_roles_shows_builtins_with_permissions_and_parent(clients):
    listed = {r["name"]: r for r in clients["admin"].get("/api/v1/roles").json}
    assert {"admin", "teacher", "student"} <= set(listed)
    for name in ("admin", "teacher", "student"):
        assert listed[name]["is_builtin"] is True
        assert {"id", "name", "description", "permissions", "parent_id", "parent"} <= set(listed[name])
    assert "core:identity:switch" in listed["student"]["default_permissions"]
    assert "core:roles:manage" not in listed["teacher"]["effective_permissions"]
    everything = {p["name"] for p in clients["admin"].get("/api/v1/permissions").json}
    assert set(listed["admin"]["effective_permissions"]) == everything


def test_create_role_and_read_it_back(clients, dbsession, users):
    parent = create_role(clients, name="reviewer", description="Reviews things")
    body = create_role(clients, name="senior_reviewer", description="复审", parent_id=parent["id"],
                       permissions=["core:audit:view", "core:plugins:view", "core:audit:view"])
    assert body["name"] == "senior_reviewer" and body["description"] == "复审"
    assert body["permissions"] == ["core:audit:view", "core:plugins:view"]
    assert body["parent_id"] == parent["id"] and body["parent"] == "reviewer"
    assert body["created_at"].endswith("Z") and body["is_builtin"] is False
    assert clients["admin"].get(f"/api/v1/roles/{body['id']}").json == body
    assert body in clients["admin"].get("/api/v1/roles").json
    (entry,) = audit_entries(dbsession, "core:role:create", body["id"])
    assert entry.actor_id == users.admin.id and entry.ip == "127.0.0.1" and entry.before is None
    assert entry.after == {"id": body["id"], "name": "senior_reviewer", "description": "复审",
                           "parent_id": parent["id"], "permissions": ["core:audit:view", "core:plugins:view"]}


def test_duplicate_role_name_is_a_conflict_naming_name(clients, dbsession):
    create_role(clients, name="Mentor")
    before = dbsession.scalar(sa.select(sa.func.count()).select_from(Role))
    for name in ("Mentor", "mentor", "student"):
        err = envelope(clients["admin"].post_json("/api/v1/roles", {"name": name}, status=409))
        assert err["code"] == "CONFLICT" and "name" in err["details"]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Role)) == before


def test_undeclared_permission_is_refused_by_name_and_nothing_changes(clients, dbsession):
    r = clients["admin"].post_json("/api/v1/roles", {"name": "ghost", "permissions": [
        "core:audit:view", "courses:course:teleport"]}, status=400)
    err = envelope(r)
    assert err["code"] == "VALIDATION_ERROR"
    assert list(err["details"]) == ["permissions"]
    assert "courses:course:teleport" in err["details"]["permissions"][0]
    assert role_id(dbsession, "ghost") is None
    assert audit_entries(dbsession, "core:role:create") == []


def test_validation_errors_name_each_field(clients):
    err = envelope(clients["admin"].post_json("/api/v1/roles", {}, status=400))
    assert set(err["details"]) == {"name"}
    err = envelope(clients["admin"].post_json("/api/v1/roles", {
        "name": "x" * 31, "parent_id": "first", "permissions": "core:audit:view", "colour": "red"}, status=400))
    assert set(err["details"]) == {"name", "parent_id", "permissions", "colour"}
    err = envelope(clients["admin"].post_json("/api/v1/roles", {"name": "two words"}, status=400))
    assert set(err["details"]) == {"name"}
    err = envelope(clients["admin"].post_json("/api/v1/roles", {"name": "orphan", "parent_id": 999999},
                                              status=400))
    assert set(err["details"]) == {"parent_id"}
    err = envelope(clients["admin"].put_json("/api/v1/roles/abc", {"description": "x"}, status=400))
    assert "id" in err["details"]
    err = envelope(clients["admin"].put_json("/api/v1/users/1/role", {"role_id": "teacher"}, status=400))
    assert set(err["details"]) == {"role_id"}
    err = envelope(clients["admin"].post_json("/api/v1/users/identity/switch", {}, status=400))
    assert set(err["details"]) == {"role"}


def test_unknown_ids_answer_404(clients, users):
    admin = clients["admin"]
    for method, url, body in (
        ("get", "/api/v1/roles/999999", None),
        ("put_json", "/api/v1/roles/999999", {"description": "x"}),
        ("put_json", "/api/v1/roles/999999/permissions", {"permissions": []}),
        ("delete", "/api/v1/roles/999999", None),
        ("put_json", "/api/v1/users/999999/role", {"role_id": 1}),
        ("get", "/api/v1/users/999999/roles", None),
        ("post_json", f"/api/v1/users/{users.student.id}/roles/999999", None),
        ("post_json", "/api/v1/users/999999/roles/1", None),
        ("delete", f"/api/v1/users/{users.student.id}/roles/999999", None),
    ):
        kwargs = {"status": 404}
        if body is not None:
            kwargs["params"] = body
        assert envelope(getattr(admin, method)(url, **kwargs))["code"] == "RESOURCE_NOT_FOUND"


def test_update_role_renames_reparents_and_audits(clients, dbsession, users):
    base = create_role(clients, name="base")
    made = create_role(clients, name="helper", permissions=["core:plugins:view"])
    r = clients["admin"].put_json(f"/api/v1/roles/{made['id']}", {
        "name": "assistant", "description": "Helps", "parent_id": base["id"]})
    assert r.json["name"] == "assistant" and r.json["description"] == "Helps"
    assert r.json["parent"] == "base" and r.json["permissions"] == ["core:plugins:view"]
    assert r.json["updated_at"] >= made["updated_at"]
    (entry,) = audit_entries(dbsession, "core:role:update", made["id"])
    assert entry.before == {"id": made["id"], "name": "helper", "description": "", "parent_id": None}
    assert entry.after == {"id": made["id"], "name": "assistant", "description": "Helps",
                           "parent_id": base["id"]}
    assert audit_entries(dbsession, "core:role:grant", made["id"]) == []
    # permissions through PUT are a grant; nothing else changed: no update entry
    clients["admin"].put_json(f"/api/v1/roles/{made['id']}", {"permissions": ["core:audit:view"]})
    (grant,) = audit_entries(dbsession, "core:role:grant", made["id"])
    assert grant.before["permissions"] == ["core:plugins:view"]
    assert grant.after["permissions"] == ["core:audit:view"]
    assert len(audit_entries(dbsession, "core:role:update", made["id"])) == 1
    # detach from the parent
    assert clients["admin"].put_json(f"/api/v1/roles/{made['id']}", {"parent_id": None}).json["parent"] is None


def test_parent_cycles_are_refused_and_nothing_changes(clients, dbsession):
    a = create_role(clients, name="level_a")
    b = create_role(clients, name="level_b", parent_id=a["id"])
    c = create_role(clients, name="level_c", parent_id=b["id"])
    for target, parent in ((a, c["id"]), (a, b["id"]), (b, b["id"])):
        err = envelope(clients["admin"].put_json(f"/api/v1/roles/{target['id']}", {
            "name": "renamed_on_failure", "parent_id": parent}, status=400))
        assert set(err["details"]) == {"parent_id"}
    dbsession.expire_all()
    assert dbsession.get(Role, a["id"]).parent_id is None and dbsession.get(Role, a["id"]).name == "level_a"
    assert audit_entries(dbsession, "core:role:update") == []


def test_builtin_roles_are_never_deleted_or_renamed(clients, dbsession):
    for name in ("admin", "teacher", "student"):
        rid = role_id(dbsession, name)
        err = envelope(clients["admin"].delete(f"/api/v1/roles/{rid}", status=409))
        assert err["code"] == "CONFLICT" and "built-in" in err["message"]
        err = envelope(clients["admin"].put_json(f"/api/v1/roles/{rid}", {"name": f"{name}_x"}, status=409))
        assert "name" in err["details"]
        # the description can change
        clients["admin"].put_json(f"/api/v1/roles/{rid}", {"description": f"The {name}s."})
    assert role_id(dbsession, "student") is not None
    assert audit_entries(dbsession, "core:role:delete") == []


def test_role_in_use_cannot_be_deleted_and_says_by_how_many(clients, dbsession, users, make_user):
    made = create_role(clients, name="tutor")
    clients["admin"].post_json(f"/api/v1/users/{users.teacher.id}/roles/{made['id']}", status=201)
    clients["admin"].post_json(f"/api/v1/users/{users.student.id}/roles/{made['id']}", status=201)
    primary = make_user("student")
    clients["admin"].put_json(f"/api/v1/users/{primary.id}/role", {"role_id": made["id"]})
    err = envelope(clients["admin"].delete(f"/api/v1/roles/{made['id']}", status=409))
    assert err["code"] == "CONFLICT" and "3 user(s)" in err["message"]
    assert err["details"]["user_count"] == 3
    assert role_id(dbsession, "tutor") == made["id"]


def test_role_others_inherit_from_cannot_be_deleted(clients, dbsession):
    parent = create_role(clients, name="guide")
    create_role(clients, name="junior_guide", parent_id=parent["id"])
    err = envelope(clients["admin"].delete(f"/api/v1/roles/{parent['id']}", status=409))
    assert err["details"]["children"] == ["junior_guide"]


def test_delete_role_removes_it_and_its_grants(clients, dbsession):
    made = create_role(clients, name="temporary", permissions=["core:audit:view"])
    r = clients["admin"].delete(f"/api/v1/roles/{made['id']}", status=204)
    assert r.body == b""
    assert role_id(dbsession, "temporary") is None
    clients["admin"].get(f"/api/v1/roles/{made['id']}", status=404)
    (entry,) = audit_entries(dbsession, "core:role:delete", made["id"])
    assert entry.before["name"] == "temporary" and entry.before["permissions"] == ["core:audit:view"]
    assert entry.after is None


def test_permissions_lists_declared_ones_with_default_roles(clients):
    listed = {p["name"]: p for p in clients["admin"].get("/api/v1/permissions").json}
    for name in ("core:roles:view", "core:roles:manage", "core:users:assign_role", "core:menus:manage",
                 "core:audit:view"):
        assert listed[name] == {"name": name, "plugin": "core", "default_roles": ["admin"]}
    assert listed["core:identity:switch"]["default_roles"] == ["admin", "student", "teacher"]


# --- grants give access, revocation takes it away ------------------------------------------

def test_a_granted_role_opens_the_guarded_endpoint(clients, testapp, users, app, dbsession):
    settings = app.registry.settings
    auditor = create_role(clients, name="auditor")
    clients["admin"].put_json(f"/api/v1/users/{users.teacher.id}/role", {"role_id": auditor["id"]})
    dbsession.expire_all()
    token = bearer(settings, dbsession.get(User, users.teacher.id))
    testapp.get(AUDIT, headers=token, status=403)
    r = clients["admin"].put_json(f"/api/v1/roles/{auditor['id']}/permissions",
                                  {"permissions": ["core:audit:view"]})
    assert r.json["permissions"] == ["core:audit:view"]
    assert "core:audit:view" in r.json["effective_permissions"]
    testapp.get(AUDIT, headers=token, status=200)
    (grant,) = audit_entries(dbsession, "core:role:grant", auditor["id"])
    assert grant.before["permissions"] == [] and grant.after["permissions"] == ["core:audit:view"]


def test_revoking_a_permission_takes_effect_on_the_next_request(clients, testapp, users, app, dbsession):
    auditor = create_role(clients, name="auditor", permissions=["core:audit:view"])
    clients["admin"].post_json(f"/api/v1/users/{users.student.id}/roles/{auditor['id']}", status=201)
    token = bearer(app.registry.settings, users.student, role="auditor")
    testapp.get(AUDIT, headers=token, status=200)  # now cached for this role
    assert "auditor" in app.registry[rbac.CACHE_KEY]
    clients["admin"].put_json(f"/api/v1/roles/{auditor['id']}/permissions", {"permissions": []})
    testapp.get(AUDIT, headers=token, status=403)
    clients["admin"].put_json(f"/api/v1/roles/{auditor['id']}", {"permissions": ["core:audit:view"]})
    testapp.get(AUDIT, headers=token, status=200)


def test_a_child_role_inherits_its_parents_permissions(clients, testapp, users, app, dbsession):
    parent = create_role(clients, name="auditor", permissions=["core:audit:view"])
    child = create_role(clients, name="chief_auditor", parent_id=parent["id"], permissions=["core:plugins:view"])
    assert set(child["effective_permissions"]) == {"core:audit:view", "core:plugins:view"}
    clients["admin"].post_json(f"/api/v1/users/{users.teacher.id}/roles/{child['id']}", status=201)
    token = bearer(app.registry.settings, users.teacher, role="chief_auditor")
    testapp.get(AUDIT, headers=token, status=200)
    testapp.get("/api/v1/plugins", headers=token, status=200)
    # a child of a built-in role inherits the plugins' defaults for it
    under_teacher = create_role(clients, name="lead_teacher", parent_id=role_id(dbsession, "teacher"))
    assert "core:identity:switch" in under_teacher["effective_permissions"]
    assert under_teacher["default_permissions"] == []
    # cutting the link takes the inherited permission away at once
    clients["admin"].put_json(f"/api/v1/roles/{child['id']}", {"parent_id": None})
    testapp.get(AUDIT, headers=token, status=403)
    testapp.get("/api/v1/plugins", headers=token, status=200)


# --- who holds which identity ---------------------------------------------------------------

def test_set_primary_role_answers_the_spec_fields_and_ends_old_tokens(clients, testapp, users, app, dbsession):
    old_token = bearer(app.registry.settings, users.student)
    testapp.get("/api/v1/users/identities", headers=old_token, status=200)
    teacher_id = role_id(dbsession, "teacher")
    r = clients["admin"].put_json(f"/api/v1/users/{users.student.id}/role", {"role_id": teacher_id})
    assert r.json["user_id"] == users.student.id and r.json["role_id"] == teacher_id
    assert r.json["role"] == "teacher" and r.json["updated_at"].endswith("Z")
    r = testapp.get("/api/v1/users/identities", headers=old_token, status=401)
    assert envelope(r)["code"] == "AUTH_FAILED"
    new_token = bearer(app.registry.settings, users.student, role="teacher")
    assert testapp.get("/api/v1/users/identities", headers=new_token).json["active_role"] == "teacher"
    (entry,) = audit_entries(dbsession, "core:user:role", users.student.id)
    assert entry.before == {"user_id": users.student.id, "role_id": role_id(dbsession, "student"),
                            "role": "student", "extra_roles": []}
    assert entry.after == {"user_id": users.student.id, "role_id": teacher_id, "role": "teacher",
                           "extra_roles": []}
    err = envelope(clients["admin"].put_json(f"/api/v1/users/{users.student.id}/role", {"role_id": 999999},
                                             status=400))
    assert set(err["details"]) == {"role_id"}


def test_promoting_an_extra_identity_and_keeping_the_old_one(clients, users, dbsession):
    mentor = create_role(clients, name="mentor")
    student_role = role_id(dbsession, "student")
    uid = users.student.id
    clients["admin"].post_json(f"/api/v1/users/{uid}/roles/{mentor['id']}", status=201)
    clients["admin"].post_json(f"/api/v1/users/{uid}/roles/{role_id(dbsession, 'teacher')}", status=201)
    clients["admin"].put_json(f"/api/v1/users/{uid}/role", {"role_id": mentor["id"]})
    roles = clients["admin"].get(f"/api/v1/users/{uid}/roles").json
    assert roles["role_id"] == mentor["id"]
    assert [(r["name"], r["primary"]) for r in roles["roles"]] == [("mentor", True), ("teacher", False)]
    assert student_role not in [r["id"] for r in roles["roles"]]


def test_extra_identity_add_remove_rules(clients, users, dbsession):
    uid = users.teacher.id
    student_role = role_id(dbsession, "student")
    r = clients["admin"].post_json(f"/api/v1/users/{uid}/roles/{student_role}", status=201)
    assert [(x["name"], x["primary"]) for x in r.json["roles"]] == [("teacher", True), ("student", False)]
    err = envelope(clients["admin"].post_json(f"/api/v1/users/{uid}/roles/{student_role}", status=409))
    assert "role_id" in err["details"]
    err = envelope(clients["admin"].post_json(f"/api/v1/users/{uid}/roles/{role_id(dbsession, 'teacher')}",
                                              status=409))
    assert err["code"] == "CONFLICT"
    err = envelope(clients["admin"].delete(f"/api/v1/users/{uid}/roles/{role_id(dbsession, 'teacher')}",
                                           status=409))
    assert "primary" in err["message"]
    clients["admin"].delete(f"/api/v1/users/{uid}/roles/{student_role}", status=204)
    clients["admin"].delete(f"/api/v1/users/{uid}/roles/{student_role}", status=404)
    entries = audit_entries(dbsession, "core:user:role", uid)
    assert [e.after["extra_roles"] for e in entries] == [["student"], []]


def test_removing_an_identity_ends_its_tokens(clients, testapp, users, dbsession):
    student_role = role_id(dbsession, "student")
    uid = users.teacher.id
    clients["admin"].post_json(f"/api/v1/users/{uid}/roles/{student_role}", status=201)
    pair = clients["teacher"].post_json("/api/v1/users/identity/switch", {"role": "student"}).json
    as_student = {"Authorization": f"Bearer {pair['access_token']}"}
    assert testapp.get("/api/v1/users/identities", headers=as_student).json["active_role"] == "student"
    clients["admin"].delete(f"/api/v1/users/{uid}/roles/{student_role}", status=204)
    testapp.get("/api/v1/users/identities", headers=as_student, status=401)
    # its refresh token is revoked too; the teacher identity is untouched
    dbsession.expire_all()
    rows = list(dbsession.scalars(sa.select(RefreshToken).where(RefreshToken.user_id == uid,
                                                                 RefreshToken.role == "student")))
    assert rows and all(row.revoked_at is not None for row in rows)
    testapp.post_json("/api/v1/users/refresh", {"refresh_token": pair["refresh_token"]}, status=401)
    clients["teacher"].get("/api/v1/users/identities", status=200)


def test_nobody_changes_their_own_role_and_the_last_admin_stays(clients, testapp, app, users, dbsession,
                                                                  make_user):
    settings = app.registry.settings
    admin_id, admin_role, teacher_role = users.admin.id, role_id(dbsession, "admin"), role_id(dbsession, "teacher")
    others = dbsession.scalar(sa.select(sa.func.count()).select_from(User).join(Role, Role.id == User.role_id)
                              .where(Role.name == "admin", User.id != admin_id))
    assert others == 0
    err = envelope(clients["admin"].put_json(f"/api/v1/users/{admin_id}/role", {"role_id": teacher_role},
                                             status=409))
    assert "your own account" in err["message"]
    # a custom role may assign roles, but not demote the last admin
    hr = create_role(clients, name="hr", permissions=["core:users:assign_role"])
    clients["admin"].post_json(f"/api/v1/users/{users.teacher.id}/roles/{hr['id']}", status=201)
    as_hr = bearer(settings, users.teacher, role="hr")
    err = envelope(testapp.put_json(f"/api/v1/users/{admin_id}/role", {"role_id": teacher_role},
                                    headers=as_hr, status=409))
    assert "last admin" in err["message"]
    second = make_user("teacher")
    clients["admin"].post_json(f"/api/v1/users/{second.id}/roles/{admin_role}", status=201)
    testapp.put_json(f"/api/v1/users/{admin_id}/role", {"role_id": teacher_role}, headers=as_hr, status=200)
    clients["admin"].get("/api/v1/roles", status=401)  # that admin token is gone with the identity
    err = envelope(testapp.delete(f"/api/v1/users/{second.id}/roles/{admin_role}", headers=as_hr, status=409))
    assert "last admin" in err["message"]
    as_second = bearer(settings, second, role="admin")
    err = envelope(testapp.delete(f"/api/v1/users/{second.id}/roles/{admin_role}", headers=as_second,
                                  status=409))
    assert "your own account" in err["message"]
    assert audit_entries(dbsession, "core:user:role", admin_id)[-1].actor_id == users.teacher.id


def test_renaming_a_role_moves_its_refresh_tokens(clients, users, dbsession):
    made = create_role(clients, name="coach")
    clients["admin"].post_json(f"/api/v1/users/{users.student.id}/roles/{made['id']}", status=201)
    pair = clients["student"].post_json("/api/v1/users/identity/switch", {"role": "coach"}).json
    clients["admin"].put_json(f"/api/v1/roles/{made['id']}", {"name": "trainer"})
    dbsession.expire_all()
    roles = set(dbsession.scalars(sa.select(RefreshToken.role).where(RefreshToken.user_id == users.student.id)))
    assert "trainer" in roles and "coach" not in roles
    assert pair["refresh_token"]


# --- identity switch (003) ----------------------------------------------------------------------

def test_identities_list_primary_first_and_mark_the_active_one(clients, users, dbsession):
    clients["admin"].post_json(f"/api/v1/users/{users.teacher.id}/roles/{role_id(dbsession, 'student')}",
                               status=201)
    body = clients["teacher"].get("/api/v1/users/identities").json
    assert body["active_role"] == "teacher"
    assert [(i["name"], i["primary"], i["active"]) for i in body["identities"]] == [
        ("teacher", True, True), ("student", False, False)]


def test_switch_identity_issues_tokens_for_a_held_role_only(clients, testapp, users, dbsession):
    mentor = create_role(clients, name="mentor")  # a custom role granted nothing at all
    clients["admin"].post_json(f"/api/v1/users/{users.student.id}/roles/{mentor['id']}", status=201)
    r = clients["student"].post_json("/api/v1/users/identity/switch", {"role": "mentor"})
    assert r.json["role"] == "mentor" and r.json["token_type"] == "Bearer" and r.json["expires_in"] > 0
    as_mentor = {"Authorization": f"Bearer {r.json['access_token']}"}
    body = testapp.get("/api/v1/users/identities", headers=as_mentor).json
    assert body["active_role"] == "mentor"
    assert [i["name"] for i in body["identities"] if i["active"]] == ["mentor"]
    # the mentor identity holds nothing, yet it can switch back
    back = testapp.post_json("/api/v1/users/identity/switch", {"role": "student"}, headers=as_mentor)
    assert back.json["role"] == "student"
    for role in ("teacher", "admin", "no_such_role"):
        err = envelope(clients["student"].post_json("/api/v1/users/identity/switch", {"role": role},
                                                    status=403))
        assert err["code"] == "PERMISSION_DENIED" and "role" in err["details"]
    # the former identity's tokens stay valid
    clients["student"].get("/api/v1/users/identities", status=200)


def test_openapi_documents_the_role_endpoints(testapp):
    doc = testapp.get("/api/openapi.json").json
    paths = doc["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/roles"])
    assert {"get", "put", "delete"} <= set(paths["/api/v1/roles/{id}"])
    assert "204" in paths["/api/v1/roles/{id}"]["delete"]["responses"]
    assert "409" in paths["/api/v1/roles"]["post"]["responses"]
    assert paths["/api/v1/roles"]["post"]["summary"] == "Create a role (admin)."
    assert {"put"} <= set(paths["/api/v1/users/{id}/role"])
    assert {"post", "delete"} <= set(paths["/api/v1/users/{id}/roles/{role_id}"])
    assert "post" in paths["/api/v1/users/identity/switch"]
    assert "get" in paths["/api/v1/permissions"]


def test_the_role_list_costs_the_same_queries_whatever_the_number_of_roles(clients, app):
    engine = app.registry["learnsail.db_engine"]

    def measure():
        app.registry["learnsail.auth_cache"].clear()
        with count_queries(engine) as statements:
            listed = clients["admin"].get("/api/v1/roles").json
        return len(listed), len(statements)

    create_role(clients, name="one", permissions=["core:audit:view"])
    few, few_queries = measure()
    parent = None
    for i in range(12):
        parent = create_role(clients, name=f"many_{i}", permissions=["core:audit:view", "core:plugins:view"],
                             parent_id=parent["id"] if parent else None)
    many, many_queries = measure()
    assert many == few + 12 and many_queries == few_queries


# --- the rules without HTTP -------------------------------------------------------------------

def test_role_rules_as_services(dbsession, users, app):
    declared = rbac.declared_permissions(app.registry)
    made = rbac.create_role(dbsession, declared, name="observer", permissions=["core:audit:view"],
                            actor_id=users.admin.id, ip="192.0.2.1")
    child = rbac.create_role(dbsession, declared, name="deputy", parent_id=made.id)
    assert rbac.role_holders(dbsession, made.id) == 0
    described = {r["name"]: r for r in rbac.describe_roles(dbsession, declared)}
    assert described["deputy"]["effective_permissions"] == ["core:audit:view"]
    assert described["deputy"]["parent"] == "observer"
    with pytest.raises(ValidationFailed) as failed:
        rbac.update_role(dbsession, declared, made.id, {"parent_id": child.id})
    assert set(failed.value.details) == {"parent_id"}
    rbac.add_identity(dbsession, users.student.id, made.id)
    assert rbac.role_holders(dbsession, made.id) == 1
    assert [r.name for r in rbac.identities(dbsession, users.student)] == ["student", "observer"]
    with pytest.raises(Conflict) as conflict:
        rbac.delete_role(dbsession, made.id)
    assert conflict.value.details["user_count"] == 1
    pair = rbac.switch_identity(dbsession, app.registry.settings, users.student, "observer")
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    entry = dbsession.scalars(sa.select(AuditEntry).where(AuditEntry.action == "core:role:create",
                                                          AuditEntry.target_id == str(made.id))).one()
    assert entry.ip == "192.0.2.1" and entry.after["permissions"] == ["core:audit:view"]
