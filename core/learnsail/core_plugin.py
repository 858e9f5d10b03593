"""The core's own hook implementations, registered like a plugin's."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from learnsail import hookimpl
from learnsail.settings import CORE_SETTINGS


@hookimpl
def learnsail_settings():
    from learnsail import cache, notifications, realtime, storage, tasks, webhooks
    from learnsail.identity.oauth import SETTINGS as OAUTH_SETTINGS

    return [*CORE_SETTINGS, *OAUTH_SETTINGS, *cache.SETTINGS, *tasks.SETTINGS, *storage.SETTINGS,
            *notifications.SETTINGS, *realtime.SETTINGS, *webhooks.SETTINGS]


@hookimpl
def learnsail_permissions():
    from learnsail import cache, notifications, realtime, storage, tasks, webhooks

    services = {}
    for module in (cache, tasks, storage, notifications, realtime, webhooks):
        services.update(module.PERMISSIONS)
    return {
        **services,
        "core:plugins:view": ["admin"],
        "core:users:view": ["admin"],
        "core:users:manage": ["admin"],
        "core:account:self": ["authenticated"],
        "core:roles:view": ["admin"],
        "core:roles:manage": ["admin"],
        "core:users:assign_role": ["admin"],
        "core:identity:switch": ["student", "teacher", "admin"],
        "core:menus:manage": ["admin"],
        "core:audit:view": ["admin"],
    }


@hookimpl
def learnsail_periodic_tasks(settings):
    from learnsail import cache, notifications, realtime, storage, tasks, webhooks

    found = []
    for module in (tasks, cache, storage, notifications, realtime, webhooks):
        declare = getattr(module, "periodic_tasks", None)
        if declare is not None:
            found.extend(declare(settings) or ())
    return found


@hookimpl
def learnsail_includeme(config):
    config.include("learnsail.plugins_views")


@hookimpl
def learnsail_health_checks(registry):
    engine = registry["learnsail.db_engine"]

    def database() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    return {"database": database}


@hookimpl
def learnsail_demo_data(session: Any, settings: Any):
    from learnsail.identity.services import ensure_default_roles

    ensure_default_roles(session)
    return None
