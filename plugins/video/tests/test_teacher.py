"""Teacher tools: one's videos, editing, attaching to lessons through
courses' PUT /lessons/{id}, detaching, replacing, deleting."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from learnsail_video.media_models import TranscodeJob
from learnsail_video.models import Video
from video_media_helpers import Ladder, course_with_lesson, enrol, make_clip, stored_video


@pytest.fixture(scope="module")
def ladder(tmp_path_factory, ffmpeg):
    base = tmp_path_factory.mktemp("teacher")
    clip = make_clip(base / "clip.mp4", width=320, height=180, seconds=3)
    return Ladder(clip, base / "out", width=320, height=180, duration=3.0)


def test_a_teacher_lists_their_own_videos_with_status(app, testapp, dbsession, make_user, auth_headers, ladder,
                                                      tmp_path):
    teacher, other, admin = make_user("teacher"), make_user("teacher"), make_user("admin")
    done = ladder.install(app, dbsession, teacher, title="Squats explained")
    waiting = stored_video(app, dbsession, teacher, ladder.clip, title="Lunges", status="uploading")
    theirs = ladder.install(app, dbsession, other, title="Not mine")
    mine = testapp.get("/api/v1/videos", headers=auth_headers(teacher)).json
    assert mine["count"] == 2 and [v["id"] for v in mine["results"]] == [waiting.id, done.id]
    item = mine["results"][1]
    assert (item["status"], item["progress"], item["duration"], item["resolution"]) == ("completed", 100, 3,
                                                                                        "320x180")
    assert item["qualities"] == ["sd"] and item["thumbnail_url"] and item["file_name"] == "clip.mp4"
    assert mine["results"][0]["thumbnail_url"] is None
    filtered = testapp.get("/api/v1/videos", {"status": "completed"}, headers=auth_headers(teacher)).json
    assert [v["id"] for v in filtered["results"]] == [done.id]
    found = testapp.get("/api/v1/videos", {"q": "squat"}, headers=auth_headers(teacher)).json
    assert [v["id"] for v in found["results"]] == [done.id]
    everyone = testapp.get("/api/v1/videos", headers=auth_headers(admin)).json
    assert {done.id, waiting.id, theirs.id} <= {v["id"] for v in everyone["results"]}
    only = testapp.get("/api/v1/videos", {"owner_id": other.id}, headers=auth_headers(admin)).json
    assert [v["id"] for v in only["results"]] == [theirs.id]
    student = make_user("student")
    testapp.get("/api/v1/videos", headers=auth_headers(student), status=403)
    testapp.get("/api/v1/videos", {"status": "lost"}, headers=auth_headers(teacher), status=400)


def test_the_list_issues_a_constant_number_of_queries(app, testapp, dbsession, make_user, auth_headers, ladder):
    from learnsail.testing import count_queries

    teacher = make_user("teacher")
    headers = auth_headers(teacher)

    def queries():
        app.registry["learnsail.auth_cache"].clear()
        app.registry.get("learnsail.permission_cache", {}).clear()
        with count_queries(app.registry["learnsail.db_engine"]) as statements:
            testapp.get("/api/v1/videos", {"page_size": 100}, headers=headers)
        return len(statements)

    ladder.install(app, dbsession, teacher)
    one = queries()
    for _ in range(5):
        ladder.install(app, dbsession, teacher)
    assert queries() == one


def test_details_edit_and_who_may(app, testapp, dbsession, make_user, auth_headers, ladder):
    teacher, other, admin = make_user("teacher"), make_user("teacher"), make_user("admin")
    video = ladder.install(app, dbsession, teacher)
    course, lessons = course_with_lesson(dbsession, teacher, video)
    url = f"/api/v1/videos/{video.id}"
    detail = testapp.get(url, headers=auth_headers(teacher)).json
    assert detail["lessons"] == [{"lesson_id": lessons[0].id, "title": "Lesson 1", "course_id": course.id,
                                  "course_title": "Course"}]
    assert detail["transcode_jobs"][0]["quality"] == "sd" and detail["video_codec"] == "h264"
    testapp.get(url, headers=auth_headers(other), status=404)
    renamed = testapp.patch_json(url, {"title": "Warm-up"}, headers=auth_headers(teacher)).json
    assert renamed["title"] == "Warm-up"
    testapp.put_json(url, {"title": "Stolen"}, headers=auth_headers(other), status=404)
    testapp.put_json(url, {"title": ""}, headers=auth_headers(teacher), status=400)
    testapp.put_json(url, {"owner_id": other.id}, headers=auth_headers(teacher), status=400)
    assert testapp.put_json(url, {"description": "By the admin"}, headers=auth_headers(admin)).json["description"]
    dbsession.expire_all()
    assert dbsession.get(Video, video.id).title == "Warm-up"


def test_a_new_title_shows_in_the_play_answer_at_once(app, testapp, dbsession, make_user, auth_headers, ladder):
    teacher = make_user("teacher")
    video = ladder.install(app, dbsession, teacher)
    play = f"/api/v1/videos/{video.id}/play"
    assert testapp.get(play, headers=auth_headers(teacher)).json["title"] == "Lecture"  # now cached
    testapp.patch_json(f"/api/v1/videos/{video.id}", {"title": "Renamed"}, headers=auth_headers(teacher))
    assert testapp.get(play, headers=auth_headers(teacher)).json["title"] == "Renamed"


def put_lesson(testapp, auth_headers, user, lesson, status=200, **body):
    return testapp.put_json(f"/api/v1/lessons/{lesson.id}", body, headers=auth_headers(user), status=status).json


def test_attaching_through_the_lesson_checks_the_video(app, testapp, dbsession, make_user, auth_headers, ladder):
    teacher, other = make_user("teacher"), make_user("teacher")
    course, lessons = course_with_lesson(dbsession, teacher)
    lesson = lessons[0]
    mine = ladder.install(app, dbsession, teacher)
    attached = put_lesson(testapp, auth_headers, teacher, lesson, video_id=mine.id)
    assert attached["video_id"] == mine.id and attached["duration"] == 3

    theirs = ladder.install(app, dbsession, other)
    refused = put_lesson(testapp, auth_headers, teacher, lesson, status=400, video_id=theirs.id)
    assert "video_id" in refused["error"]["details"]
    put_lesson(testapp, auth_headers, teacher, lesson, status=400, video_id=999999)
    busy = stored_video(app, dbsession, teacher, ladder.clip, status="processing")
    conflict = put_lesson(testapp, auth_headers, teacher, lesson, status=409, video_id=busy.id)
    assert conflict["error"]["details"]["status"] == "processing"
    gone = ladder.install(app, dbsession, teacher)
    testapp.delete(f"/api/v1/videos/{gone.id}", headers=auth_headers(teacher), status=204)
    put_lesson(testapp, auth_headers, teacher, lesson, status=400, video_id=gone.id)
    dbsession.expire_all()
    from learnsail_courses.models import Lesson

    assert dbsession.get(Lesson, lesson.id).video_id == mine.id  # the refusals changed nothing


def test_a_course_manager_may_attach_anyones_video(app, testapp, dbsession, make_user, auth_headers, ladder):
    teacher, admin = make_user("teacher"), make_user("admin")
    _, lessons = course_with_lesson(dbsession, teacher)
    video = ladder.install(app, dbsession, teacher)
    assert put_lesson(testapp, auth_headers, admin, lessons[0], video_id=video.id)["video_id"] == video.id


def test_detach_and_replace_keep_the_lessons_progress(app, testapp, dbsession, make_user, auth_headers, ladder):
    teacher, student = make_user("teacher"), make_user("student")
    first = ladder.install(app, dbsession, teacher, title="First")
    course, lessons = course_with_lesson(dbsession, teacher, first)
    enrol(dbsession, student, course)
    lesson = lessons[0]
    testapp.post_json(f"/api/v1/lessons/{lesson.id}/progress", {"progress_percent": 55, "last_position": 2},
                      headers=auth_headers(student))
    second = ladder.install(app, dbsession, teacher, title="Second")
    replaced = put_lesson(testapp, auth_headers, teacher, lesson, video_id=second.id)
    assert replaced["video_id"] == second.id
    progress = testapp.get(f"/api/v1/lessons/{lesson.id}", headers=auth_headers(student)).json["progress"]
    assert progress["progress_percent"] == 55.0 and progress["last_position"] == 2
    playing = testapp.get(f"/api/v1/lessons/{lesson.id}/video", headers=auth_headers(student)).json
    assert playing["video_id"] == second.id and playing["title"] == "Second" and playing["last_position"] == 2
    detached = put_lesson(testapp, auth_headers, teacher, lesson, video_id=None)
    assert detached["video_id"] is None
    testapp.get(f"/api/v1/lessons/{lesson.id}/video", headers=auth_headers(student), status=404)


def test_delete_is_refused_while_attached_then_removes_everything(app, testapp, dbsession, make_user,
                                                                  auth_headers, ladder):
    teacher, other = make_user("teacher"), make_user("teacher")
    video = stored_video(app, dbsession, teacher, ladder.clip, status="processing")
    from video_media_helpers import process

    process(app, video.id)
    dbsession.expire_all()
    video = dbsession.get(Video, video.id)
    course, lessons = course_with_lesson(dbsession, teacher, video)
    url = f"/api/v1/videos/{video.id}"
    refused = testapp.delete(url, headers=auth_headers(teacher), status=409).json
    assert refused["error"]["details"]["lesson_ids"] == [lessons[0].id]
    testapp.delete(url, headers=auth_headers(other), status=404)
    put_lesson(testapp, auth_headers, teacher, lessons[0], video_id=None)

    storage = app.registry["learnsail.storage"]
    prefix, source = video.hls_prefix, video.source_key
    assert storage.exists(source) and list(storage.iter_keys(prefix))
    testapp.delete(url, headers=auth_headers(teacher), status=204)
    testapp.get(url, headers=auth_headers(teacher), status=404)
    testapp.get(f"/api/v1/videos/{video.id}/play", headers=auth_headers(teacher), status=404)
    assert video.id not in [v["id"] for v in testapp.get("/api/v1/videos", headers=auth_headers(teacher))
                            .json["results"]]
    assert not storage.exists(source) and list(storage.iter_keys(prefix)) == []  # removed by video.purge_media
    dbsession.expire_all()
    assert dbsession.get(Video, video.id).deleted_at is not None


def test_deleting_a_video_that_is_uploading_is_refused(app, testapp, dbsession, make_user, auth_headers, ladder):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, ladder.clip, status="uploading")
    answer = testapp.delete(f"/api/v1/videos/{video.id}", headers=auth_headers(teacher), status=409).json
    assert answer["error"]["details"]["status"] == "uploading"


def test_deleting_a_video_stops_its_transcode(app, testapp, dbsession, make_user, auth_headers, ladder):
    teacher = make_user("teacher")
    video = stored_video(app, dbsession, teacher, ladder.clip, status="processing")
    job = TranscodeJob(video_id=video.id, status="queued")
    dbsession.add(job)
    dbsession.commit()
    testapp.delete(f"/api/v1/videos/{video.id}", headers=auth_headers(teacher), status=204)
    dbsession.expire_all()
    assert dbsession.get(TranscodeJob, job.id).status == "superseded"
    from learnsail.tasks import send_now

    send_now(app.registry, "video.transcode", video.id, job.id)  # a late delivery does nothing
    dbsession.expire_all()
    assert dbsession.scalar(sa.select(TranscodeJob.attempts).where(TranscodeJob.id == job.id)) == 0
