"""The core's own hook implementations, registered like a plugin's."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from learnsail import hookimpl
from learnsail.settings import CORE_SETTINGS


@hookimpl
def learnsail_settings():
    from learnsail.identity.oauth import SETTINGS as OAUTH_SETTINGS

    return [*CORE_SETTINGS, *OAUTH_SETTINGS]


@hookimpl
def learnsail_permissions():
    return {
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
