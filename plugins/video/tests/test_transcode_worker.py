"""A real Celery worker on a real Redis broker, killed in the middle of a
transcode: the task was never acknowledged, so it is delivered again, and
the next worker takes over the job the dead one held (no video stays
processing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
import transaction

from video_media_helpers import make_clip

WORKER = textwrap.dedent("""
    from learnsail.app import configure, make_wsgi_app
    from learnsail.tasks import run_worker
    from learnsail.testing import isolated_environ

    config = configure({settings!r}, environ=isolated_environ())
    app = make_wsgi_app(config)
    run_worker(app.registry, queues="video", pool="solo", loglevel="WARNING")
""")


def wait_for(check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def start_worker(settings: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER.format(settings=settings)], stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_a_transcode_of_a_killed_worker_is_finished_by_the_next(tmp_path, redis_server, fresh_database_url,
                                                                ffmpeg):
    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app
    from learnsail.db import get_session
    from learnsail.identity.services import create_user
    from learnsail.testing import isolated_environ

    from learnsail_video import processing
    from learnsail_video.media_models import TranscodeJob
    from learnsail_video.models import Video

    marker = tmp_path / "first-ffmpeg-started"
    slow = tmp_path / "ffmpeg"  # the first ffmpeg run hangs (until its worker is killed), later ones are real
    slow.write_text(f"#!/bin/sh\nif [ ! -e {marker} ]; then touch {marker}; sleep 120; fi\nexec ffmpeg \"$@\"\n")
    slow.chmod(0o755)
    settings = {
        "learnsail.data_dir": str(tmp_path / "data"),
        "learnsail.database_url": fresh_database_url,
        "learnsail.plugins": "courses video",
        "learnsail.secret": "worker-secret-worker-secret-worker-secret",
        "learnsail.log_level": "WARNING",
        "learnsail.broker_url": f"redis://{redis_server.host}:{redis_server.port}/7",
        "learnsail.task_visibility_timeout": "2",
        "learnsail.video.ffmpeg": str(slow),
    }
    config = configure(settings, environ=isolated_environ())
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    registry = make_wsgi_app(config).registry
    clip = make_clip(tmp_path / "clip.mp4", width=320, height=180, seconds=2)
    key = f"video-test/{uuid.uuid4().hex}/clip.mp4"
    with open(clip, "rb") as handle:
        registry["learnsail.storage"].put(key, handle)

    tm = transaction.TransactionManager(explicit=True)
    with tm:
        session = get_session(registry["learnsail.dbsession_factory"], tm)
        session.info.update({"learnsail.registry": registry, "learnsail.tm": tm})
        owner = create_user(session, password="correct horse battery", role="teacher", username="t1",
                            email="t1@example.com", pm=registry["learnsail.pm"])
        session.flush()
        video = Video(owner_id=owner.id, title="Killed", original_filename="clip.mp4", size=clip.stat().st_size,
                      source_key=key, status="processing")
        session.add(video)
        session.flush()
        processing.start(session, video)  # sent to the video queue on commit
        video_id = video.id

    engine = registry["learnsail.db_engine"]

    def job():
        with engine.connect() as conn:
            return conn.execute(sa.select(TranscodeJob.status, TranscodeJob.attempts, TranscodeJob.worker)
                                .where(TranscodeJob.video_id == video_id)).one()

    def video_status():
        with engine.connect() as conn:
            return conn.scalar(sa.select(Video.status).where(Video.id == video_id))

    log = tmp_path / "worker.log"
    first = start_worker(settings, log)
    try:
        assert wait_for(marker.exists), log.read_text()
        assert job()[0] == "running" and job()[1] == 1
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # mid-transcode: the message is not acknowledged
        first.wait()
    assert video_status() == "processing"

    second = start_worker(settings, log)
    try:
        assert wait_for(lambda: video_status() == "completed", 90), (job(), log.read_text())
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    status, attempts, worker = job()
    assert status == "completed" and attempts == 2
    assert worker.rsplit(":", 1)[1] == str(second.pid)
    engine.dispose()
