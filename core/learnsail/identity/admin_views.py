"""Users admin over HTTP (004 §2.2.1): ``/api/v1/admin/users``.

Reading needs ``core:users:view``, changing ``core:users:manage`` (both
held by admins only by default).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema
from pyramid.response import Response

from learnsail.errors import PermissionDenied
from learnsail.api import Schema, Service, no_content, page_of
from learnsail.api.validation import Id, QuerySchema
from learnsail.db.pagination import paginate
from learnsail.identity import admin_users, audit, tokens
from learnsail.identity.views import LoginEventSchema, ProfileSchema

VIEW = "core:users:view"
MANAGE = "core:users:manage"

USERNAME = [validate.Length(min=3, max=50), validate.Regexp(r"^[\w.\-]+$", error="Letters, digits, _ . - only.")]


# --- schemas ----------------------------------------------------------------------------

class AdminUserQuery(QuerySchema):
    role = fields.String(validate=validate.Length(max=30), metadata={"description": "Primary or extra role."})
    status = fields.String(validate=validate.OneOf(admin_users.STATUSES),
                           metadata={"description": "Without it, deleted accounts are left out."})
    registered_from = fields.Date(metadata={"description": "First day of registration (UTC), inclusive."})
    registered_to = fields.Date(metadata={"description": "Last day of registration (UTC), inclusive."})
    search = fields.String(validate=validate.Length(min=1, max=100),
                           metadata={"description": "Text in the username, email or phone."})
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(tuple(admin_users.SORTS)))

    @validates_schema(skip_on_field_errors=False)
    def period(self, data: dict, **kwargs: Any) -> None:
        if data.get("registered_from") and data.get("registered_to") \
                and data["registered_from"] > data["registered_to"]:
            raise ValidationError("Must not be before registered_from.", "registered_to")


class AdminUserPath(Schema):
    id = Id(required=True)


class AdminUserCreateSchema(Schema):
    username = fields.String(required=True, validate=USERNAME)
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    email = fields.String(allow_none=True, validate=validate.Length(max=100))
    phone = fields.String(allow_none=True, validate=validate.Length(max=20))
    role = fields.String(load_default="student", validate=validate.Length(min=1, max=30))
    is_active = fields.Boolean(load_default=True)


class AdminUserUpdateSchema(Schema):
    username = fields.String(validate=USERNAME)
    email = fields.String(allow_none=True, validate=validate.Length(max=100))
    phone = fields.String(allow_none=True, validate=validate.Length(max=20))
    role = fields.String(validate=validate.Length(min=1, max=30))
    is_active = fields.Boolean()


class AdminUserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    role = fields.String()
    role_id = fields.Integer()
    status = fields.String(metadata={"description": "active, disabled, locked or deleted."})
    is_active = fields.Boolean()
    email_verified = fields.Boolean()
    phone_verified = fields.Boolean()
    avatar_url = fields.String(allow_none=True)
    failed_logins = fields.Integer()
    locked_until = fields.DateTime(allow_none=True)
    last_login = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    deleted_at = fields.DateTime(allow_none=True)


class AdminLoginEventSchema(LoginEventSchema):
    identifier = fields.String(metadata={"description": "The username, email or phone entered."})


class AdminUserDetailSchema(AdminUserSchema):
    profile = fields.Nested(ProfileSchema, allow_none=True)
    roles = fields.List(fields.String(), metadata={"description": "Every identity, the primary one first."})
    recent_logins = fields.List(fields.Nested(AdminLoginEventSchema))


# --- services -----------------------------------------------------------------------------

users = Service(name="core.admin_users", path="/api/v1/admin/users", description="Accounts (admin).")
users_export = Service(name="core.admin_users_export", path="/api/v1/admin/users/export.csv",
                       description="Accounts as CSV (admin).")
user = Service(name="core.admin_user", path="/api/v1/admin/users/{id}", description="One account (admin).")
user_disable = Service(name="core.admin_user_disable", path="/api/v1/admin/users/{id}/disable",
                       description="Disable an account.")
user_enable = Service(name="core.admin_user_enable", path="/api/v1/admin/users/{id}/enable",
                      description="Enable a disabled account.")
user_unlock = Service(name="core.admin_user_unlock", path="/api/v1/admin/users/{id}/unlock",
                      description="End a lockout after failed sign-ins.")
user_logins = Service(name="core.admin_user_logins", path="/api/v1/admin/users/{id}/logins",
                      description="An account's sign-in log.")

PATH = {"path": AdminUserPath}


def _actor(request: Any) -> dict[str, Any]:
    return {"actor_id": request.identity.id, "ip": request.client_addr}


def _target(request: Any) -> Any:
    return admin_users.get_user(request.db, request.validated["path"]["id"])


@users.get(permission=VIEW, schema={"querystring": AdminUserQuery}, responses={200: page_of(AdminUserSchema)})
def list_users(request: Any) -> dict:
    """Accounts, filtered and sorted, paginated (two queries whatever the page size)."""
    now = tokens.now()
    stmt = admin_users.user_query(**request.validated["querystring"], now=now)
    return paginate(request, request.db, stmt, lambda u: admin_users.summary(u, now))


def _may_assign(request: Any, role: str | None, *, default: str) -> None:
    """Managing accounts does not include handing out roles: that is
    core:users:assign_role, as for PUT /users/{id}/role."""
    if role is not None and role != default and not request.has_permission("core:users:assign_role"):
        raise PermissionDenied("Assigning roles needs the core:users:assign_role permission.",
                               {"role": ["You may not assign roles."]})


@users.post(permission=MANAGE, schema=AdminUserCreateSchema, responses={201: AdminUserSchema}, errors=(409,))
def create_user(request: Any) -> dict:
    """Create an account; a role other than student also needs
    core:users:assign_role."""
    body = request.validated["body"]
    _may_assign(request, body.get("role", "student"), default="student")
    created = admin_users.create_user(request.db, request.registry.settings, request.registry["learnsail.pm"],
                                      **body, **_actor(request))
    request.response.status = 201
    return admin_users.summary(created)


@users_export.get(permission=VIEW, schema={"querystring": AdminUserQuery},
                  responses={200: (None, "text/csv (UTF-8 with BOM): " + ", ".join(admin_users.CSV_COLUMNS))})
def export_users(request: Any) -> Response:
    """The filtered accounts as a CSV download, streamed row by row."""
    query = request.validated["querystring"]
    stmt = admin_users.user_query(**query)
    audit.record_request(request, action="core:user:export", target_type="user",
                         after={"filters": {k: v.isoformat() if isinstance(v, dt.date) else v
                                            for k, v in query.items()}})
    response = Response(content_type="text/csv", charset="utf-8")
    response.content_disposition = f'attachment; filename="users-{tokens.now():%Y%m%d}.csv"'
    response.app_iter = admin_users.export_csv(request.registry["learnsail.dbsession_factory"], stmt)
    return response


@user.get(permission=VIEW, schema=PATH, responses={200: AdminUserDetailSchema})
def get_user(request: Any) -> dict:
    """One account with its profile, identities and latest sign-ins."""
    return admin_users.detail(request.db, _target(request))


@user.put(permission=MANAGE, schema={**PATH, "body": AdminUserUpdateSchema}, responses={200: AdminUserSchema},
          errors=(409,))
def update_user(request: Any) -> dict:
    """Change the username, email, phone, role or active flag (only the
    fields given); changing the role also needs core:users:assign_role."""
    _may_assign(request, request.validated["body"].get("role"), default=_target(request).role.name)
    changed = admin_users.update_user(request.db, _target(request), request.validated["body"], **_actor(request))
    return admin_users.summary(changed)


@user.delete(permission=MANAGE, schema=PATH, responses={204: None}, errors=(409,))
def delete_user(request: Any) -> Response:
    """Delete the account (soft: it can no longer sign in and leaves the
    lists; its tokens stop working at once)."""
    admin_users.soft_delete(request.db, _target(request), **_actor(request))
    return no_content(request)


@user_disable.post(permission=MANAGE, schema=PATH, responses={200: AdminUserSchema}, errors=(409,))
def disable_user(request: Any) -> dict:
    """Disable the account; every token it holds stops working at once."""
    return admin_users.summary(admin_users.disable(request.db, _target(request), **_actor(request)))


@user_enable.post(permission=MANAGE, schema=PATH, responses={200: AdminUserSchema}, errors=(409,))
def enable_user(request: Any) -> dict:
    """Enable a disabled account."""
    return admin_users.summary(admin_users.enable(request.db, _target(request), **_actor(request)))


@user_unlock.post(permission=MANAGE, schema=PATH, responses={200: AdminUserSchema}, errors=(409,))
def unlock_user(request: Any) -> dict:
    """End a lockout: clears the failed sign-in count and the lock."""
    return admin_users.summary(admin_users.unlock(request.db, _target(request), **_actor(request)))


@user_logins.get(permission=VIEW, schema=PATH, responses={200: page_of(AdminLoginEventSchema)})
def user_logins_view(request: Any) -> dict:
    """The account's sign-ins and failed attempts, newest first (paginated)."""
    target = _target(request)
    return paginate(request, request.db, admin_users.login_events_query(target.id), admin_users.login_event_out)


def includeme(config: Any) -> None:
    # export.csv before {id}, which would otherwise match it
    for service in (users, users_export, user, user_disable, user_enable, user_unlock, user_logins):
        config.add_learnsail_service(service)
