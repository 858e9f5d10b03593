"""The answers of processing, playback, watching and the teacher tools
match the schemas /api/openapi.json documents for them (no undocumented,
mistyped or missing fields a strict client would trip on)."""

from __future__ import annotations

import pytest

from learnsail.testing.contract import documented_path, mismatches
from video_media_helpers import Ladder, course_with_lesson, enrol, make_clip


@pytest.fixture(scope="module")
def ladder(tmp_path_factory, ffmpeg):
    base = tmp_path_factory.mktemp("contract")
    clip = make_clip(base / "clip.mp4", width=320, height=180, seconds=2)
    return Ladder(clip, base / "out", width=320, height=180, duration=2.0)


def test_every_answer_matches_its_documented_schema(app, testapp, dbsession, make_user, auth_headers, ladder):
    document = testapp.get("/api/openapi.json").json
    problems: list[str] = []

    def go(user, method, url, body=None, status=200, **params):
        headers = auth_headers(user)
        if method in ("post", "put", "patch"):
            response = getattr(testapp, f"{method}_json")(url, body or {}, headers=headers, status=status)
        else:
            response = getattr(testapp, method)(url, params, headers=headers, status=status)
        problems.extend(mismatches(document, method, documented_path(document, url), response))
        return response.json

    teacher, student = make_user("teacher"), make_user("student")
    video = ladder.install(app, dbsession, teacher)
    course, lessons = course_with_lesson(dbsession, teacher, video)
    enrol(dbsession, student, course)
    vid, lesson = video.id, lessons[0].id

    go(teacher, "get", "/api/v1/videos")
    go(teacher, "get", f"/api/v1/videos/{vid}")
    go(teacher, "patch", f"/api/v1/videos/{vid}", {"title": "Renamed"})
    go(teacher, "get", f"/api/v1/videos/{vid}/status")
    go(student, "get", f"/api/v1/lessons/{lesson}/video")
    go(student, "get", f"/api/v1/videos/{vid}/play", quality="sd")
    go(student, "post", f"/api/v1/videos/{vid}/progress", {"position": 2, "watch_duration": 2})
    go(teacher, "post", f"/api/v1/videos/{vid}/progress", {"position": 2})  # a preview
    go(teacher, "get", f"/api/v1/videos/{vid}/statistics", days=3)
    go(teacher, "post", f"/api/v1/videos/{vid}/retranscode", status=202)
    busy = ladder.install(app, dbsession, teacher)
    busy.status = "processing"
    dbsession.commit()
    go(teacher, "get", f"/api/v1/videos/{busy.id}/play", status=409)
    go(student, "get", f"/api/v1/videos/{vid}/statistics", status=403)
    assert problems == []


def test_video_routes_leave_the_upload_routes_alone(testapp, make_user, auth_headers):
    headers = auth_headers(make_user("teacher"))
    # /api/v1/videos/{id} must not swallow /api/v1/videos/upload or /api/v1/videos/tus (registered first)
    assert testapp.post("/api/v1/videos/upload", headers=headers, status="*").status_int not in (404, 405)
    assert testapp.options("/api/v1/videos/tus", status="*").headers.get("Tus-Version")
    bad = testapp.get("/api/v1/videos/abc", headers=headers, status=400).json
    assert bad["error"]["code"] == "VALIDATION_ERROR" and "id" in bad["error"]["details"]
    document = testapp.get("/api/openapi.json").json
    assert "/api/v1/videos/{id}/hls/{token}/{quality}/index.m3u8" in document["paths"]
