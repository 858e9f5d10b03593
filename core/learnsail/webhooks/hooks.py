"""The webhook service's own hook implementations (registered as the
plugin ``core.webhooks``): the core's event types, and the events it emits
when accounts are created and erased."""

from __future__ import annotations

from learnsail import hookimpl


def _emit(session, type_name, data):
    from learnsail.webhooks import emit

    # sessions outside a request or task (`learnsail init`) have no app, so
    # no webhooks; the app's requests and tasks always do
    if "learnsail.registry" in session.info:
        emit(session, type_name, data)


@hookimpl
def learnsail_webhook_events():
    from learnsail.webhooks import CORE_EVENTS

    return dict(CORE_EVENTS)


@hookimpl
def learnsail_user_created(user, session):
    if user.id is None:
        session.flush()
    role = user.role.name if user.role is not None else None
    _emit(session, "user.created", {"id": user.id, "username": user.username, "role": role,
                                    "created_at": user.created_at.isoformat() if user.created_at else None})


@hookimpl
def learnsail_user_erased(user_id, session):
    _emit(session, "user.erased", {"id": user_id})
