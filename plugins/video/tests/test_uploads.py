"""Chunked and single-request uploads, on local storage and on an S3 server:
bytes in, verified, probed, stored at the video's source_key, handed over."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from video_test_helpers import (CHUNK, COMPLETE, KIB, MIB, SINGLE, chunks_of, clips, handed_off, init,  # noqa: F401
                                keys_under, md5, send_chunk, status_of, stored_bytes, upload)


@pytest.fixture(scope="session", params=["local", "s3"])
def learnsail_extra_settings(request, learnsail_extra_settings):
    if request.param == "local":
        return learnsail_extra_settings
    s3 = request.getfixturevalue("s3_server")
    return {**learnsail_extra_settings,
            "learnsail.storage_url": f"s3://{s3.access_key}:{s3.secret_key}@{s3.endpoint}/learnsail-video"
                                     f"?secure=false&region={s3.region}"}


@pytest.fixture
def storage(app):
    return app.registry["learnsail.storage"]


@pytest.fixture
def teacher(make_user, auth_headers):
    return auth_headers(make_user("teacher"))


def video_row(dbsession, video_id):
    from learnsail_video.models import Video

    dbsession.expire_all()
    return dbsession.get(Video, video_id)


def task_row(dbsession, task_id):
    from learnsail_video.models import UploadTask

    dbsession.expire_all()
    return dbsession.scalar(sa.select(UploadTask).where(UploadTask.token == task_id))


def test_chunks_sent_in_any_order_make_the_video(testapp, teacher, clips, storage, dbsession, handed_off):
    data = clips["medium"]
    task, last = upload(testapp, teacher, data, 256 * KIB, order=[2, 0, 3, 1])
    assert last.status_int == 200, last.body
    assert last.json["status"] == "processing" and last.json["uploaded_chunks"] == 4 == last.json["total_chunks"]
    video = video_row(dbsession, task["video_id"])
    assert handed_off == [video.id]
    assert video.status == "processing" and video.size == len(data) and video.mime_type == "video/mp4"
    assert stored_bytes(storage, video.source_key) == data
    assert video.source_key.startswith("video/") and video.source_key.endswith(".mp4")
    # what ffprobe found
    assert (video.width, video.height, video.duration, video.video_codec) == (640, 360, 2, "h264")
    assert "mp4" in video.format and video.duration_ms == pytest.approx(2000, abs=100)
    assert float(video.frame_rate) == 25.0 and video.rotation == 0
    # the parts left storage once the upload was complete
    assert keys_under(storage, f"video-uploads/{task['task_id']}/") == []
    status = status_of(testapp, teacher, task["task_id"]).json
    assert status["uploaded_chunks"] == [0, 1, 2, 3] and status["status"] == "processing"
    assert status["upload_progress"] == 100 and status["video_id"] == video.id


def test_large_chunks_are_assembled_by_the_storage(testapp, teacher, clips, storage, dbsession, monkeypatch):
    """Chunks of 5 MiB or more are composed by the S3 server (nothing passes
    through the app); on local storage the part file is renamed."""
    data = clips["large"]
    composed = []
    original = type(storage).compose
    monkeypatch.setattr(type(storage), "compose", lambda self, *a, **k: composed.append(a) or original(self, *a, **k))
    task, last = upload(testapp, teacher, data, 5 * MIB)
    assert last.status_int == 200, last.body
    video = video_row(dbsession, task["video_id"])
    assert stored_bytes(storage, video.source_key) == data
    assert video.mime_type == "video/x-matroska" and video.video_codec == "rawvideo"
    assert len(composed) == (1 if storage.kind == "s3" else 0)


def test_a_file_smaller_than_a_chunk_is_one_chunk(testapp, teacher, clips, storage, dbsession):
    data = clips["small"]
    task, last = upload(testapp, teacher, data, 1024 * KIB)
    assert task["total_chunks"] == 1
    assert last.status_int == 200, last.body
    video = video_row(dbsession, task["video_id"])
    assert stored_bytes(storage, video.source_key) == data
    assert video.audio_codec == "aac"


def test_an_upload_resumes_from_the_chunks_the_status_lists(testapp, teacher, clips, dbsession):
    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    task = init(testapp, teacher, data, 256 * KIB).json
    for index in (0, 2):
        send_chunk(testapp, teacher, task["task_id"], index, pieces[index])
    status = status_of(testapp, teacher, task["task_id"]).json
    assert status["uploaded_chunks"] == [0, 2] and status["status"] == "uploading"
    assert status["progress"] == len(pieces[0] + pieces[2]) * 100 // len(data)
    # a new client sends only what is missing
    missing = [i for i in range(status["total_chunks"]) if i not in status["uploaded_chunks"]]
    answers = [send_chunk(testapp, teacher, task["task_id"], i, pieces[i]) for i in missing]
    assert answers[-1].json["status"] == "processing"
    assert video_row(dbsession, task["video_id"]).status == "processing"


def test_a_chunk_sent_twice_is_accepted_once(testapp, teacher, clips, dbsession):
    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    task = init(testapp, teacher, data, 256 * KIB).json
    first = send_chunk(testapp, teacher, task["task_id"], 1, pieces[1]).json
    again = send_chunk(testapp, teacher, task["task_id"], 1, pieces[1]).json
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert first["uploaded_chunks"] == again["uploaded_chunks"] == 1
    row = task_row(dbsession, task["task_id"])
    assert row.received_bytes == len(pieces[1]) and row.received_chunks == 1
    # the duplicate of the chunk that makes the file whole does not complete it twice
    for index in (0, 2, 3):
        send_chunk(testapp, teacher, task["task_id"], index, pieces[index])
    repeat = send_chunk(testapp, teacher, task["task_id"], 3, pieces[3], status=409)
    assert repeat.json["error"]["details"]["status"] == "uploaded"


@pytest.mark.parametrize("index, size, reason", [
    (0, 256 * KIB - 1, "must hold 262144 bytes, not 262143"),
    (0, 256 * KIB + 1, "must hold 262144 bytes; more arrived"),
    (3, 10, "must hold"),
    (4, 10, "Out of range"),
    (-1, 10, "greater than or equal to 0"),
])
def test_a_chunk_of_the_wrong_size_or_out_of_range_is_refused(testapp, teacher, clips, dbsession, storage,
                                                              index, size, reason):
    data = clips["medium"]
    task = init(testapp, teacher, data, 256 * KIB).json
    response = send_chunk(testapp, teacher, task["task_id"], index, b"x" * size, status=400)
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert reason in str(response.json["error"]["details"])
    status = status_of(testapp, teacher, task["task_id"]).json
    assert status["uploaded_chunks"] == [] and status["received_bytes"] == 0
    if storage.kind == "s3":
        assert keys_under(storage, f"video-uploads/{task['task_id']}/") == []


def test_a_chunk_not_matching_its_md5_is_not_kept(testapp, teacher, clips):
    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    task = init(testapp, teacher, data, 256 * KIB).json
    response = send_chunk(testapp, teacher, task["task_id"], 0, pieces[0], status=400, chunk_md5=md5(b"other"))
    assert "chunk_md5" in response.json["error"]["details"]
    send_chunk(testapp, teacher, task["task_id"], 0, pieces[0], chunk_md5=md5(pieces[0]))
    assert status_of(testapp, teacher, task["task_id"]).json["uploaded_chunks"] == [0]
    # chunk_md5 sent after the data is checked too (the chunk is read back)
    for digest, status in ((md5(b"other"), 400), (md5(pieces[1]), 200)):
        boundary = "after-the-data"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"task_id\"\r\n\r\n{task['task_id']}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"chunk_index\"\r\n\r\n1\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"chunk_data\"; filename=\"c\"\r\n\r\n"
                ).encode() + pieces[1] + (f"\r\n--{boundary}\r\nContent-Disposition: form-data; "
                                          f"name=\"chunk_md5\"\r\n\r\n{digest}\r\n--{boundary}--\r\n").encode()
        testapp.request(CHUNK, method="POST", body=body, status=status,
                        headers={**teacher, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status_of(testapp, teacher, task["task_id"]).json["uploaded_chunks"] == [0, 1]


def test_an_md5_mismatch_is_409_and_resending_the_chunk_repairs_the_upload(testapp, teacher, clips, dbsession,
                                                                           storage, handed_off):
    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    task = init(testapp, teacher, data, 256 * KIB).json
    damaged = bytearray(pieces[1])
    damaged[100:110] = b"\0" * 10
    for index, piece in enumerate([pieces[0], bytes(damaged), pieces[2], pieces[3]]):
        last = send_chunk(testapp, teacher, task["task_id"], index, piece, status="*")
    assert last.status_int == 409 and last.json["error"]["code"] == "CONFLICT"
    details = last.json["error"]["details"]
    assert details["received_md5"] == md5(pieces[0] + bytes(damaged) + pieces[2] + pieces[3])
    assert details["chunk_md5s"]["1"] == md5(bytes(damaged)) and details["chunk_md5s"]["0"] == md5(pieces[0])
    # the chunk that made the file whole is still counted; nothing was handed over
    status = status_of(testapp, teacher, task["task_id"]).json
    assert status["status"] == "uploading" and status["uploaded_chunks"] == [0, 1, 2, 3]
    assert handed_off == [] and task_row(dbsession, task["task_id"]).md5_failures == 1
    # explicit completion still refuses, and changes nothing
    again = testapp.post_json(COMPLETE, {"task_id": task["task_id"]}, headers=teacher, status=409)
    assert again.json["error"]["details"]["received_md5"] == details["received_md5"]
    # the chunk sent again with the right bytes replaces the damaged one and completes the upload
    repaired = send_chunk(testapp, teacher, task["task_id"], 1, pieces[1]).json
    assert repaired["replaced"] is True and repaired["status"] == "processing"
    # completing again answers the status (a client that lost the answer asks again)
    done = testapp.post_json(COMPLETE, {"task_id": task["task_id"]}, headers=teacher).json
    assert done["status"] == "processing" and done["task_status"] == "uploaded"
    video = video_row(dbsession, task["video_id"])
    assert stored_bytes(storage, video.source_key) == data and handed_off == [video.id]


def test_a_file_that_is_not_a_video_is_400_with_the_detected_type(testapp, teacher, clips, dbsession, storage,
                                                                  handed_off):
    data = clips["text"]
    task, last = upload(testapp, teacher, data, 1024 * KIB)
    assert last.status_int == 400
    error = last.json["error"]
    assert error["details"]["detected_type"] == "text/plain" and "not a video" in error["details"]["file"][0]
    status = status_of(testapp, teacher, task["task_id"]).json
    assert status["status"] == "failed" and status["task_status"] == "rejected"
    assert "not a video" in status["error_message"]
    assert video_row(dbsession, task["video_id"]).status == "failed" and handed_off == []
    assert keys_under(storage, f"video-uploads/{task['task_id']}/") == []


def test_ffprobe_judges_a_file_sniffed_as_mp4(testapp, teacher, clips):
    """An MP4 container with sound only passes the sniffing (it is an ftyp
    box), and ffprobe finds no video stream in it."""
    task, last = upload(testapp, teacher, clips["sound"], 1024 * KIB)
    assert last.status_int == 400, last.body
    assert last.json["error"]["details"]["detected_type"] == "audio/mp4"
    assert "sound only" in last.json["error"]["details"]["file"][0]


def test_cancel_removes_the_parts_and_the_task(testapp, teacher, clips, storage, dbsession):
    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    task = init(testapp, teacher, data, 256 * KIB).json
    for index in (0, 1):
        send_chunk(testapp, teacher, task["task_id"], index, pieces[index])
    assert keys_under(storage, f"video-uploads/{task['task_id']}/")
    testapp.delete(f"/api/v1/videos/upload/{task['task_id']}", headers=teacher, status=204)
    assert keys_under(storage, f"video-uploads/{task['task_id']}/") == []
    status_of(testapp, teacher, task["task_id"], status=404)
    send_chunk(testapp, teacher, task["task_id"], 2, pieces[2], status=404)
    assert video_row(dbsession, task["video_id"]).deleted_at is not None


def test_abandoned_uploads_expire_and_their_parts_are_removed(app, testapp, teacher, clips, storage, dbsession):
    from learnsail.tasks import send_now
    from learnsail_video.models import UploadTask

    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    stale = init(testapp, teacher, data, 256 * KIB).json
    fresh = init(testapp, teacher, data, 256 * KIB).json
    for task in (stale, fresh):
        send_chunk(testapp, teacher, task["task_id"], 0, pieces[0])
    dbsession.execute(sa.update(UploadTask).where(UploadTask.token == stale["task_id"])
                      .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)))
    dbsession.commit()
    send_now(app.registry, "video.expire_uploads")
    assert keys_under(storage, f"video-uploads/{stale['task_id']}/") == []
    assert keys_under(storage, f"video-uploads/{fresh['task_id']}/")
    status_of(testapp, teacher, stale["task_id"], status=404)
    assert status_of(testapp, teacher, fresh["task_id"]).json["uploaded_chunks"] == [0]
    row = task_row(dbsession, stale["task_id"])
    assert row.status == "expired" and row.parts_removed
    assert video_row(dbsession, stale["video_id"]).deleted_at is not None


def test_a_single_request_upload_streams_the_file_to_storage(testapp, teacher, clips, storage, dbsession,
                                                              handed_off):
    data = clips["small"]
    response = testapp.post(SINGLE, [("title", "Warm-up"), ("description", "First steps")], headers=teacher,
                            upload_files=[("file", "warm-up.mp4", data)], status=201)
    body = response.json
    assert {"id", "title", "file_name", "size", "status", "created_at"} <= set(body)
    assert (body["title"], body["file_name"], body["size"], body["status"]) == (
        "Warm-up", "warm-up.mp4", len(data), "processing")
    video = video_row(dbsession, body["id"])
    assert stored_bytes(storage, video.source_key) == data and video.description == "First steps"
    assert handed_off == [video.id] and video.duration == 2
    assert keys_under(storage, f"video-uploads/{body['task_id']}/") == []


def test_a_single_request_upload_of_a_non_video_leaves_nothing(testapp, teacher, clips, storage, dbsession):
    from learnsail_video.models import UploadTask, Video

    before = dbsession.scalar(sa.select(sa.func.count()).select_from(Video))
    objects = set(keys_under(storage, ""))
    response = testapp.post(SINGLE, headers=teacher, upload_files=[("file", "lecture.mp4", clips["text"])],
                            status=400)
    assert response.json["error"]["details"]["detected_type"] == "text/plain"
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Video)) == before
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(UploadTask)
                            .where(UploadTask.protocol == "single", UploadTask.status == "uploading")) == 0
    assert set(keys_under(storage, "")) == objects


def test_a_completion_that_does_not_commit_puts_the_parts_back(testapp, teacher, clips, storage, dbsession,
                                                               monkeypatch):
    """Completion moves the parts to the video's key (local) or composes it
    (S3) before the commit; when the transaction aborts instead, the parts
    are as they were and no object is left at the key, so completing again
    works."""
    import transaction

    from learnsail_video import uploads

    data = clips["medium"]
    monkeypatch.setattr(uploads, "finish", lambda session, task: None)  # the last chunk does not complete
    task, _ = upload(testapp, teacher, data, 256 * KIB)
    monkeypatch.undo()
    row = task_row(dbsession, task["task_id"])
    objects = set(keys_under(storage, ""))
    manager = transaction.TransactionManager(explicit=True)
    dbsession.info["learnsail.tm"] = manager
    manager.begin()
    video = uploads.complete(dbsession, row)
    key = video.source_key
    assert stored_bytes(storage, key) == data
    manager.abort()
    dbsession.rollback()
    assert set(keys_under(storage, "")) == objects and key not in objects
    del dbsession.info["learnsail.tm"]
    done = testapp.post_json(COMPLETE, {"task_id": task["task_id"]}, headers=teacher).json
    assert done["status"] == "processing"
    assert stored_bytes(storage, video_row(dbsession, task["video_id"]).source_key) == data
