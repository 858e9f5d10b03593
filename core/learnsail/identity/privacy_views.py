"""The caller's personal data over HTTP: ``GET /api/v1/users/me/export``
and ``DELETE /api/v1/users/me`` (erasure, confirmed with the password)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from learnsail.api import Schema, Service, no_content
from learnsail.identity import privacy

SELF = "core:account:self"


class EraseSchema(Schema):
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024),
                             metadata={"description": "The account's password, to confirm."})


class PersonalDataSchema(Schema):
    exported_at = fields.DateTime()
    account = fields.Dict(metadata={"description": "Account fields (never the password hash)."})
    profile = fields.Dict(allow_none=True)
    login_events = fields.List(fields.Dict())
    audit_entries = fields.List(fields.Dict(), metadata={"description": "Changes made to the account."})
    actions = fields.List(fields.Dict(), metadata={"description": "Changes the account made to others."})
    oauth_accounts = fields.List(fields.Dict(), metadata={"description": "Bound WeChat/QQ identities."})
    verification_codes = fields.List(fields.Dict(), metadata={"description": "Codes sent (never the codes)."})
    plugins = fields.Dict(metadata={"description": "Each plugin's data, by plugin name."})


me_export = Service(name="core.users_me_export", path="/api/v1/users/me/export",
                    description="Everything the platform holds about the caller.")
me = Service(name="core.users_me", path="/api/v1/users/me", description="The caller's account.")


@me_export.get(permission=SELF, responses={200: PersonalDataSchema})
def export_view(request: Any) -> dict:
    """Download every piece of the caller's personal data (JSON)."""
    data = privacy.export(request.db, request.registry["learnsail.pm"], request.identity)
    request.response.content_disposition = 'attachment; filename="my-learnsail-data.json"'
    request.response.cache_control = "no-store"
    return data


@me.delete(permission=SELF, schema=EraseSchema, responses={204: None}, errors=(429,))
def erase_view(request: Any) -> Any:
    """Erase the caller's account and personal data (irreversible); the
    password confirms it.  Every session ends."""
    user = request.identity
    request.rate_limit("erase-account", str(user.id), request.registry.settings["learnsail.ratelimit_login_account"])
    privacy.erase(request.db, request.registry["learnsail.pm"], user, request.validated["body"]["password"])
    return no_content(request)


def includeme(config: Any) -> None:
    config.add_learnsail_service(me_export)
    config.add_learnsail_service(me)
