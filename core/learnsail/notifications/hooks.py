"""The notification service's own hook implementations (registered as the
plugin ``core.notifications``): the core's notification types, the
new-device notice, and its part in a user's data export and erasure."""

from __future__ import annotations

import sqlalchemy as sa

from learnsail import hookimpl


@hookimpl
def learnsail_notification_types():
    from learnsail.notifications import CORE_TYPES

    return list(CORE_TYPES)


@hookimpl
def learnsail_login_new_device(user, event, session):
    from learnsail.notifications import notify

    when = event.created_at.strftime("%Y-%m-%d %H:%M UTC") if event.created_at else "just now"
    agent = (event.user_agent or "an unknown browser")[:200]
    notify(session, user.id, "core.login_new_device", "New sign-in to your account",
           f"Your account was signed in to at {when} from {event.ip or 'an unknown address'} "
           f"({agent}). If this was not you, change your password now.")


@hookimpl
def learnsail_user_export(user_id, session):
    from learnsail.notifications.models import Notification, NotificationPreference

    notes = [{"id": n.id, "type": n.type, "title": n.title, "content": n.content,
              "related_type": n.related_type, "related_id": n.related_id, "is_read": n.is_read,
              "read_at": n.read_at, "created_at": n.created_at}
             for n in session.scalars(sa.select(Notification).where(Notification.user_id == user_id)
                                      .order_by(Notification.id))]
    prefs = [{"type": p.type, "channel": p.channel, "enabled": p.enabled}
             for p in session.scalars(sa.select(NotificationPreference)
                                      .where(NotificationPreference.user_id == user_id)
                                      .order_by(NotificationPreference.id))]
    if not notes and not prefs:
        return None
    return {"notifications": notes, "preferences": prefs}


@hookimpl
def learnsail_user_erased(user_id, session):
    from learnsail.notifications.models import Notification, NotificationPreference

    for model in (Notification, NotificationPreference):
        session.execute(sa.delete(model).where(model.user_id == user_id)
                        .execution_options(synchronize_session=False))
