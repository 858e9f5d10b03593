"""The audit log: written by every role change, queried by admins with
filters and pages (``GET /api/v1/admin/audit-log``)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from learnsail.identity import audit, rbac
from learnsail.identity.models import AuditEntry, Role
from learnsail.testing.authz import ADMIN_ONLY, check_matrix
from learnsail.testing import count_queries

URL = "/api/v1/admin/audit-log"


def seed(dbsession, users):
    """Entries at known instants (written directly: the query is under test)."""
    base = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    rows = [
        ("core:role:create", "role", "7", users.admin.id, 0),
        ("core:role:update", "role", "7", users.admin.id, 1),
        ("core:role:grant", "role", "7", users.teacher.id, 2),
        ("core:user:role", "user", str(users.student.id), users.admin.id, 3),
        ("core:menu:create", "menu", "1", None, 4),
        ("core:role_x:create", "role", "8", users.admin.id, 5),
    ]
    for action, target_type, target_id, actor_id, days in rows:
        entry = audit.record(dbsession, action=action, target_type=target_type, target_id=target_id,
                             actor_id=actor_id, ip="10.0.0.1", before={"n": days}, after={"n": days + 1})
        entry.created_at = base + dt.timedelta(days=days)
    dbsession.commit()
    return base


def actions(response):
    return [row["action"] for row in response.json["results"]]


def test_only_admins_read_the_audit_log(testapp, actor_headers):
    check_matrix(testapp, actor_headers, "GET", URL, ADMIN_ONLY)
    check_matrix(testapp, actor_headers, "GET", URL, ADMIN_ONLY, params={"action": "core:role:*"})


def test_filters_combine(clients, dbsession, users):
    base = seed(dbsession, users)
    admin = clients["admin"]
    everything = admin.get(URL, params={"from": base.isoformat()}).json
    assert set(everything) == {"count", "next", "previous", "results"}
    assert everything["count"] == 6
    # newest first
    assert actions(admin.get(URL, params={"from": base.isoformat()}))[0] == "core:role_x:create"
    row = [r for r in everything["results"] if r["action"] == "core:role:grant"][0]
    assert row == {**row, "actor_id": users.teacher.id, "actor": users.teacher.username, "target_type": "role",
                   "target_id": "7", "ip": "10.0.0.1", "before": {"n": 2}, "after": {"n": 3}}
    assert row["created_at"] == "2026-03-03T12:00:00Z"

    def query(**params):
        return actions(admin.get(URL, params={"from": base.isoformat(), **params}))

    assert query(actor_id=users.teacher.id) == ["core:role:grant"]
    assert query(action="core:role:update") == ["core:role:update"]
    # the prefix form; "_" in the prefix is no wildcard
    assert query(action="core:role:*") == ["core:role:grant", "core:role:update", "core:role:create"]
    assert query(action="core:role_*") == ["core:role_x:create"]
    assert query(target_type="role", target_id="7") == ["core:role:grant", "core:role:update",
                                                        "core:role:create"]
    assert query(target_type="user") == ["core:user:role"]
    assert query(to=(base + dt.timedelta(days=1)).isoformat()) == ["core:role:create"]
    since, until = (base + dt.timedelta(days=1)).isoformat(), (base + dt.timedelta(days=3)).isoformat()
    assert query(**{"from": since, "to": until}) == ["core:role:grant", "core:role:update"]
    # an offset is honoured: 20:00 at +08:00 is 12:00 UTC
    assert query(**{"from": "2026-03-06T20:00:00+08:00"}) == ["core:role_x:create"]
    assert query(**{"from": "2026-03-06T12:00:01"}) == []  # no offset: UTC
    assert query(actor_id=users.admin.id, target_type="role", action="core:role:*") == [
        "core:role:update", "core:role:create"]


def test_pages(clients, dbsession, users):
    base = seed(dbsession, users)
    first = clients["admin"].get(URL, params={"from": base.isoformat(), "page_size": 4}).json
    assert first["count"] == 6 and len(first["results"]) == 4 and first["previous"] is None
    assert "page=2" in first["next"] and "from=" in first["next"]
    second = clients["admin"].get(first["next"]).json
    assert len(second["results"]) == 2 and second["next"] is None
    assert {r["id"] for r in first["results"]}.isdisjoint(r["id"] for r in second["results"])


def test_bad_filters_name_the_parameter(clients):
    for params, field in (({"from": "yesterday"}, "from"), ({"to": "2026-13-01T00:00:00"}, "to"),
                          ({"actor_id": "me"}, "actor_id"), ({"page": "0"}, "page"),
                          ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to")):
        r = clients["admin"].get(URL, params=params, status=400)
        assert r.json["error"]["code"] == "VALIDATION_ERROR"
        assert list(r.json["error"]["details"]) == [field], params


def test_role_changes_are_audited_with_before_and_after(clients, users, dbsession):
    made = clients["admin"].post_json("/api/v1/roles", {"name": "assessor"}, status=201).json
    clients["admin"].put_json(f"/api/v1/roles/{made['id']}/permissions", {"permissions": ["core:audit:view"]})
    clients["admin"].put_json(f"/api/v1/roles/{made['id']}", {"description": "Assesses"})
    clients["admin"].post_json(f"/api/v1/users/{users.teacher.id}/roles/{made['id']}", status=201)
    clients["admin"].delete(f"/api/v1/users/{users.teacher.id}/roles/{made['id']}", status=204)
    clients["admin"].delete(f"/api/v1/roles/{made['id']}", status=204)
    on_role = clients["admin"].get(URL, params={"target_type": "role", "target_id": made["id"]}).json["results"]
    assert [r["action"] for r in on_role] == ["core:role:delete", "core:role:update", "core:role:grant",
                                              "core:role:create"]
    assert all(r["actor_id"] == users.admin.id and r["actor"] == users.admin.username for r in on_role)
    update = on_role[1]
    assert update["before"]["description"] == "" and update["after"]["description"] == "Assesses"
    on_user = clients["admin"].get(URL, params={"action": "core:user:role",
                                                "target_id": users.teacher.id}).json["results"]
    assert [(r["before"]["extra_roles"], r["after"]["extra_roles"]) for r in on_user] == [
        (["assessor"], []), ([], ["assessor"])]


def test_a_refused_change_leaves_no_entry(clients, dbsession):
    student = dbsession.scalar(sa.select(Role.id).where(Role.name == "student"))
    clients["admin"].delete(f"/api/v1/roles/{student}", status=409)
    clients["admin"].post_json("/api/v1/roles", {"name": "x", "permissions": ["no:such:thing"]}, status=400)
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0


def test_the_log_costs_the_same_queries_whatever_the_page_size(clients, dbsession, users, app):
    for _ in range(4):
        seed(dbsession, users)
    engine = app.registry["learnsail.db_engine"]

    def measure(size):
        app.registry["learnsail.auth_cache"].clear()
        rbac.invalidate(app.registry)
        with count_queries(engine) as statements:
            assert len(clients["admin"].get(URL, params={"page_size": size}).json["results"]) == size
        return statements

    assert len(measure(2)) == len(measure(20))
