"""Who may upload, what an upload task must announce, whose course a video
may name, and how many queries the upload endpoints issue."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from video_test_helpers import (CHUNK, COMPLETE, INIT, KIB, SINGLE, chunks_of, clips, handed_off, init,  # noqa: F401
                                md5, real_processing, send_chunk, status_of, upload)


@pytest.fixture
def teacher(make_user):
    return make_user("teacher")


@pytest.fixture
def teacher_headers(teacher, auth_headers):
    return auth_headers(teacher)


def course_of(testapp, headers, title="Course"):
    course = testapp.post_json("/api/v1/courses", {"title": title}, headers=headers, status=201).json
    chapter = testapp.post_json(f"/api/v1/courses/{course['id']}/chapters", {"title": "Chapter"}, headers=headers,
                                status=201).json
    return course["id"], chapter["id"]


def test_only_teachers_upload(testapp, make_user, auth_headers, clips):
    student = auth_headers(make_user("student"))
    data = clips["small"]
    body = {"filename": "a.mp4", "file_size": len(data), "file_md5": md5(data), "chunk_size": 1024 * KIB,
            "total_chunks": 1}
    assert testapp.post_json(INIT, body, headers=student, status=403).json["error"]["code"] == "PERMISSION_DENIED"
    assert testapp.post_json(INIT, body, status=401).json["error"]["code"] == "AUTH_FAILED"
    testapp.post(SINGLE, headers=student, upload_files=[("file", "a.mp4", data)], status=403)
    testapp.post(CHUNK, [("task_id", "x" * 32), ("chunk_index", "0")], headers=student,
                 upload_files=[("chunk_data", "c", data)], status=403)
    testapp.get("/api/v1/videos/upload/tasks", headers=student, status=403)
    admin = auth_headers(make_user("admin"))
    testapp.post_json(INIT, body, headers=admin, status=201)


def test_another_teacher_can_neither_see_nor_continue_nor_cancel_my_upload(testapp, teacher_headers, make_user,
                                                                           auth_headers, clips):
    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    task = init(testapp, teacher_headers, data, 256 * KIB).json
    send_chunk(testapp, teacher_headers, task["task_id"], 0, pieces[0])
    other = auth_headers(make_user("teacher"))
    for headers in (other, auth_headers(make_user("admin"))):
        assert status_of(testapp, headers, task["task_id"], status=404).json["error"]["code"] == "RESOURCE_NOT_FOUND"
        send_chunk(testapp, headers, task["task_id"], 1, pieces[1], status=404)
        testapp.post_json(COMPLETE, {"task_id": task["task_id"]}, headers=headers, status=404)
        testapp.delete(f"/api/v1/videos/upload/{task['task_id']}", headers=headers, status=404)
        assert testapp.get("/api/v1/videos/upload/tasks", headers=headers).json["count"] == 0
    # nothing of theirs reached my task
    status = status_of(testapp, teacher_headers, task["task_id"]).json
    assert status["uploaded_chunks"] == [0] and status["status"] == "uploading"
    # a made-up task id is just as unknown
    status_of(testapp, teacher_headers, "A" * 32, status=404)


@pytest.mark.parametrize("change, field", [
    ({"total_chunks": 3}, "total_chunks"),
    ({"chunk_size": 1024}, "chunk_size"),
    ({"chunk_size": 1024 ** 3}, "chunk_size"),
    ({"file_md5": "not-a-digest"}, "file_md5"),
    ({"file_size": 0}, "file_size"),
    ({"filename": ""}, "filename"),
    ({"course_id": 999999}, "course_id"),
    ({"chapter_id": 999999}, "chapter_id"),
    ({"unknown": 1}, "unknown"),
])
def test_init_checks_what_the_task_announces(testapp, teacher_headers, change, field):
    body = {"filename": "a.mp4", "file_size": 1000 * KIB, "file_md5": md5(b"x"), "chunk_size": 256 * KIB,
            "total_chunks": 4, **change}
    response = testapp.post_json(INIT, body, headers=teacher_headers, status=400)
    assert field in response.json["error"]["details"]


def test_a_file_over_the_size_limit_is_refused_at_init(testapp, teacher_headers, app):
    limit = app.registry.settings["learnsail.video.max_upload_size"]
    body = {"filename": "a.mp4", "file_size": limit + 1, "file_md5": md5(b"x"), "chunk_size": 64 * 1024 * KIB,
            "total_chunks": (limit + 1) // (64 * 1024 * KIB) + 1}
    response = testapp.post_json(INIT, body, headers=teacher_headers, status=413)
    assert response.json["error"]["details"]["max_bytes"] == limit


def test_a_video_names_only_its_teachers_course(testapp, teacher_headers, make_user, auth_headers, clips, dbsession):
    from learnsail_video.models import Video

    data = clips["small"]
    mine, my_chapter = course_of(testapp, teacher_headers)
    other = auth_headers(make_user("teacher"))
    theirs, their_chapter = course_of(testapp, other)
    created = init(testapp, teacher_headers, data, 1024 * KIB, chapter_id=my_chapter).json
    assert dbsession.get(Video, created["video_id"]).course_id == mine  # the chapter's course
    refused = init(testapp, teacher_headers, data, 1024 * KIB, course_id=theirs, status=403)
    assert "course_id" in refused.json["error"]["details"]
    init(testapp, teacher_headers, data, 1024 * KIB, chapter_id=their_chapter, status=403)
    mismatch = init(testapp, teacher_headers, data, 1024 * KIB, course_id=mine, chapter_id=their_chapter,
                    status=400)
    assert "chapter_id" in mismatch.json["error"]["details"]
    testapp.post(SINGLE, [("course_id", str(theirs))], headers=teacher_headers,
                 upload_files=[("file", "a.mp4", data)], status=403)
    # a course manager (admin) may name any course
    admin = auth_headers(make_user("admin"))
    init(testapp, admin, data, 1024 * KIB, course_id=theirs)


def test_a_chunk_must_follow_its_task_fields(testapp, teacher_headers, clips):
    data = clips["small"]
    task = init(testapp, teacher_headers, data, 1024 * KIB).json
    response = testapp.post(CHUNK, [("task_id", task["task_id"])], headers=teacher_headers,
                            upload_files=[("chunk_data", "c", data)], status=400)
    assert "chunk_index" in response.json["error"]["details"]
    response = testapp.post(CHUNK, {"task_id": task["task_id"], "chunk_index": "0"}, headers=teacher_headers,
                            content_type="multipart/form-data", status=400)
    assert "chunk_data" in response.json["error"]["details"]
    testapp.post_json(CHUNK, {"task_id": task["task_id"]}, headers=teacher_headers, status=415)
    # explicit completion before every chunk is in
    incomplete = testapp.post_json(COMPLETE, {"task_id": task["task_id"]}, headers=teacher_headers, status=409)
    assert incomplete.json["error"]["details"]["missing_chunks"] == [0]


def test_the_status_and_the_list_issue_a_constant_number_of_queries(app, testapp, teacher_headers, clips):
    from learnsail.testing import count_queries

    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    engine = app.registry["learnsail.db_engine"]
    task = init(testapp, teacher_headers, data, 256 * KIB).json

    def queries(path):
        app.registry["learnsail.auth_cache"].clear()
        app.registry.get("learnsail.permission_cache", {}).clear()
        with count_queries(engine) as statements:
            testapp.get(path, headers=teacher_headers)
        return len(statements)

    status_path = f"/api/v1/videos/upload/status/{task['task_id']}"
    list_path = "/api/v1/videos/upload/tasks?page_size=100"
    send_chunk(testapp, teacher_headers, task["task_id"], 0, pieces[0])
    one_chunk, one_task = queries(status_path), queries(list_path)
    for index in (1, 2):
        send_chunk(testapp, teacher_headers, task["task_id"], index, pieces[index])
    for _ in range(5):
        init(testapp, teacher_headers, data, 256 * KIB)
    assert queries(status_path) == one_chunk
    assert queries(list_path) == one_task
    listed = testapp.get(list_path, headers=teacher_headers).json
    assert listed["count"] == 6 and listed["results"][-1]["task_id"] == task["task_id"]
    assert listed["results"][-1]["uploaded_count"] == 3


def test_the_hand_off_reaches_processing(testapp, teacher_headers, clips, dbsession, real_processing):
    """With the media side installed, the completed upload is queued for
    transcoding: its status lists the transcode job."""
    from learnsail_video.models import Video

    task, last = upload(testapp, teacher_headers, clips["small"], 1024 * KIB)
    assert last.status_int == 200, last.body
    status = status_of(testapp, teacher_headers, task["task_id"]).json
    assert status["transcode_jobs"], status
    dbsession.expire_all()
    assert dbsession.get(Video, task["video_id"]).status in ("processing", "completed")


def test_openapi_documents_the_upload_endpoints(testapp):
    doc = testapp.get("/api/openapi.json").json
    chunk = doc["paths"]["/api/v1/videos/upload/chunk"]["post"]
    assert list(chunk["requestBody"]["content"]) == ["multipart/form-data"]
    assert {"200", "400", "404", "409", "413"} <= set(chunk["responses"])
    assert "multipart/form-data" in doc["paths"]["/api/v1/videos/upload"]["post"]["requestBody"]["content"]
    tus_item = doc["paths"]["/api/v1/videos/tus/{task_id}"]
    assert {"head", "patch", "delete", "options"} <= set(tus_item)
    assert "application/offset+octet-stream" in tus_item["patch"]["requestBody"]["content"]
    assert "460" in tus_item["patch"]["responses"]
    assert {"post", "options"} <= set(doc["paths"]["/api/v1/videos/tus"])


def test_an_erased_teachers_uploads_are_cancelled_and_exported_before(app, testapp, teacher, teacher_headers, clips,
                                                                      dbsession):
    from learnsail_video.models import UploadTask, Video

    data = clips["medium"]
    pieces = chunks_of(data, 256 * KIB)
    open_task = init(testapp, teacher_headers, data, 256 * KIB).json
    send_chunk(testapp, teacher_headers, open_task["task_id"], 0, pieces[0])
    done, _ = upload(testapp, teacher_headers, clips["small"], 1024 * KIB)
    hook = app.registry["learnsail.pm"].hook
    (exported,) = [r for r in hook.learnsail_user_export(user_id=teacher.id, session=dbsession) if r and "video" in r]
    tasks = {t["task_id"]: t for t in exported["video"]["upload_tasks"]}
    assert tasks[open_task["task_id"]]["status"] == "uploading" and tasks[done["task_id"]]["status"] == "uploaded"
    hook.learnsail_user_erased(user_id=teacher.id, session=dbsession)
    dbsession.flush()
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(UploadTask)
                            .where(UploadTask.owner_id == teacher.id)) == 0
    assert dbsession.get(Video, open_task["video_id"]).deleted_at is not None
    assert dbsession.get(Video, done["video_id"]).deleted_at is None  # course content stays
    assert not [r for r in hook.learnsail_user_export(user_id=teacher.id, session=dbsession)
                if r and r.get("video", {}).get("upload_tasks")]


def test_the_sweep_removes_parts_a_finished_upload_left_behind(app, testapp, teacher_headers, clips, dbsession):
    """The parts of a finished upload are removed after its commit; when that
    failed (storage down), the periodic sweep removes them later."""
    import datetime as dt

    from learnsail.tasks import send_now
    from learnsail_video.models import UploadTask

    storage = app.registry["learnsail.storage"]
    task, _ = upload(testapp, teacher_headers, clips["text"], 1024 * KIB)  # rejected: its parts go
    prefix = f"video-uploads/{task['task_id']}/"
    storage.put(prefix + "left-behind", __import__("io").BytesIO(b"x"), 1)
    send_now(app.registry, "video.expire_uploads")
    assert list(storage.iter_keys(prefix))  # too recent: the removal after the commit may still be running
    dbsession.execute(sa.update(UploadTask).where(UploadTask.token == task["task_id"])
                      .values(updated_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))
    dbsession.commit()
    send_now(app.registry, "video.expire_uploads")
    assert list(storage.iter_keys(prefix)) == []
    dbsession.expire_all()
    assert dbsession.scalar(sa.select(UploadTask.parts_removed).where(UploadTask.token == task["task_id"]))
