"""Plugin discovery, selection, ordering and the pluggy manager.

A plugin is a module registered under the ``learnsail.plugins`` entry-point
group.  It describes itself with a module attribute ``PLUGIN`` (a
:class:`PluginInfo`) and implements hooks with ``@hookimpl``.  Built-in
plugins are found exactly like third-party ones.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Iterable, Mapping

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from learnsail import __version__ as CORE_VERSION
from learnsail import hookspecs

ENTRY_POINT_GROUP = "learnsail.plugins"
CORE_NAME = "core"


class PluginError(RuntimeError):
    """Start-up cannot go on: the message names the plugin and the fix."""


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin declares about itself (its module's ``PLUGIN``).

    ``requires`` are hard requirements: start-up stops when one is missing or
    disabled.  ``uses`` are soft: wired before this plugin when present.
    ``core`` is a PEP 440 version range of the core this plugin supports.
    ``migrations`` is the plugin's alembic versions directory, relative to
    its package (``None`` when the plugin has no tables).
    """

    name: str
    version: str = "0"
    requires: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    core: str = ""
    migrations: str | None = "migrations/versions"
    description: str = ""


@dataclass
class Plugin:
    """An installed plugin: its info, its module and where it came from."""

    info: PluginInfo
    module: ModuleType
    distribution: str = ""
    enabled: bool = False
    hookspecs: ModuleType | None = None

    def __post_init__(self) -> None:
        if self.hookspecs is None:
            self.hookspecs = getattr(self.module, "HOOKSPECS", None)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def migrations_dir(self) -> Path | None:
        if not self.info.migrations:
            return None
        package = self.module.__name__.rpartition(".")[0] or self.module.__name__
        root = Path(importlib.import_module(package).__file__).parent
        path = root / self.info.migrations
        return path if path.is_dir() else None


@dataclass
class PluginSet:
    """The installed plugins, the enabled ones in wiring order, and the manager."""

    installed: dict[str, Plugin]
    order: list[str]
    manager: pluggy.PluginManager = field(repr=False)

    @property
    def enabled(self) -> list[Plugin]:
        return [self.installed[name] for name in self.order]

    def get(self, name: str) -> Plugin | None:
        return self.installed.get(name)


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> Plugin:
    try:
        module = ep.load()
    except Exception as exc:  # an import error in a plugin must name the plugin
        raise PluginError(
            f"plugin {ep.name!r} ({ep.value}) failed to import: {exc!r}. "
            f"Fix the plugin or remove it from learnsail.plugins."
        ) from exc
    info = getattr(module, "PLUGIN", None)
    if not isinstance(info, PluginInfo):
        raise PluginError(
            f"plugin {ep.name!r} ({ep.value}) has no PLUGIN = PluginInfo(...) attribute; "
            f"declare its name, version and requirements."
        )
    if info.name != ep.name:
        raise PluginError(
            f"plugin entry point {ep.name!r} points at a plugin named {info.name!r}; "
            f"make the entry-point name and PluginInfo.name the same."
        )
    dist = getattr(ep, "dist", None)
    return Plugin(info=info, module=module, distribution=dist.name if dist else "")


def discover() -> dict[str, Plugin]:
    """Every plugin installed in this environment, by name."""
    found: dict[str, Plugin] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found or ep.name == CORE_NAME:
            if ep.name == CORE_NAME:
                raise PluginError(f"a plugin may not be called {CORE_NAME!r} ({ep.value}); rename it.")
            continue  # the same distribution seen twice on sys.path
        found[ep.name] = _load_entry_point(ep)
    return found


def _check_core_version(plugin: Plugin) -> None:
    if not plugin.info.core:
        return
    try:
        spec = SpecifierSet(plugin.info.core)
    except InvalidSpecifier:
        raise PluginError(
            f"plugin {plugin.name!r} declares an invalid core version range {plugin.info.core!r}; "
            f"use a PEP 440 range such as '>=0.1,<1'."
        ) from None
    if Version(CORE_VERSION) not in spec:
        raise PluginError(
            f"plugin {plugin.name!r} {plugin.info.version} supports learnsail core {spec}, "
            f"but this is core {CORE_VERSION}: upgrade the plugin, or install a core in {spec}."
        )


def resolve(installed: Mapping[str, Plugin], wanted: Iterable[str]) -> list[str]:
    """Names of the enabled plugins in dependency order.

    ``wanted`` is the ``learnsail.plugins`` setting: names, ``*`` for every
    installed plugin, or nothing for the core alone.  Hard
    requirements come before the plugins that need them, and so do soft ones
    that are enabled.  Raises :class:`PluginError` for an unknown name, a
    missing or disabled hard requirement, a cycle or an incompatible core.
    """
    wanted = [name for name in wanted if name != CORE_NAME]  # the core always runs
    if "*" in wanted:
        enabled = set(installed)
    else:
        unknown = [name for name in wanted if name not in installed]
        if unknown:
            raise PluginError(
                f"learnsail.plugins names {', '.join(unknown)}, which is not installed "
                f"(installed: {', '.join(sorted(installed)) or 'none'}). Install its distribution "
                f"(pip install learnsail-{unknown[0]}) or remove it from the setting."
            )
        enabled = set(wanted)

    for name in sorted(enabled):
        plugin = installed[name]
        _check_core_version(plugin)
        for req in plugin.info.requires:
            if req == CORE_NAME:
                continue
            if req not in installed:
                raise PluginError(
                    f"plugin {name!r} requires plugin {req!r}, which is not installed: "
                    f"pip install learnsail-{req}, or disable {name!r}."
                )
            if req not in enabled:
                raise PluginError(
                    f"plugin {name!r} requires plugin {req!r}, which is disabled: "
                    f"add {req!r} to learnsail.plugins (LEARNSAIL_PLUGINS), or disable {name!r}."
                )

    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise PluginError(
                f"plugins depend on each other in a cycle: {' -> '.join(cycle)}; "
                f"plugin {name!r} must drop one of these requirements."
            )
        state[name] = "visiting"
        info = installed[name].info
        for dep in sorted(set(info.requires) | set(info.uses)):
            if dep in enabled:
                visit(dep, path + [name])
        state[name] = "done"
        order.append(name)

    for name in sorted(enabled):
        visit(name, [])
    return order


def build_manager(order: list[str], installed: Mapping[str, Plugin],
                  core_plugins: Iterable[ModuleType] = ()) -> pluggy.PluginManager:
    """A pluggy manager with the core's hookspecs, every enabled plugin's
    published hookspecs, the core's own implementations and the plugins."""
    pm = pluggy.PluginManager("learnsail")
    pm.add_hookspecs(hookspecs)
    for name in order:
        if installed[name].hookspecs is not None:
            pm.add_hookspecs(installed[name].hookspecs)
    for module in core_plugins:
        pm.register(module, name=f"{CORE_NAME}.{module.__name__.rpartition('.')[2]}")
    for name in order:
        pm.register(installed[name].module, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"{exc} — a hook implementation matches no hook specification: check its spelling "
            f"against docs/hooks.md, or declare the plugin that publishes it in `requires`."
        ) from None
    return pm


def load(wanted: Iterable[str], core_plugins: Iterable[ModuleType] = (),
         installed: Mapping[str, Plugin] | None = None) -> PluginSet:
    """Discover, select, order and wire the plugins."""
    installed = dict(discover() if installed is None else installed)
    order = resolve(installed, wanted)
    for plugin in installed.values():
        plugin.enabled = plugin.name in order
    manager = build_manager(order, installed, core_plugins)
    return PluginSet(installed=installed, order=order, manager=manager)
