"""The notifications API (000 §通知系统API plus the unread count, deletion,
preferences and the admins' system notices).  Every route but the admins'
acts on the caller's own notifications only: another user's id is a 404."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields, validate, validates_schema

from learnsail.api import Service, no_content, page_of
from learnsail.api.validation import Id, QuerySchema, Schema
from learnsail.db.pagination import MAX_PAGE, paginate
from learnsail.errors import NotFound, ValidationFailed
from learnsail.notifications import CHANNELS, notify, services, types_of

SELF = "core:account:self"
SEND = "core:notifications:send"


class ListQuerySchema(QuerySchema):
    read = fields.Boolean(metadata={"description": "true: only read ones; false: only unread ones."})
    type = fields.String(validate=validate.Length(min=1, max=64), metadata={"example": "core.system"})
    page = fields.Integer(validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(validate=validate.Range(min=1), metadata={"description": "At most 100."})


class NotificationOutSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    content = fields.String()
    type = fields.String(metadata={"example": "core.system"})
    related_type = fields.String(allow_none=True, metadata={"description": "What related_id points to."})
    related_id = fields.Integer(allow_none=True)
    is_read = fields.Boolean()
    read_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class PathSchema(Schema):
    id = Id(required=True)


class ReadOutSchema(Schema):
    id = fields.Integer()
    is_read = fields.Boolean()
    updated_at = fields.DateTime(metadata={"description": "When it was marked read."})


class ReadAllOutSchema(Schema):
    message = fields.String(metadata={"example": "All notifications marked as read"})
    count = fields.Integer(metadata={"description": "How many were unread."})


class CountOutSchema(Schema):
    count = fields.Integer()


class PreferenceOutSchema(Schema):
    type = fields.String()
    description = fields.String()
    channels = fields.Dict(keys=fields.String(), values=fields.Boolean(),
                           metadata={"description": "The effective choice per channel (in_app, email, sms)."})
    defaults = fields.Dict(keys=fields.String(), values=fields.Boolean())


class PreferenceInSchema(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    enabled = fields.Boolean(required=True)


class PreferencesInSchema(Schema):
    preferences = fields.List(fields.Nested(PreferenceInSchema), required=True,
                              validate=validate.Length(min=1, max=300))


class PreferencesOutSchema(Schema):
    preferences = fields.List(fields.Nested(PreferenceOutSchema))


class SendSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    content = fields.String(required=True, validate=validate.Length(min=1, max=10000))
    user_ids = fields.List(Id(), validate=validate.Length(min=1, max=10000),
                           metadata={"description": "The recipients (give this or role)."})
    role = fields.String(validate=validate.Length(min=1, max=50),
                         metadata={"description": "Every user of this role (give this or user_ids)."})
    related_type = fields.String(validate=validate.Length(min=1, max=50))
    related_id = Id()

    @validates_schema
    def one_audience(self, data: dict, **kwargs: Any) -> None:
        if ("user_ids" in data) == ("role" in data):
            raise ValidationError("Give exactly one of user_ids and role.", "user_ids")


class SendOutSchema(Schema):
    recipients = fields.Integer(metadata={"description": "How many users it is sent to."})
    queued = fields.Boolean(metadata={"description": "True when a background task writes the notifications."})


def note_out(note: Any) -> dict:
    return {"id": note.id, "title": note.title, "content": note.content, "type": note.type,
            "related_type": note.related_type, "related_id": note.related_id, "is_read": note.is_read,
            "read_at": note.read_at, "created_at": note.created_at}


def _own(request: Any) -> Any:
    nid = request.validated["path"]["id"]
    note = services.own(request.db, request.authenticated_userid, nid)
    if note is None:
        raise NotFound(f"No notification with id {nid}.")
    return note


# read-all is registered before {id} so that its path is never taken for an id
read_all = Service(name="core.notifications_read_all", path="/api/v1/notifications/read-all",
                   description="Mark every notification of the caller read.")
user_notifications = Service(name="core.user_notifications", path="/api/v1/users/notifications",
                             description="The caller's notifications.")
unread = Service(name="core.user_notifications_unread", path="/api/v1/users/notifications/unread-count",
                 description="How many of the caller's notifications are unread.")
notifications = Service(name="core.notifications", path="/api/v1/notifications",
                        description="System notices sent by administrators.")
notification = Service(name="core.notification", path="/api/v1/notifications/{id}",
                       description="One notification of the caller.")
notification_read = Service(name="core.notification_read", path="/api/v1/notifications/{id}/read",
                            description="Mark one notification read.")
preferences = Service(name="core.notification_preferences", path="/api/v1/users/notification-preferences",
                      description="The caller's choice of channels per notification type.")


@user_notifications.get(permission=SELF, schema={"querystring": ListQuerySchema},
                        responses={200: page_of(NotificationOutSchema)})
def list_notifications(request: Any) -> dict:
    """The caller's notifications, newest first, paginated; ``read=false``
    lists the unread ones only, ``type`` one type."""
    query = request.validated["querystring"]
    stmt = services.list_query(request.authenticated_userid, query.get("read"), query.get("type"))
    return paginate(request, request.db, stmt, note_out)


@unread.get(permission=SELF, responses={200: CountOutSchema})
def unread_count(request: Any) -> dict:
    """How many of the caller's notifications are unread (the bell's badge)."""
    return {"count": services.unread_count(request.db, request.authenticated_userid)}


@notification_read.put(permission=SELF, schema={"path": PathSchema}, responses={200: ReadOutSchema},
                       errors=(404,))
def mark_read(request: Any) -> dict:
    """Mark one of the caller's notifications read (again: no change)."""
    note = services.mark_read(request.db, _own(request))
    return {"id": note.id, "is_read": True, "updated_at": note.read_at}


@read_all.put(permission=SELF, responses={200: ReadAllOutSchema})
def mark_all_read(request: Any) -> dict:
    """Mark every unread notification of the caller read; ``count`` says how many."""
    count = services.mark_all_read(request.db, request.authenticated_userid)
    return {"message": "All notifications marked as read", "count": count}


@notification.delete(permission=SELF, schema={"path": PathSchema}, responses={204: None}, errors=(404,))
def delete_notification(request: Any) -> Any:
    """Delete one of the caller's notifications."""
    request.db.delete(_own(request))
    request.db.flush()
    return no_content(request)


@preferences.get(permission=SELF, responses={200: PreferencesOutSchema})
def get_preferences(request: Any) -> dict:
    """Every notification type with the caller's effective choice per
    channel (the type's default unless they changed it)."""
    return {"preferences": services.preferences(request.db, request, request.authenticated_userid)}


@preferences.put(permission=SELF, schema=PreferencesInSchema, responses={200: PreferencesOutSchema})
def put_preferences(request: Any) -> dict:
    """Turn channels on or off for some types (the others keep their
    value).  An undeclared type or unknown channel is a 400 and changes
    nothing."""
    declared = types_of(request)
    changes = [(p["type"], p["channel"], p["enabled"]) for p in request.validated["body"]["preferences"]]
    unknown = {f"preferences.{i}.type": ["Unknown notification type."]
               for i, (name, _, _) in enumerate(changes) if name not in declared}
    if unknown:
        raise ValidationFailed(unknown, "Unknown notification type.")
    services.set_preferences(request.db, request, request.authenticated_userid, changes)
    return {"preferences": services.preferences(request.db, request, request.authenticated_userid)}


@notifications.post(permission=SEND, schema=SendSchema, responses={201: SendOutSchema}, errors=(404,))
def send_system_notice(request: Any) -> dict:
    """Send a system notice (type ``core.system``) to some users or to
    every user of a role (admin).  Unknown user ids or role: 404, nothing sent."""
    from learnsail.identity.models import Role, User

    body = request.validated["body"]
    if "role" in body:
        role_id = request.db.scalar(sa.select(Role.id).where(Role.name == body["role"]))
        if role_id is None:
            raise NotFound(f"No role named {body['role']!r}.")
        audience: Any = sa.select(User.id).where(User.role_id == role_id, User.deleted_at.is_(None))
        count = request.db.scalar(sa.select(sa.func.count()).select_from(audience.subquery()))
    else:
        ids = list(dict.fromkeys(body["user_ids"]))
        found = set(request.db.scalars(sa.select(User.id).where(User.id.in_(ids), User.deleted_at.is_(None))))
        missing = [uid for uid in ids if uid not in found]
        if missing:
            raise NotFound(f"No user with id {missing[0]}.", details={"user_ids": missing[:20]})
        audience, count = ids, len(ids)
    written = notify(request, audience, "core.system", body["title"], body["content"],
                     body.get("related_type"), body.get("related_id"))
    request.response.status = 201
    return {"recipients": count, "queued": written is None}


def includeme(config: Any) -> None:
    for service in (read_all, user_notifications, unread, notifications, notification, notification_read,
                    preferences):
        config.add_learnsail_service(service)
