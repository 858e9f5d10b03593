"""The audit log: who changed what, from where, before and after.

The core records role and permission changes, user disable/enable/delete,
password resets and admin logins; plugins record their own sensitive
changes with :func:`record` (same transaction as the change, so a change
that rolls back leaves no entry).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from learnsail.identity.models import AuditEntry


def record(session: Session, *, action: str, target_type: str, target_id: Any = None,
           actor_id: int | None = None, ip: str | None = None,
           before: Any = None, after: Any = None) -> AuditEntry:
    """Add an audit entry.  ``action`` is ``<plugin>:<thing>:<verb>``
    (``core:role:update``); ``before``/``after`` are JSON-serialisable."""
    entry = AuditEntry(action=action, target_type=target_type,
                       target_id=None if target_id is None else str(target_id),
                       actor_id=actor_id, ip=ip, before=before, after=after)
    session.add(entry)
    return entry


def record_request(request: Any, *, action: str, target_type: str, target_id: Any = None,
                   before: Any = None, after: Any = None) -> AuditEntry:
    """:func:`record` with the actor and IP of ``request``."""
    actor = request.identity
    return record(request.db, action=action, target_type=target_type, target_id=target_id,
                  actor_id=actor.id if actor is not None else None, ip=request.client_addr,
                  before=before, after=after)
