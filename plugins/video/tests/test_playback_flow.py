"""Issue 6's "Done when", as one test: a teacher uploads a clip in chunks,
its status reaches completed, the teacher attaches it to a lesson; an
enrolled student plays it through the signed HLS URL and their progress
is recorded; a student who is not enrolled gets 403."""

from __future__ import annotations

import urllib.parse

from video_media_helpers import course_with_lesson, fetch_hls, ffprobe_json, make_clip
from video_test_helpers import KIB, real_processing, status_of, upload  # noqa: F401  (fixture)


def test_upload_process_attach_play_and_record(app, testapp, dbsession, make_user, auth_headers, ffmpeg,
                                               tmp_path, real_processing):  # noqa: F811
    teacher, student, outsider = make_user("teacher"), make_user("student"), make_user("student")
    teacher_headers = auth_headers(teacher)

    # 1. the teacher uploads a clip in chunks
    clip = make_clip(tmp_path / "lecture.mp4", width=640, height=360, seconds=4).read_bytes()
    task, last = upload(testapp, teacher_headers, clip, 256 * KIB)
    assert last.status_int == 200, last.body
    video_id = task["video_id"]

    # 2. its status reaches completed (the embedded worker ran the transcode after the last chunk)
    status = testapp.get(f"/api/v1/videos/{video_id}/status", headers=teacher_headers).json
    assert status["status"] == "completed" and status["progress"] == 100, status
    upload_status = status_of(testapp, teacher_headers, task["task_id"]).json
    assert [(j["quality"], j["status"]) for j in upload_status["transcode_jobs"]] == [("sd", "completed")]

    # 3. the teacher attaches it to a lesson of their (free, published) course
    course, lessons = course_with_lesson(dbsession, teacher, free=True)
    lesson = lessons[0]
    attached = testapp.put_json(f"/api/v1/lessons/{lesson.id}", {"video_id": video_id},
                                headers=teacher_headers).json
    assert attached["video_id"] == video_id and attached["duration"] == 4

    # 4. an enrolled student plays it through the signed HLS URL
    testapp.post_json(f"/api/v1/courses/{course.id}/enroll", {"enrollment_type": "free"},
                      headers=auth_headers(student))
    play = testapp.get(f"/api/v1/lessons/{lesson.id}/video", headers=auth_headers(student)).json
    assert play["access"] == "full" and play["video_url"].endswith("/master.m3u8")
    fetched = fetch_hls(testapp, play["video_url"], tmp_path / "played")
    probed = ffprobe_json(fetched["master"])
    assert abs(float(probed["format"]["duration"]) - 4.0) < 0.5
    assert [s["height"] for s in probed["streams"] if s["codec_type"] == "video"] == [360]

    # ... and their progress is recorded
    saved = testapp.post_json(f"/api/v1/videos/{video_id}/progress",
                              {"position": 4, "duration": 4, "watch_duration": 4, "device_type": "desktop",
                               "platform": "web", "quality": "sd", "session_id": play["session_id"]},
                              headers=auth_headers(student)).json
    assert saved["recorded"] is True and saved["is_completed"] is True and saved["progress_percent"] == 100.0
    progress = testapp.get(f"/api/v1/lessons/{lesson.id}", headers=auth_headers(student)).json["progress"]
    assert progress["is_completed"] is True and progress["last_position"] == 4
    stats = testapp.get(f"/api/v1/videos/{video_id}/statistics", headers=teacher_headers).json
    assert (stats["total_plays"], stats["total_unique_viewers"], stats["total_completions"]) == (1, 1, 1)

    # 5. a student who is not enrolled gets 403, for the URLs and for the playlists' tokens alike
    denied = testapp.get(f"/api/v1/lessons/{lesson.id}/video", headers=auth_headers(outsider), status=403).json
    assert denied["error"]["code"] == "PERMISSION_DENIED"
    testapp.get(f"/api/v1/videos/{video_id}/play", headers=auth_headers(outsider), status=403)
    master = urllib.parse.urlsplit(play["video_url"]).path
    testapp.get(master.replace("/hls/", "/hls/x"), status=403)
