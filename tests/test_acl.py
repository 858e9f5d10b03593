"""Owner rules for plugins (learnsail.identity.acl), through tiny services
of a test-only plugin on its own app and database."""

from __future__ import annotations

import types
from typing import Any

import pytest
import sqlalchemy as sa
import webtest
from marshmallow import fields
from pyramid.authorization import Allow, Authenticated, Deny, Everyone
from sqlalchemy.orm import Mapped, Session, mapped_column

from learnsail import hookimpl, migrations
from learnsail.api import PUBLIC, Schema, Service
from learnsail.app import configure
from learnsail.db import Base
from learnsail.identity import acl
from learnsail.identity.services import create_user
from learnsail.plugins import Plugin, PluginInfo, discover
from learnsail.testing import isolated_environ
from learnsail.testing.authz import check_matrix
from learnsail.testing.identity import create_actors, headers_by_actor

EDIT = "acltest:doc:edit"
OPEN = "acltest:note:open"
READ_ANY = "acltest:note:read_any"


class Doc(Base):
    __tablename__ = "acltest_docs"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int]
    title: Mapped[str] = mapped_column(sa.String(50))
    locked: Mapped[bool] = mapped_column(default=False)


class DocResource(acl.model_resource(Doc, owner_attr="owner_id", permissions=(EDIT,))):
    def extra_acl(self):
        # a locked document is closed to everyone, its owner and admins included
        return [(Deny, Everyone, EDIT)] if self.instance.locked else []


class TitleSchema(Schema):
    title = fields.String(required=True)


doc_service = Service(name="acltest.doc", path="/api/v1/acltest/docs/{id}", factory=DocResource)
note_service = Service(name="acltest.note", path="/api/v1/acltest/notes/{id}")
check_service = Service(name="acltest.check", path="/api/v1/acltest/owners/{owner_id}/check")


@doc_service.put(permission=EDIT, schema=TitleSchema)
def edit_doc(request: Any) -> dict:
    """Rename a document: its owner, or a role holding the edit permission."""
    doc = request.context.instance
    doc.title = request.validated["body"]["title"]
    return {"id": doc.id, "title": doc.title}


@note_service.get(permission=OPEN)
def read_note(request: Any) -> dict:
    """A private note: its owner or a role that reads every note; 404 for others."""
    note = acl.load_owned(request, Doc, int(request.matchdict["id"]), permission=READ_ANY, conceal=True)
    return {"id": note.id, "title": note.title}


@check_service.get(permission=PUBLIC)
def check_owner(request: Any) -> dict:
    """Pass for the owner named in the path or a role holding the edit permission."""
    acl.require_owner_or_permission(request, int(request.matchdict["owner_id"]), EDIT)
    return {"ok": True}


def _plugin() -> Plugin:
    module = types.ModuleType("acltest_plugin")
    module.PLUGIN = PluginInfo(name="acltest", version="1", migrations=None)
    module.learnsail_permissions = hookimpl(lambda: {
        EDIT: ["teacher"], OPEN: ["student", "teacher"], READ_ANY: ["teacher"]})
    module.learnsail_includeme = hookimpl(
        lambda config: [config.add_learnsail_service(s) for s in (doc_service, note_service, check_service)])
    return Plugin(info=module.PLUGIN, module=module)


@pytest.fixture(scope="module")
def world(tmp_path_factory: Any, _database_maker: Any):
    """The app, its actors and their headers, and a document per actor."""
    installed = dict(discover())
    installed["acltest"] = _plugin()
    settings = {"learnsail.data_dir": str(tmp_path_factory.mktemp("acl")),
                "learnsail.database_url": _database_maker(), "learnsail.plugins": "acltest",
                "learnsail.secret": "acl-tests-secret-acl-tests-secret-acl", "learnsail.log_level": "CRITICAL"}
    config = configure(settings, environ=isolated_environ(), installed=installed)
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    engine = config.registry["learnsail.db_engine"]
    Doc.__table__.create(engine)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        counter = iter(range(100))

        def make(role: str) -> Any:
            name = f"{role}_{next(counter)}"
            return create_user(session, username=name, password="a long enough password", role=role,
                               email=f"{name}@example.com")

        users = create_actors(make)
        docs = {actor: Doc(owner_id=user.id, title=f"{actor}'s") for actor, user in users.items()}
        docs["locked"] = Doc(owner_id=users.student.id, title="locked", locked=True)
        session.add_all(docs.values())
        session.flush()
        for user in users.values():
            user.role  # loaded for the tokens
    headers = headers_by_actor(config.registry.settings, users)
    yield types.SimpleNamespace(app=webtest.TestApp(config.make_wsgi_app()), users=users, headers=headers,
                                docs={k: d.id for k, d in docs.items()})
    Doc.__table__.drop(engine)
    engine.dispose()


# --- the helpers themselves ------------------------------------------------------------------

def test_owner_acl_and_resource():
    assert acl.owner_acl(None, [EDIT]) == []
    assert acl.owner_acl(5, [EDIT, OPEN]) == [(Allow, "user:5", EDIT), (Allow, "user:5", OPEN)]
    assert acl.authenticated_acl([OPEN]) == [(Allow, Authenticated, OPEN)]
    assert acl.user_principal(5) == "user:5" and acl.role_principal("teacher") == "role:teacher"

    class Post(acl.Resource):
        owner_permissions = (EDIT,)

        def extra_acl(self):
            return [(Allow, acl.role_principal("moderator"), EDIT)]

    assert Post(owner_id=9).__acl__ == [(Allow, "role:moderator", EDIT), (Allow, "user:9", EDIT)]
    assert Post().__acl__ == [(Allow, "role:moderator", EDIT)]

    class Open(acl.AuthenticatedResource):
        permissions = (OPEN,)

    assert Open().__acl__ == [(Allow, Authenticated, OPEN)]


# --- through the security policy -------------------------------------------------------------

def test_owner_or_role_may_edit(world):
    student_doc = world.docs["student"]
    check_matrix(world.app, world.headers, "PUT", f"/api/v1/acltest/docs/{student_doc}", {
        "anonymous": 401, "other_student": 403, "student": 200, "teacher": 200, "other_teacher": 200,
        "admin": 200}, json={"title": "renamed"})
    # another student's own document is theirs to edit
    world.app.put_json(f"/api/v1/acltest/docs/{world.docs['other_student']}", {"title": "mine"},
                       headers=world.headers["other_student"], status=200)


def test_a_deny_entry_closes_the_resource_to_everyone(world):
    check_matrix(world.app, world.headers, "PUT", f"/api/v1/acltest/docs/{world.docs['locked']}", {
        "anonymous": 401, "student": 403, "other_student": 403, "teacher": 403, "other_teacher": 403,
        "admin": 403}, json={"title": "unlocked?"})


def test_the_factory_answers_400_and_404_before_permissions(world):
    r = world.app.put_json("/api/v1/acltest/docs/abc", {"title": "x"}, headers=world.headers["admin"], status=400)
    assert r.json["error"]["details"] == {"id": ["Not a valid integer."]}
    r = world.app.put_json("/api/v1/acltest/docs/999999", {"title": "x"}, headers=world.headers["admin"],
                           status=404)
    assert r.json["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_load_owned_conceals_private_things(world):
    note = world.docs["student"]
    responses = check_matrix(world.app, world.headers, "GET", f"/api/v1/acltest/notes/{note}", {
        "anonymous": 401, "student": 200, "other_student": 404, "teacher": 200, "other_teacher": 200,
        "admin": 200})
    assert responses["student"].json == {"id": note, "title": responses["student"].json["title"]}
    assert responses["other_student"].json["error"]["code"] == "RESOURCE_NOT_FOUND"
    world.app.get("/api/v1/acltest/notes/999999", headers=world.headers["student"], status=404)


def test_require_owner_or_permission(world):
    owner = world.users.other_student.id
    check_matrix(world.app, world.headers, "GET", f"/api/v1/acltest/owners/{owner}/check", {
        "anonymous": 401, "student": 403, "other_student": 200, "teacher": 200, "other_teacher": 200,
        "admin": 200})
