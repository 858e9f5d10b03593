"""``GET /api/v1/plugins``: what runs on this platform (admins only)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from learnsail.api import Schema, Service
from learnsail.inventory import describe_plugins


class PluginSchema(Schema):
    name = fields.String()
    version = fields.String()
    enabled = fields.Boolean()
    requires = fields.List(fields.String())
    uses = fields.List(fields.String())
    core = fields.String(metadata={"description": "Core versions the plugin supports."})
    migration_head = fields.String(allow_none=True)
    hooks = fields.List(fields.String(), metadata={"description": "Hooks the plugin implements."})
    description = fields.String()


class PluginListSchema(Schema):
    results = fields.List(fields.Nested(PluginSchema))


plugins_service = Service(name="core.plugins", path="/api/v1/plugins",
                          description="Installed plugins and whether they are enabled.")


@plugins_service.get(permission="core:plugins:view", responses={200: PluginListSchema})
def list_plugins(request: Any) -> dict:
    """List installed plugins: version, enabled, requirements, migration head, hooks."""
    return {"results": describe_plugins(request.registry["learnsail.plugins"],
                                        request.registry.settings)}


def includeme(config: Any) -> None:
    config.add_learnsail_service(plugins_service)
