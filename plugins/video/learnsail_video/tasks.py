"""The upload side's background tasks (queue ``video``)."""

from __future__ import annotations

from learnsail.tasks import TaskContext, task


@task("video.expire_uploads")
def expire_uploads(ctx: TaskContext) -> dict:
    """Expire uploads abandoned past learnsail.video.upload_ttl_hours and
    remove their parts from storage (periodic, every 15 minutes)."""
    from learnsail_video import uploads

    return uploads.expire_abandoned(ctx.session, ctx.registry)
