"""Roles, permissions and identities over HTTP (000 §六 角色权限管理API,
004 §2.2.2, 003 身份切换).

Admins manage roles (``core:roles:view`` / ``core:roles:manage``) and who
holds them (``core:users:assign_role``).  Every signed-in caller lists and
switches their own identities (``core:identity:switch``, granted to every
authenticated caller through the resource ACL, so a user acting in a custom
role can always switch back).  The rules live in :mod:`learnsail.identity.rbac`.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from learnsail.api import Schema, Service, no_content
from learnsail.api.validation import Id
from learnsail.identity import rbac
from learnsail.identity.acl import AuthenticatedResource
from learnsail.identity.models import Role, User

ROLES_VIEW = "core:roles:view"
ROLES_MANAGE = "core:roles:manage"
ASSIGN_ROLE = "core:users:assign_role"
IDENTITY_SWITCH = "core:identity:switch"


# --- schemas --------------------------------------------------------------------

def _permission_list(**kwargs: Any) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                       validate=validate.Length(max=500),
                       metadata={"description": "Declared permission names (GET /api/v1/permissions)."},
                       **kwargs)


class RoleOutSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    parent_id = fields.Integer(allow_none=True, metadata={"description": "The role it inherits from."})
    parent = fields.String(allow_none=True, metadata={"description": "The parent role's name."})
    is_builtin = fields.Boolean(metadata={"description": "admin, teacher, student: never deleted or renamed."})
    permissions = fields.List(fields.String(), metadata={"description": "Granted to this role by an admin."})
    default_permissions = fields.List(fields.String(),
                                      metadata={"description": "Granted to this role by the plugins."})
    effective_permissions = fields.List(fields.String(),
                                        metadata={"description": "All it holds, inherited included."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class RoleCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=30))
    description = fields.String(load_default="", validate=validate.Length(max=1000))
    parent_id = Id(allow_none=True, load_default=None,
                               metadata={"description": "Inherit every permission of this role."})
    permissions = _permission_list(load_default=list)


class RoleUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=30))
    description = fields.String(validate=validate.Length(max=1000))
    parent_id = Id(allow_none=True)
    permissions = _permission_list()


class RolePermissionsSchema(Schema):
    permissions = _permission_list(required=True)


class RolePathSchema(Schema):
    id = Id(required=True)


class UserPathSchema(Schema):
    id = Id(required=True)


class UserRolePathSchema(Schema):
    id = Id(required=True, metadata={"description": "The user."})
    role_id = Id(required=True)


class PermissionInfoSchema(Schema):
    name = fields.String(metadata={"example": "core:roles:manage"})
    plugin = fields.String(metadata={"description": "The plugin that declares it."})
    default_roles = fields.List(fields.String(), metadata={"description": "Roles holding it by default."})


class UserRoleAssignSchema(Schema):
    role_id = Id(required=True)


class UserRoleAssignedSchema(Schema):
    user_id = fields.Integer()
    role_id = fields.Integer()
    role = fields.String()
    updated_at = fields.DateTime()


class IdentityOutSchema(Schema):
    id = fields.Integer(metadata={"description": "The role id."})
    name = fields.String()
    description = fields.String()
    primary = fields.Boolean(metadata={"description": "The identity a sign-in starts with."})


class UserRolesOutSchema(Schema):
    user_id = fields.Integer()
    role_id = fields.Integer(metadata={"description": "The primary role."})
    roles = fields.List(fields.Nested(IdentityOutSchema))


class CallerIdentitySchema(IdentityOutSchema):
    active = fields.Boolean(metadata={"description": "The identity of the token used."})


class CallerIdentitiesSchema(Schema):
    active_role = fields.String()
    identities = fields.List(fields.Nested(CallerIdentitySchema))


class IdentitySwitchSchema(Schema):
    role = fields.String(required=True, validate=validate.Length(min=1, max=30),
                         metadata={"description": "The name of an identity the caller holds."})


class IdentitySwitchResultSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"description": "Seconds until the access token expires."})
    role = fields.String(metadata={"description": "The identity the new tokens carry."})


# --- helpers ------------------------------------------------------------------------

def _actor(request: Any) -> dict[str, Any]:
    return {"actor_id": request.identity.id, "ip": request.client_addr}


def _declared(request: Any) -> dict[str, set[str]]:
    return rbac.declared_permissions(request.registry)


def _role_out(request: Any, role: Role) -> dict:
    return rbac.describe_roles(request.db, _declared(request), only=[role])[0]


def _changed(request: Any, *user_ids: int) -> None:
    rbac.invalidate_after_commit(request.registry, request.tm.get(), user_ids)


def _identity_out(role: Role, user: User) -> dict:
    return {"id": role.id, "name": role.name, "description": role.description or "",
            "primary": role.id == user.role_id}


def _user_roles_out(request: Any, user: User) -> dict:
    return {"user_id": user.id, "role_id": user.role_id,
            "roles": [_identity_out(role, user) for role in rbac.identities(request.db, user)]}


class IdentityResource(AuthenticatedResource):
    permissions = (IDENTITY_SWITCH,)


# --- services -----------------------------------------------------------------------

roles = Service(name="core.roles", path="/api/v1/roles", description="Roles and their permissions.")
role = Service(name="core.role", path="/api/v1/roles/{id}", description="One role.")
role_permissions = Service(name="core.role_permissions", path="/api/v1/roles/{id}/permissions",
                           description="The permissions granted to a role.")
permissions = Service(name="core.permissions", path="/api/v1/permissions",
                      description="Every permission the core and the enabled plugins declare.")
user_role = Service(name="core.user_role", path="/api/v1/users/{id}/role",
                    description="A user's primary role.")
user_roles = Service(name="core.user_roles", path="/api/v1/users/{id}/roles",
                     description="Every identity (role) a user holds.")
user_extra_role = Service(name="core.user_extra_role", path="/api/v1/users/{id}/roles/{role_id}",
                          description="One further identity of a user.")
identities = Service(name="core.identities", path="/api/v1/users/identities",
                     description="The caller's identities.", factory=IdentityResource)
identity_switch = Service(name="core.identity_switch", path="/api/v1/users/identity/switch",
                          description="Act as another of the caller's identities.", factory=IdentityResource)


@roles.get(permission=ROLES_VIEW, responses={200: RoleOutSchema(many=True)})
def list_roles(request: Any) -> list:
    """List roles with their permissions and parent (admin)."""
    return rbac.describe_roles(request.db, _declared(request))


@roles.post(permission=ROLES_MANAGE, schema=RoleCreateSchema, responses={201: RoleOutSchema}, errors=(409,))
def create_role(request: Any) -> dict:
    """Create a role (admin).

    ``name`` is unique (409 CONFLICT otherwise); every permission must be
    declared (400 naming it); ``parent_id`` makes it inherit that role's
    permissions.
    """
    body = request.validated["body"]
    created = rbac.create_role(request.db, _declared(request), name=body["name"],
                               description=body["description"], parent_id=body["parent_id"],
                               permissions=body["permissions"], **_actor(request))
    _changed(request)
    request.response.status = 201
    return _role_out(request, created)


@role.get(permission=ROLES_VIEW, schema={"path": RolePathSchema}, responses={200: RoleOutSchema})
def get_role(request: Any) -> dict:
    """Read one role (admin)."""
    return _role_out(request, rbac.get_role(request.db, request.validated["path"]["id"]))


@role.put(permission=ROLES_MANAGE, schema={"path": RolePathSchema, "body": RoleUpdateSchema},
          responses={200: RoleOutSchema}, errors=(409,))
def update_role(request: Any) -> dict:
    """Update a role: name, description, parent, permissions (admin).

    Only the fields given change; ``permissions`` replaces the granted
    list.  A parent that would make inheritance circular is refused (400);
    built-in roles keep their name (409).
    """
    updated = rbac.update_role(request.db, _declared(request), request.validated["path"]["id"],
                               request.validated["body"], **_actor(request))
    _changed(request)
    return _role_out(request, updated)


@role.delete(permission=ROLES_MANAGE, schema={"path": RolePathSchema}, responses={204: None}, errors=(409,))
def delete_role(request: Any) -> Any:
    """Delete a role (admin).

    Refused with 409 CONFLICT for a built-in role (admin, teacher,
    student), a role some user holds (the count is in ``details``) and a
    role other roles inherit from.
    """
    rbac.delete_role(request.db, request.validated["path"]["id"], **_actor(request))
    _changed(request)
    return no_content(request)


@role_permissions.put(permission=ROLES_MANAGE, schema={"path": RolePathSchema, "body": RolePermissionsSchema},
                      responses={200: RoleOutSchema})
def set_role_permissions(request: Any) -> dict:
    """Replace the permissions granted to a role (admin).

    Plugin defaults and inherited permissions are not affected; each
    permission must be declared (400 naming the unknown ones).
    """
    updated = rbac.set_role_permissions(request.db, _declared(request), request.validated["path"]["id"],
                                        request.validated["body"]["permissions"], **_actor(request))
    _changed(request)
    return _role_out(request, updated)


@permissions.get(permission=ROLES_VIEW, responses={200: PermissionInfoSchema(many=True)})
def list_permissions(request: Any) -> list:
    """List every declared permission with the roles holding it by default (admin)."""
    return [{"name": name, "plugin": name.split(":", 1)[0], "default_roles": sorted(holders)}
            for name, holders in sorted(_declared(request).items())]


@user_role.put(permission=ASSIGN_ROLE, schema={"path": UserPathSchema, "body": UserRoleAssignSchema},
               responses={200: UserRoleAssignedSchema}, errors=(409,))
def set_user_role(request: Any) -> dict:
    """Set a user's primary role (admin).

    The former primary identity is taken away (unless also held as an
    extra one): its tokens stop working.  The last admin cannot lose the
    admin role (409).
    """
    user = rbac.set_primary_role(request.db, request.validated["path"]["id"],
                                 request.validated["body"]["role_id"], **_actor(request))
    _changed(request, user.id)
    return {"user_id": user.id, "role_id": user.role_id, "role": user.role.name, "updated_at": user.updated_at}


@user_roles.get(permission=ROLES_VIEW, schema={"path": UserPathSchema}, responses={200: UserRolesOutSchema})
def list_user_roles(request: Any) -> dict:
    """List every identity a user holds, the primary one first (admin)."""
    return _user_roles_out(request, rbac.get_user(request.db, request.validated["path"]["id"]))


@user_extra_role.post(permission=ASSIGN_ROLE, schema={"path": UserRolePathSchema},
                      responses={201: UserRolesOutSchema}, errors=(409,))
def add_user_role(request: Any) -> dict:
    """Give a user a further identity (admin); 409 if they hold it already."""
    path = request.validated["path"]
    user = rbac.add_identity(request.db, path["id"], path["role_id"], **_actor(request))
    _changed(request, user.id)
    request.response.status = 201
    return _user_roles_out(request, user)


@user_extra_role.delete(permission=ASSIGN_ROLE, schema={"path": UserRolePathSchema}, responses={204: None},
                        errors=(409,))
def remove_user_role(request: Any) -> Any:
    """Take a further identity away from a user (admin).

    Its tokens stop working at once.  404 if the user does not hold it;
    409 for the primary role (change it with PUT /api/v1/users/{id}/role).
    """
    path = request.validated["path"]
    rbac.remove_identity(request.db, path["id"], path["role_id"], **_actor(request))
    _changed(request, path["id"])
    return no_content(request)


@identities.get(permission=IDENTITY_SWITCH, responses={200: CallerIdentitiesSchema})
def list_identities(request: Any) -> dict:
    """List the caller's identities and the active one."""
    user = request.identity
    return {"active_role": user.active_role,
            "identities": [dict(_identity_out(r, user), active=r.name == user.active_role)
                           for r in rbac.identities(request.db, user)]}


@identity_switch.post(permission=IDENTITY_SWITCH, schema=IdentitySwitchSchema,
                      responses={200: IdentitySwitchResultSchema})
def switch_identity(request: Any) -> dict:
    """Switch identity: new tokens acting as another role the caller holds.

    403 PERMISSION_DENIED for a role the caller does not hold.  Tokens of
    the former identity stay valid until they expire.
    """
    name = request.validated["body"]["role"]
    pair = rbac.switch_identity(request.db, request.registry.settings, request.identity, name)
    return dict(pair, role=name)


def includeme(config: Any) -> None:
    for service in (roles, role, role_permissions, permissions, user_role, user_roles, user_extra_role,
                    identities, identity_switch):
        config.add_learnsail_service(service)
