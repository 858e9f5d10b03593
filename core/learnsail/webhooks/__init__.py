"""The webhooks service of the core (see docs/webhooks.md).

    from learnsail.webhooks import emit

    emit(request, "courses.published", {"id": course.id, "title": course.title})

Plugins declare their event types through the ``learnsail_webhook_events``
hook; admins subscribe endpoints (URLs) to declared types.  :func:`emit`
writes the event and one delivery per subscribed endpoint into the
caller's transaction (the outbox): when the change rolls back, nothing is
sent.  After the commit the task ``webhooks.deliver`` POSTs it, signed;
failures are retried with backoff, and every attempt is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from learnsail.settings import Setting, as_bool, as_int

EVENTS_KEY = "learnsail.webhook_events"
#: the event sent by ``POST /api/v1/webhooks/{id}/ping``, to that endpoint only
PING = "webhooks.ping"

#: the settings this service declares (listed by core_plugin.learnsail_settings)
SETTINGS: tuple[Setting, ...] = (
    Setting("learnsail.webhooks_allow_private", False,
            "Allow webhook URLs whose host is an internal address (loopback, private networks, "
            "link-local such as cloud metadata). Off: such endpoints are refused when registered and "
            "when called.", as_bool),
    Setting("learnsail.webhooks_timeout", 10,
            "Seconds a receiver has to answer a webhook request; no answer in time is a failed attempt.",
            as_int),
    Setting("learnsail.webhooks_max_attempts", 8,
            "Attempts per delivery before it is marked failed (the first one included).", as_int),
    Setting("learnsail.webhooks_retry_delay", 30,
            "Seconds before the first retry of a failed delivery; each further retry waits twice as long "
            "(capped at 6 hours), with jitter.", as_int),
    Setting("learnsail.webhooks_retention_days", 30,
            "Events whose deliveries all finished are deleted (with their delivery log) after this many "
            "days by the daily task `webhooks.purge`. 0 keeps them forever.", as_int),
)

#: permissions and their default grants (merged by core_plugin.learnsail_permissions)
PERMISSIONS: dict[str, list[str]] = {
    "core:webhooks:manage": ["admin"],
}

#: the event types the core emits (declared by learnsail.webhooks.hooks)
CORE_EVENTS: dict[str, str] = {
    "user.created": "An account was created (registration, an admin, SMS or OAuth sign-in). "
                    "Data: id, username, role, created_at.",
    "user.erased": "An account was erased (its owner or an admin deleted it). Data: id.",
}


def events_of(target: Any) -> dict[str, str]:
    """Every declared event type with its description (the core's and the
    enabled plugins'), from a request, session, task context or registry."""
    from learnsail.aftercommit import registry_of

    registry = registry_of(target)
    found = registry.get(EVENTS_KEY)
    if found is None:
        found = {}
        for declared in registry["learnsail.pm"].hook.learnsail_webhook_events():
            for name, description in (declared or {}).items():
                if not isinstance(name, str) or "." not in name or len(name) > 100:
                    raise ValueError(f"webhook event type {name!r}: use '<plugin>.<event>', at most 100 "
                                     f"characters")
                found[name] = str(description)
        registry[EVENTS_KEY] = found
    return found


def emit(target: Any, type: str, data: Mapping[str, Any]) -> int:
    """Emit the event ``type`` (declared through ``learnsail_webhook_events``)
    with the JSON-serialisable ``data``.

    ``target`` is the request, a session or a task context: the event and
    its deliveries are written in that transaction and sent after it
    commits.  Returns how many endpoints will receive it (0 writes nothing).
    """
    from learnsail.webhooks import services

    return services.emit(target, type, data)


def periodic_tasks(settings: Mapping[str, Any]) -> list[Any]:
    from learnsail.tasks import Periodic

    found = [Periodic("webhooks.dispatch", "webhooks.dispatch", every=60)]
    if int(settings.get("learnsail.webhooks_retention_days", 30)) > 0:
        found.append(Periodic("webhooks.purge", "webhooks.purge", every=24 * 3600))
    return found


def includeme(config: Any) -> None:
    """Wire the service into the app (called by learnsail.app.configure)."""
    from learnsail.settings import SettingError

    settings = config.get_settings()
    for name, least in (("learnsail.webhooks_timeout", 1), ("learnsail.webhooks_max_attempts", 1),
                        ("learnsail.webhooks_retry_delay", 0), ("learnsail.webhooks_retention_days", 0)):
        if int(settings.get(name, least)) < least:
            raise SettingError(f"{name} must be at least {least}")
    pm = config.registry.get("learnsail.pm")
    if pm is not None and pm.get_plugin("core.webhooks") is None:
        from learnsail.webhooks import hooks

        pm.register(hooks, name="core.webhooks")
    from learnsail.webhooks import tasks  # noqa: F401  (declares the webhooks.* tasks)

    config.include("learnsail.webhooks.views")
