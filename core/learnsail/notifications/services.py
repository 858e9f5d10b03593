"""What :func:`learnsail.notifications.notify` does, and the queries the
views, hooks and tasks share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from learnsail.db import utcnow
from learnsail.notifications import (
    BATCH_SIZE,
    CHANNELS,
    NotificationType,
    _chunks,
    get_type,
    types_of,
)
from learnsail.notifications.models import Notification, NotificationPreference

#: fan-out tasks carry at most this many recipient ids each
TASK_CHUNK = 20 * BATCH_SIZE


def session_of(target: Any) -> Any:
    """The SQLAlchemy session of a request, a task context or a session."""
    db = getattr(target, "db", None)
    if db is not None:
        return db
    session = getattr(target, "session", None)
    if session is not None and hasattr(session, "execute"):
        return session
    return target


def _check_text(type_: str, title: Any, content: Any, related_type: Any, related_id: Any) -> None:
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        raise ValueError("notification title must be a non-empty string of at most 200 characters")
    if not isinstance(content, str):
        raise TypeError("notification content must be a string")
    if related_type is not None and (not isinstance(related_type, str) or len(related_type) > 50):
        raise ValueError("related_type must be a string of at most 50 characters")
    if related_id is not None and (isinstance(related_id, bool) or not isinstance(related_id, int)):
        raise TypeError("related_id must be an integer")


def _recipient_ids(recipients: Any) -> list[int]:
    if isinstance(recipients, bool):
        raise TypeError("recipients must be a user id, a list of user ids or a select of user ids")
    if isinstance(recipients, int):
        return [recipients]
    ids: list[int] = []
    for item in recipients:
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(f"recipient {item!r} is not a user id")
        ids.append(item)
    return list(dict.fromkeys(ids))


def notify(target: Any, recipients: Any, type_name: str, title: str, content: str,
           related_type: str | None, related_id: int | None) -> int | None:
    from learnsail.tasks import enqueue

    get_type(target, type_name)
    _check_text(type_name, title, content, related_type, related_id)
    session = session_of(target)
    if isinstance(recipients, sa.Select):
        ids = [int(uid) for uid in session.scalars(recipients).all()]
        inline = False
    else:
        ids = _recipient_ids(recipients)
        limit = int(target_settings(target)["learnsail.notifications_inline_limit"])
        inline = len(ids) <= limit
    if not ids:
        return 0
    if inline:
        return write_batch(target, session, type_name, title, content, related_type, related_id, ids)
    for chunk in _chunks(sorted(ids), TASK_CHUNK):
        enqueue(target, "notify.fanout", type_name, title, content, related_type, related_id, chunk)
    return None


def target_settings(target: Any) -> Any:
    from learnsail.aftercommit import registry_of

    return registry_of(target).settings


def channels_for(session: Any, ntype: NotificationType, user_ids: list[int]) -> dict[int, set[str]]:
    """The channels each of ``user_ids`` receives ``ntype`` on (one query)."""
    result = {uid: set(ntype.default_channels) for uid in user_ids}
    rows = session.execute(sa.select(NotificationPreference.user_id, NotificationPreference.channel,
                                     NotificationPreference.enabled)
                           .where(NotificationPreference.type == ntype.name,
                                  NotificationPreference.user_id.in_(user_ids)))
    for uid, channel, enabled in rows:
        if enabled:
            result[uid].add(channel)
        else:
            result[uid].discard(channel)
    return result


def write_batch(target: Any, session: Any, type_name: str, title: str, content: str,
                related_type: str | None, related_id: int | None, user_ids: list[int]) -> int:
    """Write one batch: the in-app rows (one INSERT per 1,000), their live
    pushes and the email/SMS deliveries, all after ``target`` commits."""
    from learnsail.identity.models import User
    from learnsail.realtime import publish, user_channel
    from learnsail.tasks import enqueue

    ntype = get_type(target, type_name)
    written = 0
    for batch in _chunks(list(user_ids), BATCH_SIZE):
        existing = list(session.scalars(sa.select(User.id).where(User.id.in_(batch), User.deleted_at.is_(None))))
        if not existing:
            continue
        channels = channels_for(session, ntype, existing)
        in_app = [uid for uid in existing if "in_app" in channels[uid]]
        others = [[uid, sorted(channels[uid] - {"in_app"})] for uid in existing if channels[uid] - {"in_app"}]
        if in_app:
            stamp = utcnow().replace(microsecond=0)
            values = [{"user_id": uid, "type": type_name, "title": title, "content": content,
                       "related_type": related_type, "related_id": related_id, "is_read": False,
                       "created_at": stamp} for uid in in_app]
            if session.get_bind().dialect.insert_executemany_returning:
                # one multi-row INSERT ... RETURNING (each row names its user: no order needed)
                ids = [(uid, nid) for nid, uid in session.execute(
                    sa.insert(Notification).returning(Notification.id, Notification.user_id), values)]
            else:
                # one executemany INSERT, then the new ids read back in one query
                session.execute(sa.insert(Notification), values)
                ids = list(session.execute(sa.select(Notification.user_id, sa.func.max(Notification.id))
                                           .where(Notification.user_id.in_(in_app),
                                                  Notification.type == type_name,
                                                  Notification.created_at == stamp)
                                           .group_by(Notification.user_id)))
            written += len(in_app)
            for uid, nid in ids:
                publish(target, user_channel(uid), "notification", {
                    "id": nid, "type": type_name, "title": title, "content": content,
                    "related_type": related_type, "related_id": related_id, "is_read": False,
                    "created_at": stamp})
        if others:
            enqueue(target, "notify.deliver", type_name, title, content, others)
    return written


def deliver(ctx: Any, type_name: str, title: str, content: str, targets: list) -> int:
    """Send the email and SMS of one batch; ``targets`` is
    ``[[user_id, ["email", "sms"]], ...]``.  Returns the messages queued."""
    from learnsail import delivery
    from learnsail.identity.models import User
    from learnsail.notifications import SMS_TEMPLATE

    wanted = {int(uid): set(chans) for uid, chans in targets}
    users = ctx.session.execute(sa.select(User.id, User.email, User.phone)
                                .where(User.id.in_(list(wanted)), User.deleted_at.is_(None)))
    sent = 0
    for uid, email, phone in users:
        if "email" in wanted[uid] and email:
            delivery.send_email(ctx, email, title, content)
            sent += 1
        if "sms" in wanted[uid] and phone:
            delivery.send_sms(ctx, phone, SMS_TEMPLATE, {"title": title})
            sent += 1
    return sent


# --- reading and changing one user's notifications ----------------------------------

def list_query(user_id: int, read: bool | None = None, type_name: str | None = None) -> sa.Select:
    stmt = sa.select(Notification).where(Notification.user_id == user_id).order_by(Notification.id.desc())
    if read is not None:
        stmt = stmt.where(Notification.is_read == read)
    if type_name:
        stmt = stmt.where(Notification.type == type_name)
    return stmt


def unread_count(session: Any, user_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Notification)
                          .where(Notification.user_id == user_id, Notification.is_read == sa.false())) or 0


def own(session: Any, user_id: int, notification_id: int) -> Notification | None:
    """The caller's notification ``notification_id``, or None (also when it
    is someone else's: the caller cannot tell)."""
    return session.scalar(sa.select(Notification).where(Notification.id == notification_id,
                                                        Notification.user_id == user_id))


def mark_read(session: Any, note: Notification) -> Notification:
    if not note.is_read:
        note.is_read = True
        note.read_at = utcnow()
        session.flush()
    return note


def mark_all_read(session: Any, user_id: int) -> int:
    result = session.execute(sa.update(Notification)
                             .where(Notification.user_id == user_id, Notification.is_read == sa.false())
                             .values(is_read=True, read_at=utcnow())
                             .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


def preferences(session: Any, target: Any, user_id: int) -> list[dict]:
    """Every declared type with the effective value of each channel."""
    rows = session.execute(sa.select(NotificationPreference.type, NotificationPreference.channel,
                                     NotificationPreference.enabled)
                           .where(NotificationPreference.user_id == user_id))
    overrides = {(t, c): e for t, c, e in rows}
    out = []
    for name, ntype in sorted(types_of(target).items()):
        out.append({"type": name, "description": ntype.description,
                    "channels": {c: overrides.get((name, c), c in ntype.default_channels) for c in CHANNELS},
                    "defaults": {c: c in ntype.default_channels for c in CHANNELS}})
    return out


def set_preferences(session: Any, target: Any, user_id: int, changes: Iterable[tuple[str, str, bool]]) -> None:
    """Apply ``(type, channel, enabled)`` changes; a value equal to the
    type's default removes the row (only deviations are stored)."""
    declared = types_of(target)
    changes = list(changes)
    existing = {(p.type, p.channel): p for p in session.scalars(
        sa.select(NotificationPreference).where(NotificationPreference.user_id == user_id))}
    for type_name, channel, enabled in changes:
        default = channel in declared[type_name].default_channels
        row = existing.get((type_name, channel))
        if enabled == default:
            if row is not None:
                session.delete(row)
                existing.pop((type_name, channel))
        elif row is not None:
            row.enabled = enabled
        else:
            row = NotificationPreference(user_id=user_id, type=type_name, channel=channel, enabled=enabled)
            session.add(row)
            existing[(type_name, channel)] = row
    session.flush()


def purge_read(session: Any, days: int, now: dt.datetime | None = None) -> int:
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    result = session.execute(sa.delete(Notification)
                             .where(Notification.is_read == sa.true(), Notification.created_at < cutoff)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)
