"""The storage service's background tasks."""

from __future__ import annotations

import logging

from learnsail.storage.backends import StorageError, StorageUnavailable
from learnsail.tasks import TaskContext, TransientError, task

log = logging.getLogger("learnsail.storage")


@task("core.storage_delete")
def delete_objects(ctx: TaskContext, keys: list[str]) -> int:
    """Delete the objects of deleted files (sent after the deletion commits).
    An unreachable storage server is retried with backoff."""
    storage = ctx.registry["learnsail.storage"]
    deleted = 0
    for key in keys:
        try:
            storage.delete(key)
            deleted += 1
        except StorageUnavailable as exc:
            raise TransientError(str(exc)) from exc
        except StorageError as exc:  # an invalid key will not become valid: log, go on
            log.error("could not delete object %s: %s", key, exc)
    return deleted
