"""The storage service's own hook implementations (registered as the
plugin ``core.storage``): its health check, and its part in a user's data
export and erasure."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from learnsail import hookimpl


@hookimpl
def learnsail_health_checks(registry):
    storage = registry["learnsail.storage"]
    return {"storage": storage.check}


@hookimpl
def learnsail_user_export(user_id, session):
    from learnsail.storage.models import StoredFile

    rows = session.scalars(sa.select(StoredFile).where(StoredFile.owner_id == user_id,
                                                       StoredFile.deleted_at.is_(None))
                           .order_by(StoredFile.id))
    files: list[dict[str, Any]] = [
        {"id": f.id, "name": f.name, "size": f.size, "mime_type": f.mime_type, "category": f.category,
         "visibility": f.visibility, "related_type": f.related_type, "related_id": f.related_id,
         "sha256": f.sha256, "created_at": f.created_at} for f in rows]
    return {"files": files} if files else None


@hookimpl
def learnsail_user_erased(user_id, session):
    """The user's own files go (their objects after the commit); files they
    attached to plugins' objects (a lesson's handout) stay with the object,
    without an owner."""
    from learnsail.storage import services
    from learnsail.storage.models import StoredFile

    rows = session.scalars(sa.select(StoredFile).where(StoredFile.owner_id == user_id,
                                                       StoredFile.deleted_at.is_(None))).all()
    for row in rows:
        if row.related_type and row.related_type != services.AVATAR:
            row.owner_id = None
        else:
            services.delete_file(session, row)
    session.flush()
