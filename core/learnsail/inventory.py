"""What is installed and enabled: shared by ``learnsail plugins`` and
``GET /api/v1/plugins``."""

from __future__ import annotations

from typing import Any

from learnsail import __version__
from learnsail.plugins import CORE_NAME, PluginSet


def declared_hooks(module: Any) -> list[str]:
    """Hook implementations a (possibly disabled) plugin module declares."""
    return sorted(name for name in dir(module)
                  if name.startswith("learnsail_") and hasattr(getattr(module, name), "learnsail_impl"))


def describe_plugins(plugins: PluginSet, settings: dict[str, Any]) -> list[dict[str, Any]]:
    from learnsail import migrations

    cfg = migrations.make_config(settings, plugins)
    pm = plugins.manager

    def hooks_of(plugin_obj: Any) -> list[str]:
        if plugin_obj is None:
            return []
        return sorted(impl.name for impl in (pm.get_hookcallers(plugin_obj) or []))

    core_modules = [p for name, p in pm.list_name_plugin() if name.startswith(f"{CORE_NAME}.")]
    rows = [{
        "name": CORE_NAME, "version": __version__, "enabled": True, "requires": [], "uses": [],
        "core": __version__, "migration_head": migrations.branch_head(cfg, CORE_NAME),
        "hooks": sorted({h for m in core_modules for h in hooks_of(m)}),
        "description": "The learnsail core.",
    }]
    for name in sorted(plugins.installed):
        plugin = plugins.installed[name]
        registered = pm.get_plugin(name)
        rows.append({
            "name": name,
            "version": plugin.info.version,
            "enabled": plugin.enabled,
            "requires": list(plugin.info.requires),
            "uses": list(plugin.info.uses),
            "core": plugin.info.core,
            "migration_head": migrations.branch_head(cfg, name),
            "hooks": hooks_of(registered) if registered is not None else declared_hooks(plugin.module),
            "description": plugin.info.description,
        })
    return rows
