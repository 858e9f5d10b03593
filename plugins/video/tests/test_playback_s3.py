"""The same pipeline and playback on the S3-protocol server: the original
fetched from the bucket, the outputs stored there, segments served by
presigned URLs, the objects removed on delete."""

from __future__ import annotations

import urllib.parse

import pytest

from learnsail_video.models import Video
from video_media_helpers import (course_with_lesson, enrol, fetch_hls, ffprobe_json, make_clip, playlist_seconds,
                                 process, segment_urls, stored_video)


@pytest.fixture(scope="session")
def learnsail_extra_settings(request, learnsail_extra_settings):
    s3 = request.getfixturevalue("s3_server")
    return {**learnsail_extra_settings,
            "learnsail.storage_url": f"s3://{s3.access_key}:{s3.secret_key}@{s3.endpoint}/learnsail-video"
                                     f"?secure=false&region={s3.region}"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory, ffmpeg):
    return make_clip(tmp_path_factory.mktemp("s3") / "clip.mp4", width=640, height=360, seconds=6)


def test_processing_and_playback_on_s3(app, testapp, dbsession, make_user, auth_headers, clip, tmp_path,
                                       monkeypatch, s3_server):
    from learnsail_video import settings as S

    storage = app.registry["learnsail.storage"]
    assert storage.kind == "s3"
    teacher, student, visitor = make_user("teacher"), make_user("student"), make_user("student")
    video = stored_video(app, dbsession, teacher, clip)
    process(app, video.id)
    status = testapp.get(f"/api/v1/videos/{video.id}/status", headers=auth_headers(teacher)).json
    assert status["status"] == "completed" and status["progress"] == 100
    dbsession.expire_all()
    video = dbsession.get(Video, video.id)
    assert video.qualities == ["sd"] and storage.exists(video.master_key)

    course, lessons = course_with_lesson(dbsession, teacher, video, lesson_trial=True)
    enrol(dbsession, student, course)
    answer = testapp.get(f"/api/v1/lessons/{lessons[0].id}/video", headers=auth_headers(student)).json
    assert answer["mp4_url"].startswith(f"http://{s3_server.endpoint}/")
    fetched = fetch_hls(testapp, answer["video_url"], tmp_path / "full")
    urls = segment_urls(fetched["media"]["sd"])
    assert urls and all(url.startswith(f"http://{s3_server.endpoint}/learnsail-video/") for url in urls)
    assert all("X-Amz-Signature=" in url for url in urls)  # presigned
    probed = ffprobe_json(fetched["master"])
    assert abs(float(probed["format"]["duration"]) - 6.0) < 0.5
    assert probed["streams"][0]["height"] == 360

    monkeypatch.setitem(app.registry.settings, S.TRIAL_SECONDS, 4)
    trial = testapp.get(f"/api/v1/lessons/{lessons[0].id}/video", headers=auth_headers(visitor)).json
    assert trial["access"] == "trial" and trial["mp4_url"] is None
    media = testapp.get(urllib.parse.urlsplit(trial["qualities"][0]["url"]).path).text
    assert playlist_seconds(media) == pytest.approx(4.0, abs=0.05)

    # deleting (once detached) removes the objects from the bucket
    testapp.put_json(f"/api/v1/lessons/{lessons[0].id}", {"video_id": None}, headers=auth_headers(teacher))
    testapp.delete(f"/api/v1/videos/{video.id}", headers=auth_headers(teacher), status=204)
    assert list(storage.iter_keys(video.hls_prefix)) == [] and not storage.exists(video.source_key)
