"""The task video.transcode: the hand-off, progress in the status endpoint,
outputs in storage, failures with retries, the sweeper, re-transcoding."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from learnsail.db import utcnow
from learnsail.notifications.models import Notification
from learnsail_video import processing
from learnsail_video import settings as S
from learnsail_video.media_models import DONE, FAILED, QUEUED, RUNNING, Rendition, TranscodeJob
from learnsail_video.models import Video
from video_media_helpers import in_transaction, make_clip, process, processed_video, stored_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory, ffmpeg):
    base = tmp_path_factory.mktemp("task-clips")
    return {"small": make_clip(base / "small.mp4", width=320, height=180, seconds=3),
            "hd": make_clip(base / "hd.mp4", width=1280, height=720, seconds=2)}


def status_of(testapp, auth_headers, user, video_id):
    return testapp.get(f"/api/v1/videos/{video_id}/status", headers=auth_headers(user)).json


def test_the_hand_off_processes_the_video_and_the_status_shows_progress_to_100(
        app, testapp, dbsession, make_user, auth_headers, clips, monkeypatch):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, clips["hd"])
    seen = []
    original = processing.Run.progress

    def watched(self, percent):
        original(self, percent)
        # what a client polling the status endpoint sees while the task works
        seen.append(status_of(testapp, auth_headers, teacher, video.id)["progress"])

    monkeypatch.setattr(processing.Run, "progress", watched)
    process(app, video.id)

    answer = status_of(testapp, auth_headers, teacher, video.id)
    assert answer["status"] == "completed" and answer["progress"] == 100
    assert answer["error_message"] is None
    assert "/hls/" in answer["file_url"] and answer["file_url"].endswith("/master.m3u8")
    assert answer["thumbnail_url"]
    assert seen[0] == 0 and seen == sorted(seen) and any(0 < p < 100 for p in seen)
    assert [job["quality"] for job in answer["transcode_jobs"]] == ["sd", "hd"]
    assert {job["status"] for job in answer["transcode_jobs"]} == {"completed"}
    assert answer["transcode_jobs"][1]["width"] == 1280 and answer["transcode_jobs"][1]["processing_time"] > 0

    dbsession.expire_all()
    done = dbsession.get(Video, video.id)
    assert (done.width, done.height, done.video_codec, done.audio_codec) == (1280, 720, "h264", "aac")
    assert done.duration == 2 and done.qualities == ["sd", "hd"] and done.processed_at is not None
    storage = app.registry["learnsail.storage"]
    keys = set(storage.iter_keys(done.hls_prefix))
    assert {done.master_key, done.mp4_key, done.thumbnail_key, done.sprite_key} <= keys
    assert any(key.endswith("hls/hd/seg_00000.ts") for key in keys)
    renditions = dbsession.scalars(sa.select(Rendition).where(Rendition.video_id == video.id)).all()
    assert sorted((r.quality, r.height) for r in renditions) == [("hd", 720), ("sd", 360)]
    notice = dbsession.scalar(sa.select(Notification).where(Notification.user_id == teacher.id))
    assert notice.type == processing.TRANSCODE_FINISHED and notice.related_id == video.id


def test_the_status_is_the_owners_and_course_managers(app, testapp, dbsession, make_user, auth_headers, clips):
    teacher, other, admin = make_user("teacher"), make_user("teacher"), make_user("admin")
    video = stored_video(app, dbsession, teacher, clips["small"], status="uploading")
    url = f"/api/v1/videos/{video.id}/status"
    assert testapp.get(url, headers=auth_headers(teacher)).json["status"] == "uploading"
    assert testapp.get(url, headers=auth_headers(admin)).status_int == 200
    assert testapp.get(url, headers=auth_headers(other), status=404).json["error"]["code"] == "RESOURCE_NOT_FOUND"
    testapp.get(url, status=401)


def test_jobs_of_shows_001s_transcode_jobs_before_and_after(app, dbsession, make_user, clips):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, clips["small"])
    assert processing.jobs_of(dbsession, video) == []
    process(app, video.id)
    dbsession.expire_all()
    jobs = processing.jobs_of(dbsession, dbsession.get(Video, video.id))
    assert [(j["quality"], j["status"], j["progress"], j["height"]) for j in jobs] == [("sd", "completed", 100, 180)]
    assert jobs[0]["input"] == {"format": "mov,mp4,m4a,3gp,3g2,mj2", "resolution": "320x180",
                                "bitrate": jobs[0]["input"]["bitrate"]}


def test_a_corrupt_source_fails_at_once_with_an_error_message(app, testapp, dbsession, make_user, auth_headers,
                                                              tmp_path):
    teacher = make_user("teacher")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 500)
    video = stored_video(app, dbsession, teacher, corrupt)
    process(app, video.id)
    answer = status_of(testapp, auth_headers, teacher, video.id)
    assert answer["status"] == "failed" and answer["file_url"] is None
    assert "not a video" in answer["error_message"]
    assert answer["transcode_jobs"][0]["status"] == "failed" and answer["transcode_jobs"][0]["attempts"] == 1
    notice = dbsession.scalar(sa.select(Notification).where(Notification.user_id == teacher.id))
    assert notice.type == processing.TRANSCODE_FAILED


def test_a_failing_transcode_is_retried_then_marked_failed(app, testapp, dbsession, make_user, auth_headers,
                                                           clips, tmp_path, monkeypatch):
    teacher = make_user("teacher")
    failing = tmp_path / "ffmpeg"
    failing.write_text("#!/bin/sh\necho 'Conversion failed: disk quota exceeded' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setitem(app.registry.settings, S.FFMPEG, str(failing))
    video = stored_video(app, dbsession, teacher, clips["small"])
    process(app, video.id)
    answer = status_of(testapp, auth_headers, teacher, video.id)
    assert answer["status"] == "failed"
    assert "disk quota exceeded" in answer["error_message"] and "after 3 attempts" in answer["error_message"]
    job = dbsession.scalar(sa.select(TranscodeJob).where(TranscodeJob.video_id == video.id))
    assert (job.status, job.attempts) == (FAILED, 3)
    dbsession.expire_all()
    assert dbsession.get(Video, video.id).attempts == 3
    # nothing of the failed runs is left in storage
    assert job.output_prefix.startswith(f"video-media/{video.id}/")
    assert list(app.registry["learnsail.storage"].iter_keys(job.output_prefix)) == []


def test_a_run_that_fails_once_succeeds_on_its_retry(app, dbsession, make_user, clips, monkeypatch):
    teacher = make_user("teacher")
    calls = []
    original = processing.transcode.transcode

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise processing.transcode.TranscodeFailed("ffmpeg failed (signal 9)")
        return original(*args, **kwargs)

    monkeypatch.setattr(processing.transcode, "transcode", flaky)
    video = processed_video(app, dbsession, teacher, clips["small"])
    assert video.status == "completed" and len(calls) == 2
    job = dbsession.scalar(sa.select(TranscodeJob).where(TranscodeJob.video_id == video.id))
    assert (job.status, job.attempts, job.error_message) == (DONE, 2, None)


def _stale_job(app, dbsession, teacher, clip, attempts):
    video = stored_video(app, dbsession, teacher, clip)
    job = TranscodeJob(video_id=video.id, status=RUNNING, attempts=attempts, run_id="deadbeef" * 4,
                       worker="elsewhere:1", heartbeat_at=utcnow() - dt.timedelta(minutes=10),
                       started_at=utcnow() - dt.timedelta(minutes=11), output_prefix=f"video-media/{video.id}/dead/")
    dbsession.add(job)
    dbsession.commit()
    return video, job


def _sweep(app):
    from learnsail.tasks import send_now

    send_now(app.registry, processing.SWEEP_TASK)


def test_the_sweeper_requeues_a_job_whose_worker_died(app, dbsession, make_user, clips):
    teacher = make_user("teacher")
    video, job = _stale_job(app, dbsession, teacher, clips["small"], attempts=1)
    storage = app.registry["learnsail.storage"]
    from io import BytesIO

    storage.put(f"video-media/{video.id}/dead/hls/master.m3u8", BytesIO(b"#EXTM3U\n"))
    _sweep(app)
    dbsession.expire_all()
    job = dbsession.get(TranscodeJob, job.id)
    # requeued, and (eagerly) run again to the end by a live worker
    assert (job.status, job.attempts) == (DONE, 2)
    assert dbsession.get(Video, video.id).status == "completed"
    assert list(storage.iter_keys(f"video-media/{video.id}/dead/")) == []  # the dead run's leftovers


def test_the_sweeper_fails_a_stale_job_past_the_limit(app, testapp, dbsession, make_user, auth_headers, clips):
    teacher = make_user("teacher")
    video, job = _stale_job(app, dbsession, teacher, clips["small"], attempts=3)
    _sweep(app)
    answer = status_of(testapp, auth_headers, teacher, video.id)
    assert answer["status"] == "failed" and "stopped responding" in answer["error_message"]


def test_a_job_held_by_a_live_run_is_left_alone(app, dbsession, make_user, clips):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, clips["small"])
    job = TranscodeJob(video_id=video.id, status=RUNNING, attempts=1, run_id="a" * 32, worker="elsewhere:1",
                       heartbeat_at=utcnow())
    dbsession.add(job)
    dbsession.commit()
    _sweep(app)  # fresh heartbeat: not stale
    from learnsail.tasks import send_now

    send_now(app.registry, processing.TRANSCODE_TASK, video.id, job.id)  # a duplicate delivery
    dbsession.expire_all()
    assert dbsession.get(TranscodeJob, job.id).status == RUNNING and dbsession.get(TranscodeJob, job.id).attempts == 1


def test_a_replaced_run_stops_and_writes_nothing(app, dbsession, make_user, clips, monkeypatch):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, clips["small"])
    original = processing.Run.progress

    def taken_away(self, percent):
        if percent > 30:  # another run took the job meanwhile
            self.ctx.session.execute(sa.update(TranscodeJob).where(TranscodeJob.id == self.job_id)
                                     .values(run_id="someone-else"))
            processing._checkpoint(self.ctx)
        original(self, percent)

    monkeypatch.setattr(processing.Run, "progress", taken_away)
    process(app, video.id)
    dbsession.expire_all()
    assert dbsession.get(Video, video.id).status == "processing"  # left to the run that holds it
    job = dbsession.scalar(sa.select(TranscodeJob).where(TranscodeJob.video_id == video.id))
    assert job.run_id == "someone-else" and job.status == RUNNING
    assert list(app.registry["learnsail.storage"].iter_keys(job.output_prefix)) == []


def test_retranscode_makes_new_outputs_and_removes_the_old(app, testapp, dbsession, make_user, auth_headers, clips):
    teacher, other, admin = make_user("teacher"), make_user("teacher"), make_user("admin")
    video = processed_video(app, dbsession, teacher, clips["small"])
    old_prefix = video.hls_prefix
    url = f"/api/v1/videos/{video.id}/retranscode"
    testapp.post(url, headers=auth_headers(other), status=404)
    answer = testapp.post(url, headers=auth_headers(teacher), status=202).json
    assert answer["id"] == video.id
    dbsession.expire_all()
    again = dbsession.get(Video, video.id)
    assert again.status == "completed" and again.hls_prefix != old_prefix
    storage = app.registry["learnsail.storage"]
    assert list(storage.iter_keys(old_prefix)) == [] and storage.exists(again.master_key)
    jobs = dbsession.scalars(sa.select(TranscodeJob).where(TranscodeJob.video_id == video.id)
                             .order_by(TranscodeJob.id)).all()
    assert [(j.reason, j.status) for j in jobs] == [("upload", DONE), ("retranscode", DONE)]
    assert testapp.post(url, headers=auth_headers(admin), status=202).json["id"] == video.id


def test_retranscode_is_refused_while_processing(app, testapp, dbsession, make_user, auth_headers, clips):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, clips["small"], status="processing")
    answer = testapp.post(f"/api/v1/videos/{video.id}/retranscode", headers=auth_headers(teacher), status=409).json
    assert answer["error"]["code"] == "CONFLICT" and answer["error"]["details"]["status"] == "processing"


def test_start_supersedes_a_queued_job(app, dbsession, make_user, clips):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, clips["small"])
    waiting = TranscodeJob(video_id=video.id, status=QUEUED)
    dbsession.add(waiting)
    dbsession.commit()
    process(app, video.id)
    dbsession.expire_all()
    assert dbsession.get(TranscodeJob, waiting.id).status == "superseded"
    assert dbsession.get(Video, video.id).status == "completed"


def test_processing_drops_the_cached_video_info(app, dbsession, make_user, clips):
    from learnsail_video.playback import info_key

    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, clips["small"])
    cache = app.registry["learnsail.cache"]
    cache.set(info_key(video.id), {"stale": True}, ttl=300)
    process(app, video.id)
    assert cache.get(info_key(video.id)) is None


def test_tasks_are_acknowledged_late_and_requeued_when_the_worker_is_lost(app):
    celery = app.registry["learnsail.celery"]
    task = celery.tasks[processing.TRANSCODE_TASK]
    assert task.acks_late is True and celery.conf.task_reject_on_worker_lost is True
    assert task.soft_time_limit == 3600 and task.time_limit == 7200
    assert celery.amqp.router.route({}, processing.TRANSCODE_TASK)["queue"].name == "video"
    assert processing.SWEEP_TASK in app.registry["learnsail.periodic"]


def test_in_transaction_helper_commits(app, dbsession, make_user, clips):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, clips["small"], status="failed")
    in_transaction(app, lambda session: setattr(session.get(Video, video.id), "title", "Renamed"))
    dbsession.expire_all()
    assert dbsession.get(Video, video.id).title == "Renamed"
