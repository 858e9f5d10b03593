"""The notifications service of the core (see docs/notifications.md).

    from learnsail.notifications import notify

    notify(request, [student.id], "courses.new_lesson", "New lesson",
           "Lesson 3 is online.", related_type="lesson", related_id=lesson.id)

A notification has a *type*, declared by the core or a plugin through the
``learnsail_notification_types`` hook (:class:`NotificationType`).  Each user
chooses, per type, the channels it reaches them on: ``in_app`` (a row in
``notifications``, pushed live on the realtime channel ``user:<id>``),
``email`` and ``sms`` (sent by the task ``notify.deliver``).  Nothing leaves
before the caller's transaction commits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from learnsail.settings import Setting, as_int

#: the delivery channels, in the order the preferences list them
CHANNELS: tuple[str, ...] = ("in_app", "email", "sms")
#: recipients written per INSERT by the fan-out task
BATCH_SIZE = 1000
#: the SMS template notifications are sent with (registered in learnsail.delivery.SMS_TEMPLATES)
SMS_TEMPLATE = "notification"

TYPES_KEY = "learnsail.notification_types"

#: the settings this service declares (listed by core_plugin.learnsail_settings)
SETTINGS: tuple[Setting, ...] = (
    Setting("learnsail.notifications_inline_limit", 100,
            "Recipients up to which `notify()` writes the in-app notifications in the caller's "
            "transaction; beyond it (or for a query of recipients) the task `notify.fanout` writes them "
            "after the commit, 1,000 per INSERT.", as_int),
    Setting("learnsail.notifications_retention_days", 90,
            "Read notifications older than this many days are deleted by the daily task "
            "`notify.purge` (unread ones are kept). 0 keeps them forever.", as_int),
)

#: permissions and their default grants (merged by core_plugin.learnsail_permissions)
PERMISSIONS: dict[str, list[str]] = {
    "core:notifications:send": ["admin"],
}


@dataclasses.dataclass(frozen=True)
class NotificationType:
    """A kind of notification: ``name`` (``"<plugin>.<what>"``), a
    ``description`` shown in the preferences, and the channels it reaches a
    user on until they change it (``in_app``, ``email``, ``sms``)."""

    name: str
    description: str
    default_channels: tuple[str, ...] = ("in_app",)

    def __post_init__(self) -> None:
        unknown = set(self.default_channels) - set(CHANNELS)
        if unknown:
            raise ValueError(f"notification type {self.name!r}: unknown channels {sorted(unknown)}; "
                             f"use {list(CHANNELS)}")
        object.__setattr__(self, "default_channels", tuple(self.default_channels))


#: the types the core itself sends (declared by learnsail.notifications.hooks)
CORE_TYPES: tuple[NotificationType, ...] = (
    NotificationType("core.system", "Announcements from the platform's administrators."),
    NotificationType("core.login_new_device", "A sign-in to your account from a new device or place.",
                     ("in_app", "email")),
)


def types_of(target: Any) -> dict[str, NotificationType]:
    """Every declared type by name (the core's and the enabled plugins'),
    from a request, session, task context or the registry."""
    from learnsail.aftercommit import registry_of

    registry = registry_of(target)
    found = registry.get(TYPES_KEY) if hasattr(registry, "get") else None
    if found is None:
        found = {}
        pm = registry["learnsail.pm"]
        for declared in pm.hook.learnsail_notification_types():
            for item in declared or ():
                if not isinstance(item, NotificationType):
                    raise TypeError(f"learnsail_notification_types must return NotificationType objects, "
                                    f"not {item!r}")
                found[item.name] = item
        registry[TYPES_KEY] = found
    return found


def get_type(target: Any, name: str) -> NotificationType:
    """The declared type ``name``; ValueError for an undeclared one."""
    try:
        return types_of(target)[name]
    except KeyError:
        raise ValueError(f"notification type {name!r} is not declared: return it from a "
                         f"learnsail_notification_types hook") from None


def notify(target: Any, recipients: Any, type: str, title: str, content: str,
           related_type: str | None = None, related_id: int | None = None) -> int | None:
    """Notify ``recipients`` (a user id, a list of ids, or a SQLAlchemy
    select of user ids) with a notification of the declared ``type``.

    ``target`` is the request, a session or a task context: everything
    happens in (or after the commit of) its transaction.  Up to
    ``learnsail.notifications_inline_limit`` recipients the in-app rows are
    written now (one INSERT); beyond it, or for a select, the task
    ``notify.fanout`` writes them after the commit.  Returns the number of
    in-app rows written now (None when the fan-out task does it).
    """
    from learnsail.notifications import services

    return services.notify(target, recipients, type, title, content, related_type, related_id)


def periodic_tasks(settings: Mapping[str, Any]) -> list[Any]:
    from learnsail.tasks import Periodic

    if int(settings.get("learnsail.notifications_retention_days", 90)) <= 0:
        return []
    return [Periodic("notify.purge", "notify.purge", every=24 * 3600)]


def includeme(config: Any) -> None:
    """Wire the service into the app (called by learnsail.app.configure)."""
    from learnsail import delivery
    from learnsail.settings import SettingError

    settings = config.get_settings()
    for name in ("learnsail.notifications_inline_limit",):
        if int(settings.get(name, 1)) < 1:
            raise SettingError(f"{name} must be at least 1")
    delivery.SMS_TEMPLATES.setdefault(SMS_TEMPLATE, "【learnsail】{title}")
    pm = config.registry.get("learnsail.pm")
    if pm is not None and pm.get_plugin("core.notifications") is None:
        from learnsail.notifications import hooks

        pm.register(hooks, name="core.notifications")
    from learnsail.notifications import tasks  # noqa: F401  (declares the notify.* tasks)

    config.include("learnsail.notifications.views")


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
