"""The WSGI application: ``main`` (PasteDeploy) and ``configure``.

The plugin manager is built here, inside the app factory, never at import
time: every app (and every test) gets its own, from its own settings.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
from typing import Any, Iterable, Mapping

from pyramid.config import Configurator
from pyramid.renderers import JSON

from learnsail import core_plugin, plugins as plugins_mod, settings as settings_mod


def _iso(value: dt.datetime, request: Any) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _iso(value, None)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def json_renderer() -> JSON:
    renderer = JSON(ensure_ascii=False)
    renderer.add_adapter(dt.datetime, _iso)
    renderer.add_adapter(dt.date, lambda v, r: v.isoformat())
    renderer.add_adapter(decimal.Decimal, lambda v, r: str(v))
    return renderer


def call_in_order(pm: Any, hook_name: str, order: Iterable[str], **kwargs: Any) -> list[tuple[str, Any]]:
    """Call ``hook_name`` on the core, then each plugin in ``order``
    (dependency order; pluggy itself calls the newest registration first).

    Each implementation receives only the arguments it declares, as pluggy
    would pass them."""
    rank = {name: i for i, name in enumerate(order)}
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    impls = sorted(impls, key=lambda impl: (0, 0) if impl.plugin_name.startswith("core.")
                   else (1, rank.get(impl.plugin_name, len(rank))))
    return [(impl.plugin_name, impl.function(*[kwargs[arg] for arg in impl.argnames]))
            for impl in impls]


def load_settings(raw: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                  installed: Mapping[str, plugins_mod.Plugin] | None = None
                  ) -> tuple[dict[str, Any], plugins_mod.PluginSet]:
    """Resolve the core settings, load the enabled plugins, then resolve
    every setting the plugins declare.  Used by the app and the CLI."""
    environ = os.environ if environ is None else environ
    core = settings_mod.collect(settings_mod.CORE_SETTINGS, raw, environ)
    plugin_set = plugins_mod.load(core["learnsail.plugins"], core_plugins=[core_plugin], installed=installed)
    declared: list[settings_mod.Setting] = []
    for _, result in call_in_order(plugin_set.manager, "learnsail_settings", plugin_set.order):
        declared.extend(result or ())
    return settings_mod.collect(declared, raw, environ), plugin_set


def configure(raw: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
              installed: Mapping[str, plugins_mod.Plugin] | None = None) -> Configurator:
    settings, plugin_set = load_settings(raw, environ, installed)
    config = Configurator(settings=settings)
    registry = config.registry
    registry["learnsail.plugins"] = plugin_set
    registry["learnsail.pm"] = plugin_set.manager
    registry["learnsail.json_dumps"] = json_dumps
    config.add_renderer("json", json_renderer())
    config.include("learnsail.routing")
    config.include("learnsail.db")
    config.include("learnsail.api")
    config.include("learnsail.ratelimit")
    config.include("learnsail.delivery")
    config.include("learnsail.identity")
    config.include("learnsail.cache")
    config.include("learnsail.tasks")
    config.include("learnsail.storage")
    config.include("learnsail.realtime")
    config.include("learnsail.notifications")
    config.include("learnsail.webhooks")
    config.include("learnsail.ops")

    pm = plugin_set.manager
    grants: dict[str, set[str]] = {}
    for _, declared in call_in_order(pm, "learnsail_permissions", plugin_set.order):
        for permission, roles in (declared or {}).items():
            grants.setdefault(permission, set()).update(roles)
    registry["learnsail.permissions"] = grants

    checks: dict[str, Any] = {}
    for _, contributed in call_in_order(pm, "learnsail_health_checks", plugin_set.order, registry=registry):
        checks.update(contributed or {})
    registry["learnsail.health_checks"] = checks
    call_in_order(pm, "learnsail_prometheus_collectors", plugin_set.order, registry=registry,
                  metrics_registry=registry["learnsail.metrics"].registry)
    call_in_order(pm, "learnsail_includeme", plugin_set.order, config=config)
    return config


def make_wsgi_app(config: Configurator) -> Any:
    """The WSGI app of ``config``, with the request methods and properties
    that the core and plugins added baked into one request class: Pyramid
    would otherwise build a new class for every request."""
    app = config.make_wsgi_app()
    extensions = app.request_extensions
    if extensions is not None:
        attrs = {**extensions.methods, **extensions.descriptors}
        app.request_factory = type("LearnsailRequest", (app.request_factory,), attrs)
        app.request_extensions = None
    return app


def make_app(raw: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
             installed: Mapping[str, plugins_mod.Plugin] | None = None) -> Any:
    return make_wsgi_app(configure(raw, environ, installed))


def main(global_config: Mapping[str, Any] | None, **settings: Any) -> Any:
    """PasteDeploy entry point: ``use = egg:learnsail``."""
    return make_app(settings)
