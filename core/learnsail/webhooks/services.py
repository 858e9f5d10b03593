"""Webhooks: the outbox, delivering, retrying, redelivering and purging."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail.webhooks import PING, events_of, sender
from learnsail.webhooks.models import (FAILED, PENDING, RETRYING, SUCCEEDED, WebhookAttempt, WebhookDelivery,
                                       WebhookEndpoint, WebhookEvent)

log = logging.getLogger("learnsail.webhooks")

#: the longest wait between two attempts
MAX_DELAY = 6 * 3600
#: with a broker, retries are sent with a countdown; the sweep only picks up
#: deliveries whose message is this late (lost), so it does not race them
SWEEP_GRACE = 60
#: deliveries sent per sweep
SWEEP_BATCH = 500


def _session(target: Any) -> Session:
    if isinstance(target, Session):
        return target
    for attr in ("db", "session"):
        found = getattr(target, attr, None)
        if isinstance(found, Session):
            return found
    raise TypeError(f"cannot find a database session in {target!r}")


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def body_of(event: WebhookEvent) -> bytes:
    """What a receiver gets: the event's id, type, time and data."""
    return json.dumps({"id": event.uid, "type": event.type, "created_at": event.created_at.isoformat(),
                       "data": event.data}, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=True).encode()


def subscribers(session: Session, type_name: str) -> list[int]:
    """The active endpoints subscribed to ``type_name``.  (The event lists
    are filtered here rather than in SQL: JSON containment differs between
    SQLite and MySQL, and endpoints are few.)"""
    rows = session.execute(sa.select(WebhookEndpoint.id, WebhookEndpoint.events)
                           .where(WebhookEndpoint.is_active.is_(True))).all()
    return [eid for eid, events in rows if type_name in (events or ())]


def emit(target: Any, type_name: str, data: Mapping[str, Any], endpoint_ids: list[int] | None = None) -> int:
    if type_name != PING and type_name not in events_of(target):
        raise ValueError(f"webhook event type {type_name!r} is not declared: return it from a "
                         f"learnsail_webhook_events hook")
    try:
        payload = json.loads(json.dumps(dict(data)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the data of webhook event {type_name!r} must be JSON-serialisable: {exc}") from None
    session = _session(target)
    targets = endpoint_ids if endpoint_ids is not None else subscribers(session, type_name)
    if not targets:
        return 0
    event = WebhookEvent(uid=str(uuid.uuid4()), type=type_name, data=payload, created_at=utcnow())
    session.add(event)
    session.flush()
    now = utcnow()
    deliveries = [WebhookDelivery(uid=str(uuid.uuid4()), endpoint_id=eid, event_id=event.id, status=PENDING,
                                  attempts=0, next_attempt_at=now, created_at=now) for eid in targets]
    session.add_all(deliveries)
    session.flush()
    from learnsail.tasks import enqueue

    for delivery in deliveries:
        enqueue(target, "webhooks.deliver", delivery.id)
    return len(deliveries)


def retry_delay(attempts: int, first: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones:
    ``first`` doubled each time, capped, with +/-20 % jitter."""
    if first <= 0:
        return 0.0
    base = min(MAX_DELAY, first * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)


def _is_embedded(registry: Any) -> bool:
    from learnsail.tasks import is_embedded

    return is_embedded(registry)


def deliver(ctx: Any, delivery_id: int) -> str | None:
    """Make one attempt of the delivery, if it is still due; returns its
    status afterwards (None when there was nothing to do).

    The delivery row is locked for the attempt (SELECT ... FOR UPDATE on
    MySQL) so two messages for it -- a retry and the sweep -- never send
    it twice at once."""
    session, settings = ctx.session, ctx.settings
    delivery = session.scalars(sa.select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                               .with_for_update()).one_or_none()
    if delivery is None or delivery.status not in (PENDING, RETRYING):
        return None
    now = utcnow()
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + dt.timedelta(seconds=1):
        return None  # a duplicate message: the next attempt is not due yet
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    event = session.get(WebhookEvent, delivery.event_id)
    if endpoint is None or event is None:
        return None
    max_attempts = int(settings["learnsail.webhooks_max_attempts"])
    if not endpoint.is_active and event.type != PING:
        outcome = sender.Outcome(None, 0, "the endpoint is disabled", None)
    else:
        body = body_of(event)
        stamp = int(time.time())
        headers = {
            "X-Learnsail-Event": event.type,
            "X-Learnsail-Delivery": delivery.uid,
            "X-Learnsail-Timestamp": str(stamp),
            "X-Learnsail-Signature": sender.signature(endpoint.secret, stamp, body),
        }
        outcome = sender.post(endpoint.url, body, headers,
                              timeout=float(settings["learnsail.webhooks_timeout"]),
                              allow_private=bool(settings["learnsail.webhooks_allow_private"]))
    delivery.attempts += 1
    session.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempts,
                               response_status=outcome.status, response_time_ms=outcome.elapsed_ms,
                               error=outcome.error, response_body=outcome.body, created_at=utcnow()))
    delivery.response_status = outcome.status
    delivery.response_time_ms = outcome.elapsed_ms
    delivery.last_error = outcome.error
    if outcome.ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = SUCCEEDED, utcnow(), None
    elif delivery.attempts >= max_attempts or not endpoint.is_active:
        delivery.status, delivery.next_attempt_at = FAILED, None
        log.warning("webhook delivery %s to endpoint %s failed for good after %d attempts: %s",
                    delivery.uid, endpoint.id, delivery.attempts, outcome.error)
    else:
        delay = retry_delay(delivery.attempts, int(settings["learnsail.webhooks_retry_delay"]))
        delivery.status = RETRYING
        delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
        if not _is_embedded(ctx.registry):
            # embedded mode runs tasks at once whatever the countdown: the
            # periodic sweep sends retries when they are due instead
            from learnsail.tasks import enqueue

            enqueue(ctx, "webhooks.deliver", delivery.id, countdown=delay)
    session.flush()
    return delivery.status


def due(session: Session, grace: float, limit: int = SWEEP_BATCH) -> list[int]:
    """Pending or retrying deliveries due at least ``grace`` seconds ago."""
    cutoff = utcnow() - dt.timedelta(seconds=grace)
    return list(session.scalars(
        sa.select(WebhookDelivery.id)
        .where(WebhookDelivery.status.in_((PENDING, RETRYING)), WebhookDelivery.next_attempt_at <= cutoff)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)))


def dispatch(ctx: Any) -> int:
    """Send every delivery that is due and whose message is late or was
    never sent (a crash between commit and send, a lost message, the
    retries of embedded mode).  Each is a task of its own."""
    from learnsail.tasks import enqueue

    ids = due(ctx.session, 0 if _is_embedded(ctx.registry) else SWEEP_GRACE)
    for delivery_id in ids:
        enqueue(ctx, "webhooks.deliver", delivery_id)
    return len(ids)


def redeliver(request: Any, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery again now, whatever its state.  Its attempt log
    goes on; a delivery that had used all its attempts gets this one more
    (it is failed again if this one fails too)."""
    from learnsail.tasks import enqueue

    if delivery.status in (SUCCEEDED, FAILED):
        delivery.status = PENDING
    delivery.next_attempt_at = utcnow()
    request.db.flush()
    enqueue(request, "webhooks.deliver", delivery.id)
    return delivery


def purge(session: Session, days: int) -> int:
    """Delete events older than ``days`` whose deliveries all finished
    (their deliveries and attempts go with them)."""
    cutoff = utcnow() - dt.timedelta(days=days)
    open_events = sa.select(WebhookDelivery.event_id).where(WebhookDelivery.status.in_((PENDING, RETRYING)))
    old = list(session.scalars(sa.select(WebhookEvent.id).where(WebhookEvent.created_at < cutoff,
                                                                WebhookEvent.id.not_in(open_events))))
    for start in range(0, len(old), 1000):
        chunk = old[start:start + 1000]
        deliveries = sa.select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(chunk))
        session.execute(sa.delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
        session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(chunk)))
        session.execute(sa.delete(WebhookEvent).where(WebhookEvent.id.in_(chunk)))
    return len(old)
