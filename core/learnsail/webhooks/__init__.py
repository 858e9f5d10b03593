"""The webhooks service of the core (see docs/webhooks.md)."""

from __future__ import annotations

from typing import Any

from learnsail.settings import Setting

#: the settings this service declares (listed by core_plugin.learnsail_settings)
SETTINGS: tuple[Setting, ...] = ()

#: permissions and their default grants (merged by core_plugin.learnsail_permissions)
PERMISSIONS: dict[str, list[str]] = {}


def includeme(config: Any) -> None:
    """Wire the service into the app (called by learnsail.app.configure)."""
