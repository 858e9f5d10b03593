"""Menus (004 §2.2.2 菜单管理): the navigation a front end draws.

Admins edit entries (``core:menus:manage``); ``GET /api/v1/menus`` answers
the tree the caller may see: active entries whose ``permission`` the
caller's active role holds, or that need none (anonymous callers see only
those).  An entry whose permission no enabled plugin declares is hidden
from everyone (its plugin was disabled), and a hidden entry hides its
children.  The rules come first in this module, then the HTTP services.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import sqlalchemy as sa
from marshmallow import fields, validate
from sqlalchemy.orm import Session

from learnsail.api import PUBLIC, Schema, Service, no_content
from learnsail.api.validation import Id
from learnsail.errors import Conflict, NotFound, ValidationFailed
from learnsail.identity import audit, rbac
from learnsail.identity.models import Menu

MENUS_MANAGE = "core:menus:manage"
FIELDS = ("parent_id", "name", "path", "icon", "sort_order", "permission", "is_active")


# --- rules ------------------------------------------------------------------------

def get_menu(session: Session, menu_id: int) -> Menu:
    menu = session.get(Menu, menu_id)
    if menu is None:
        raise NotFound(f"No menu entry with id {menu_id}.")
    return menu


def snapshot(menu: Menu) -> dict[str, Any]:
    return {"id": menu.id, **{key: getattr(menu, key) for key in FIELDS}}


def _check(session: Session, declared: Mapping[str, Any], values: Mapping[str, Any],
           menu_id: int | None = None) -> None:
    problems: dict[str, list[str]] = {}
    permission = values.get("permission")
    if permission and permission not in declared:
        problems["permission"] = [f"Unknown permission {permission!r}: GET /api/v1/permissions lists them."]
    parent_id = values.get("parent_id")
    if parent_id is not None:
        parents = dict(session.execute(sa.select(Menu.id, Menu.parent_id)).all())
        if parent_id not in parents:
            problems["parent_id"] = [f"No menu entry with id {parent_id}."]
        else:
            node: int | None = parent_id
            seen: set[int] = set()
            while node is not None and node not in seen:
                if node == menu_id:
                    problems["parent_id"] = ["An entry cannot be nested in itself or in one of its children."]
                    break
                seen.add(node)
                node = parents.get(node)
    if problems:
        raise ValidationFailed(problems)


def create_menu(session: Session, declared: Mapping[str, Any], values: Mapping[str, Any], *,
                actor_id: int | None = None, ip: str | None = None) -> Menu:
    """Add an entry.  :class:`ValidationFailed` for an undeclared
    permission or an unknown parent."""
    _check(session, declared, values)
    menu = Menu(**{key: values[key] for key in FIELDS if key in values})
    session.add(menu)
    session.flush()
    audit.record(session, action="core:menu:create", target_type="menu", target_id=menu.id,
                 actor_id=actor_id, ip=ip, after=snapshot(menu))
    return menu


def update_menu(session: Session, declared: Mapping[str, Any], menu_id: int, values: Mapping[str, Any], *,
                actor_id: int | None = None, ip: str | None = None) -> Menu:
    """Change the given fields of an entry; a parent that would nest it
    in itself is refused."""
    menu = get_menu(session, menu_id)
    _check(session, declared, values, menu.id)
    before = snapshot(menu)
    for key in FIELDS:
        if key in values:
            setattr(menu, key, values[key])
    session.flush()
    after = snapshot(menu)
    if after != before:
        audit.record(session, action="core:menu:update", target_type="menu", target_id=menu.id,
                     actor_id=actor_id, ip=ip, before=before, after=after)
    return menu


def delete_menu(session: Session, menu_id: int, *, actor_id: int | None = None, ip: str | None = None) -> None:
    """Delete an entry without children (:class:`Conflict` otherwise)."""
    menu = get_menu(session, menu_id)
    children = session.scalar(sa.select(sa.func.count()).select_from(Menu).where(Menu.parent_id == menu.id))
    if children:
        raise Conflict(f"The entry has {children} child entries; move or delete them first.",
                       {"id": [f"Has {children} child entries."], "children": children})
    before = snapshot(menu)
    session.delete(menu)
    session.flush()
    audit.record(session, action="core:menu:delete", target_type="menu", target_id=menu_id,
                 actor_id=actor_id, ip=ip, before=before)


def all_menus(session: Session) -> list[Menu]:
    return list(session.scalars(sa.select(Menu).order_by(Menu.sort_order, Menu.id)))


def visible_tree(session: Session, declared: Mapping[str, Any], allowed: Callable[[str], bool]) -> list[dict]:
    """The active entries a caller may see, nested, each level ordered by
    ``sort_order`` (one query).  ``allowed(permission)`` says whether the
    caller holds a permission."""
    children: dict[int | None, list[Menu]] = {}
    for menu in session.scalars(sa.select(Menu).where(Menu.is_active.is_(True))
                                .order_by(Menu.sort_order, Menu.id)):
        children.setdefault(menu.parent_id, []).append(menu)
    verdicts: dict[str, bool] = {}

    def visible(menu: Menu) -> bool:
        if not menu.permission:
            return True
        if menu.permission not in verdicts:
            verdicts[menu.permission] = menu.permission in declared and allowed(menu.permission)
        return verdicts[menu.permission]

    def build(parent_id: int | None) -> list[dict]:
        return [dict(menu_out(menu), children=build(menu.id))
                for menu in children.get(parent_id, []) if visible(menu)]

    return build(None)


def menu_out(menu: Menu) -> dict:
    return {"id": menu.id, "parent_id": menu.parent_id, "name": menu.name, "path": menu.path,
            "icon": menu.icon, "sort_order": menu.sort_order, "permission": menu.permission,
            "is_active": menu.is_active, "created_at": menu.created_at, "updated_at": menu.updated_at}


# --- schemas --------------------------------------------------------------------------

class MenuOutSchema(Schema):
    id = fields.Integer()
    parent_id = fields.Integer(allow_none=True)
    name = fields.String()
    path = fields.String(allow_none=True, metadata={"description": "The front-end route."})
    icon = fields.String(allow_none=True)
    sort_order = fields.Integer(metadata={"description": "Smaller first among siblings."})
    permission = fields.String(allow_none=True, metadata={"description": "Needed to see the entry."})
    is_active = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class MenuNodeSchema(MenuOutSchema):
    children = fields.List(fields.Nested(lambda: MenuNodeSchema()))


class MenuCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=50))
    parent_id = Id(allow_none=True, load_default=None)
    path = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=255))
    icon = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    sort_order = fields.Integer(load_default=0, validate=validate.Range(min=-1_000_000, max=1_000_000))
    permission = fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=100),
                               metadata={"description": "A declared permission; empty: everyone sees it."})
    is_active = fields.Boolean(load_default=True)


class MenuUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=50))
    parent_id = Id(allow_none=True)
    path = fields.String(allow_none=True, validate=validate.Length(max=255))
    icon = fields.String(allow_none=True, validate=validate.Length(max=100))
    sort_order = fields.Integer(validate=validate.Range(min=-1_000_000, max=1_000_000))
    permission = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    is_active = fields.Boolean()


class MenuPathSchema(Schema):
    id = Id(required=True)


# --- services ---------------------------------------------------------------------------

def _actor(request: Any) -> dict[str, Any]:
    return {"actor_id": request.identity.id, "ip": request.client_addr}


admin_menus = Service(name="core.admin_menus", path="/api/v1/admin/menus",
                      description="Every menu entry (admin).")
admin_menu = Service(name="core.admin_menu", path="/api/v1/admin/menus/{id}", description="One menu entry.")
menus = Service(name="core.menus", path="/api/v1/menus", description="The caller's navigation menu.")


@admin_menus.get(permission=MENUS_MANAGE, responses={200: MenuOutSchema(many=True)})
def list_menus(request: Any) -> list:
    """List every menu entry, active or not, by sort order (admin)."""
    return [menu_out(menu) for menu in all_menus(request.db)]


@admin_menus.post(permission=MENUS_MANAGE, schema=MenuCreateSchema, responses={201: MenuOutSchema})
def create_menu_view(request: Any) -> dict:
    """Add a menu entry (admin).

    ``permission`` must be declared and ``parent_id`` an existing entry
    (400 naming the field otherwise).
    """
    menu = create_menu(request.db, rbac.declared_permissions(request.registry), request.validated["body"],
                       **_actor(request))
    request.response.status = 201
    return menu_out(menu)


@admin_menu.put(permission=MENUS_MANAGE, schema={"path": MenuPathSchema, "body": MenuUpdateSchema},
                responses={200: MenuOutSchema})
def update_menu_view(request: Any) -> dict:
    """Update a menu entry (admin): only the fields given change."""
    menu = update_menu(request.db, rbac.declared_permissions(request.registry), request.validated["path"]["id"],
                       request.validated["body"], **_actor(request))
    return menu_out(menu)


@admin_menu.delete(permission=MENUS_MANAGE, schema={"path": MenuPathSchema}, responses={204: None},
                   errors=(409,))
def delete_menu_view(request: Any) -> Any:
    """Delete a menu entry (admin); 409 CONFLICT while it has children."""
    delete_menu(request.db, request.validated["path"]["id"], **_actor(request))
    return no_content(request)


@menus.get(permission=PUBLIC, responses={200: MenuNodeSchema(many=True)})
def menu_tree(request: Any) -> list:
    """The menu tree the caller may see, children nested, by sort order.

    Anonymous callers see the entries that need no permission.
    """
    # the security policy answers from its caches: one query for the whole tree
    return visible_tree(request.db, rbac.declared_permissions(request.registry),
                        lambda permission: bool(request.has_permission(permission)))


def includeme(config: Any) -> None:
    for service in (admin_menus, admin_menu, menus):
        config.add_learnsail_service(service)
