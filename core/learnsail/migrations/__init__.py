"""Migrations: one alembic environment owned by the core.

The core's revisions are the branch ``core``; every plugin ships only its
versions directory, a branch labelled with the plugin's name whose first
revision ``depends_on`` the branches it needs.  No alembic.ini: the
configuration is built here from the settings and the installed plugins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from learnsail.plugins import CORE_NAME, PluginError, PluginSet

HERE = Path(__file__).parent
CORE_VERSIONS = HERE / "versions"


def owner_of(table_name: str, plugin_names: Iterable[str]) -> str:
    """The branch a table belongs to: its ``<plugin>_`` prefix, else core."""
    for name in sorted(plugin_names, key=len, reverse=True):
        if table_name.startswith(f"{name}_"):
            return name
    return CORE_NAME


def table_owner(table: Any, name: str, plugin_names: Iterable[str]) -> str | None:
    """Like :func:`owner_of`, for a table of the models (``table``) or of
    the database (``table`` is None).  A model table that is neither the
    core's nor an installed plugin's (a model imported in this process from
    a plugin that is not installed here) belongs to no branch: None."""
    from learnsail.db import CORE_TABLES

    if table is not None and name in CORE_TABLES:
        return CORE_NAME
    owner = owner_of(name, plugin_names)
    if owner == CORE_NAME and table is not None:
        return None
    return owner


def make_config(settings: dict[str, Any], plugins: PluginSet, *, connection: Any = None,
                only: Iterable[str] | None = None, stdout: Any = None) -> Config:
    """An alembic Config that sees the core's and every installed plugin's
    versions (so revisions of disabled plugins still resolve).

    ``only`` limits which branches' tables the model comparison looks at
    (default: the core and the enabled plugins).
    """
    import sys

    # alembic's default binds the sys.stdout of import time; use today's
    cfg = Config(stdout=stdout if stdout is not None else sys.stdout)
    cfg.set_main_option("script_location", str(HERE))
    locations = [str(CORE_VERSIONS)]
    for plugin in plugins.installed.values():
        if plugin.migrations_dir is not None:
            locations.append(str(plugin.migrations_dir))
    cfg.set_main_option("path_separator", "os")
    import os

    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    cfg.attributes["learnsail.settings"] = settings
    cfg.attributes["learnsail.installed"] = sorted(plugins.installed)
    cfg.attributes["learnsail.branches"] = set(only) if only is not None else {CORE_NAME, *plugins.order}
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def branches(cfg: Config) -> set[str]:
    script = ScriptDirectory.from_config(cfg)
    labels: set[str] = set()
    for rev in script.walk_revisions():
        labels |= set(rev.branch_labels or ())
    return labels


def branch_head(cfg: Config, branch: str) -> str | None:
    script = ScriptDirectory.from_config(cfg)
    try:
        heads = script.get_revisions(f"{branch}@head")
    except Exception:  # alembic raises several types for an unknown branch
        return None
    return heads[0].revision if heads else None


def core_head() -> str:
    """The newest revision of the core's own branch."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(CORE_VERSIONS))
    head = branch_head(cfg, CORE_NAME)
    assert head is not None, "the core has no migrations"
    return head


def upgrade(settings: dict[str, Any], plugins: PluginSet, *, connection: Any = None,
            stdout: Any = None) -> list[str]:
    """Upgrade the core and every enabled plugin to their heads; returns the
    branches upgraded.  Disabled plugins' tables are left as they are."""
    cfg = make_config(settings, plugins, connection=connection, stdout=stdout)
    known = branches(cfg)
    done = []
    for branch in [CORE_NAME, *plugins.order]:
        if branch in known:
            command.upgrade(cfg, f"{branch}@head")
            done.append(branch)
    return done


def remove_plugin(settings: dict[str, Any], plugins: PluginSet, name: str, *,
                  connection: Any = None, stdout: Any = None) -> None:
    """Drop exactly ``name``'s tables (downgrade its branch to base, which
    also deletes its alembic_version row).  Refuses while an enabled plugin
    requires it."""
    if name == CORE_NAME:
        raise PluginError("the core cannot be removed.")
    if name not in plugins.installed:
        raise PluginError(
            f"plugin {name!r} is not installed, so its migrations cannot be found: install it "
            f"again, run `learnsail db remove-plugin {name}`, then uninstall it."
        )
    dependents = [p.name for p in plugins.installed.values()
                  if name in p.info.requires and p.enabled]
    if dependents:
        raise PluginError(
            f"plugin {name!r} is required by enabled plugin(s) {', '.join(sorted(dependents))}: "
            f"disable and remove those first."
        )
    cfg = make_config(settings, plugins, connection=connection, stdout=stdout)
    if name not in branches(cfg):
        return  # a plugin without tables: nothing to drop
    command.downgrade(cfg, f"{name}@base")
