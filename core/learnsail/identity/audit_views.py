"""``GET /api/v1/admin/audit-log``: who changed what, filtered and paged
(admins, ``core:audit:view``).  Entries are written by
:mod:`learnsail.identity.audit`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields, validate, validates_schema

from learnsail.api import Service, page_of
from learnsail.api.validation import Id, QuerySchema, Schema, UTCInstant
from learnsail.db.pagination import MAX_PAGE, paginate
from learnsail.identity.models import AuditEntry, User

AUDIT_VIEW = "core:audit:view"


class AuditQuerySchema(QuerySchema):
    actor_id = Id(metadata={"description": "The account that made the change."})
    action = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "Exact action (core:role:update), or a prefix ending in * (core:role:*)."})
    target_type = fields.String(validate=validate.Length(min=1, max=50), metadata={"example": "role"})
    target_id = fields.String(validate=validate.Length(min=1, max=64))
    from_ = UTCInstant(data_key="from", metadata={
        "description": "Entries at or after this instant (ISO 8601; UTC when no offset is given)."})
    to = UTCInstant(metadata={
        "description": "Entries before this instant (ISO 8601; UTC when no offset is given)."})
    page = fields.Integer(validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(validate=validate.Range(min=1), metadata={"description": "At most 100."})

    @validates_schema
    def ordered_range(self, data: dict, **kwargs: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("Must not be before 'from'.", "to")


class AuditEntryOutSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    actor_id = fields.Integer(allow_none=True)
    actor = fields.String(allow_none=True, metadata={"description": "The actor's username."})
    action = fields.String(metadata={"example": "core:role:update"})
    target_type = fields.String()
    target_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    before = fields.Raw(allow_none=True, metadata={"description": "The target before the change."})
    after = fields.Raw(allow_none=True, metadata={"description": "The target after the change."})


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def audit_query(filters: dict[str, Any]) -> sa.Select:
    """The entries matching ``filters`` (the query schema's fields), newest
    first, each with its actor's username."""
    stmt = (sa.select(AuditEntry, User.username)
            .outerjoin(User, User.id == AuditEntry.actor_id)
            .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()))
    if filters.get("actor_id") is not None:
        stmt = stmt.where(AuditEntry.actor_id == filters["actor_id"])
    action = filters.get("action")
    if action:
        if action.endswith("*"):
            stmt = stmt.where(AuditEntry.action.like(_escape_like(action[:-1]) + "%", escape="\\"))
        else:
            stmt = stmt.where(AuditEntry.action == action)
    if filters.get("target_type"):
        stmt = stmt.where(AuditEntry.target_type == filters["target_type"])
    if filters.get("target_id"):
        stmt = stmt.where(AuditEntry.target_id == filters["target_id"])
    if filters.get("from_"):
        stmt = stmt.where(AuditEntry.created_at >= filters["from_"])
    if filters.get("to"):
        stmt = stmt.where(AuditEntry.created_at < filters["to"])
    return stmt


def entry_out(row: Any) -> dict:
    entry, username = row
    return {"id": entry.id, "created_at": entry.created_at, "actor_id": entry.actor_id, "actor": username,
            "action": entry.action, "target_type": entry.target_type, "target_id": entry.target_id,
            "ip": entry.ip, "before": entry.before, "after": entry.after}


audit_log = Service(name="core.audit_log", path="/api/v1/admin/audit-log",
                    description="The audit log: role, permission and account changes.")


@audit_log.get(permission=AUDIT_VIEW, schema={"querystring": AuditQuerySchema},
               responses={200: page_of(AuditEntryOutSchema)})
def list_audit_log(request: Any) -> dict:
    """Query the audit log (admin), newest first, paginated.

    Filter by ``actor_id``, ``action`` (exact, or a prefix ending in ``*``),
    ``target_type``, ``target_id`` and the period ``from`` (inclusive) /
    ``to`` (exclusive).
    """
    stmt = audit_query(request.validated["querystring"])
    return paginate(request, request.db, stmt, entry_out, scalars=False)


def includeme(config: Any) -> None:
    config.add_learnsail_service(audit_log)
