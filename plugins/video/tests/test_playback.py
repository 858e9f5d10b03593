"""Playback: signed, expiring URLs under the lesson's access rules; the
master fetched through them and read end to end by ffprobe; tampered or
expired links refused; a trial stops at its limit."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest

from learnsail import hookimpl
from learnsail.db import utcnow
from learnsail_video import settings as S
from video_media_helpers import (Ladder, course_with_lesson, enrol, fetch_hls, ffprobe_json, make_clip,
                                 playlist_seconds, segment_urls)


@pytest.fixture(scope="module")
def ladders(tmp_path_factory, ffmpeg):
    base = tmp_path_factory.mktemp("ladders")
    six = make_clip(base / "six.mp4", width=320, height=180, seconds=6)
    two_rungs = make_clip(base / "two.mp4", width=1280, height=720, seconds=2)
    return {"six": Ladder(six, base / "six", width=320, height=180, duration=6.0),
            "two": Ladder(two_rungs, base / "two", width=1280, height=720, duration=2.0)}


@pytest.fixture
def setup(app, dbsession, make_user, ladders):
    """A paid course whose first lesson shows a 6 s video, its teacher and a student."""
    teacher, student = make_user("teacher"), make_user("student")
    video = ladders["six"].install(app, dbsession, teacher)
    course, lessons = course_with_lesson(dbsession, teacher, video, lessons=2)
    return {"teacher": teacher, "student": student, "video": video, "course": course, "lesson": lessons[0],
            "lessons": lessons}


def lesson_url(setup):
    return f"/api/v1/lessons/{setup['lesson'].id}/video"


def test_an_enrolled_student_plays_the_master_end_to_end(testapp, dbsession, auth_headers, setup, tmp_path):
    enrol(dbsession, setup["student"], setup["course"])
    answer = testapp.get(lesson_url(setup), headers=auth_headers(setup["student"])).json
    assert answer["access"] == "full" and answer["format"] == "hls" and answer["duration"] == 6
    assert answer["resolution"] == "320x180" and answer["available_qualities"] == ["sd"]
    assert answer["video_url"].endswith("/master.m3u8") and answer["mp4_url"]
    assert answer["lesson_id"] == setup["lesson"].id and answer["trial_seconds"] is None

    fetched = fetch_hls(testapp, answer["video_url"], tmp_path / "hls")
    assert "#EXT-X-STREAM-INF:BANDWIDTH=" in fetched["master_text"]
    assert 'CODECS="avc1.' in fetched["master_text"] and "RESOLUTION=320x180" in fetched["master_text"]
    media = fetched["media"]["sd"]
    assert media.rstrip().endswith("#EXT-X-ENDLIST") and fetched["segments"] == 2
    assert all("/api/v1/storage/" in url for url in segment_urls(media))  # every segment signed
    probed = ffprobe_json(fetched["master"])
    assert abs(float(probed["format"]["duration"]) - 6.0) < 0.5
    assert {s["codec_name"] for s in probed["streams"]} >= {"h264", "aac"}

    mp4 = testapp.get(urllib.parse.urlsplit(answer["mp4_url"]).path)
    assert mp4.content_type == "video/mp4" and mp4.body[4:8] == b"ftyp"
    assert testapp.get(urllib.parse.urlsplit(answer["thumbnail_url"]).path).content_type == "image/jpeg"
    track = testapp.get(urllib.parse.urlsplit(answer["thumbnails_url"]).path)
    assert track.content_type == "text/vtt" and track.text.startswith("WEBVTT")
    assert "/api/v1/storage/" in track.text and "#xywh=" in track.text


def test_playlists_are_never_cached_by_others(testapp, dbsession, auth_headers, setup):
    enrol(dbsession, setup["student"], setup["course"])
    answer = testapp.get(lesson_url(setup), headers=auth_headers(setup["student"])).json
    master = testapp.get(urllib.parse.urlsplit(answer["video_url"]).path)
    assert master.content_type == "application/vnd.apple.mpegurl"
    assert "no-store" in master.headers["Cache-Control"] and "private" in master.headers["Cache-Control"]


def test_a_tampered_token_is_refused(testapp, dbsession, auth_headers, setup):
    enrol(dbsession, setup["student"], setup["course"])
    answer = testapp.get(lesson_url(setup), headers=auth_headers(setup["student"])).json
    path = urllib.parse.urlsplit(answer["video_url"]).path
    token = path.split("/hls/", 1)[1].split("/", 1)[0]
    header, payload, signature = token.split(".")
    altered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    refused = testapp.get(path.replace(token, altered), status=403).json
    assert refused["error"]["code"] == "PERMISSION_DENIED" and refused["error"]["details"]["reason"] == "invalid"
    other_video = path.replace(f"/videos/{setup['video'].id}/", f"/videos/{setup['video'].id + 1000}/")
    assert testapp.get(other_video, status=403).json["error"]["code"] == "PERMISSION_DENIED"
    # a signed segment whose link was altered
    media = testapp.get(urllib.parse.urlsplit(answer["qualities"][0]["url"]).path).text
    segment = urllib.parse.urlsplit(segment_urls(media)[0]).path
    testapp.get(segment[:-3] + ("xyz" if not segment.endswith("xyz") else "abc"), status=403)
    testapp.get(segment, status=200)


def test_an_expired_token_is_refused(app, testapp, dbsession, auth_headers, setup):
    from learnsail.identity import tokens

    video = setup["video"]
    expired = tokens.issue(app.registry.settings, setup["student"].id, "video_play", -5,
                           v=video.id, p=video.hls_prefix, m="full")
    refused = testapp.get(f"/api/v1/videos/{video.id}/hls/{expired}/master.m3u8", status=403).json
    assert refused["error"]["details"]["reason"] == "expired" and "expired" in refused["error"]["message"]
    # a token of another kind (an access token) opens nothing
    access = tokens.issue(app.registry.settings, setup["student"].id, "access", 600, v=video.id,
                          p=video.hls_prefix, m="full")
    testapp.get(f"/api/v1/videos/{video.id}/hls/{access}/master.m3u8", status=403)


def test_a_paid_video_without_enrolment_is_403(testapp, auth_headers, setup):
    answer = testapp.get(lesson_url(setup), headers=auth_headers(setup["student"]), status=403).json
    assert answer["error"]["code"] == "PERMISSION_DENIED"
    testapp.get(f"/api/v1/videos/{setup['video'].id}/play", headers=auth_headers(setup["student"]), status=403)
    testapp.get(lesson_url(setup), status=401)


def test_an_enrolment_outside_its_validity_is_403(testapp, dbsession, auth_headers, setup, make_user):
    now = utcnow()
    enrol(dbsession, setup["student"], setup["course"], valid_until=now - dt.timedelta(days=1))
    testapp.get(lesson_url(setup), headers=auth_headers(setup["student"]), status=403)
    later = make_user("student")
    enrol(dbsession, later, setup["course"], valid_from=now + dt.timedelta(days=1))
    testapp.get(lesson_url(setup), headers=auth_headers(later), status=403)
    current = make_user("student")
    enrol(dbsession, current, setup["course"], valid_from=now - dt.timedelta(days=1),
          valid_until=now + dt.timedelta(days=1))
    assert testapp.get(lesson_url(setup), headers=auth_headers(current)).json["access"] == "full"
    ended = make_user("student")
    enrol(dbsession, ended, setup["course"], status="ended")
    testapp.get(lesson_url(setup), headers=auth_headers(ended), status=403)


def test_a_free_lesson_plays_for_everyone_signed_in(app, testapp, dbsession, make_user, auth_headers, ladders):
    teacher, student = make_user("teacher"), make_user("student")
    video = ladders["six"].install(app, dbsession, teacher)
    _, lessons = course_with_lesson(dbsession, teacher, video, lesson_free=True)
    answer = testapp.get(f"/api/v1/lessons/{lessons[0].id}/video", headers=auth_headers(student)).json
    assert answer["access"] == "full" and answer["mp4_url"]


class Members:
    """A stand-in membership plugin: ``learnsail_member_until`` for one user."""

    def __init__(self, member_id, until):
        self.member_id, self.until = member_id, until

    @hookimpl
    def learnsail_member_until(self, user_id, session):
        return self.until if user_id == self.member_id else None


def test_a_member_only_course_plays_for_members(app, testapp, dbsession, make_user, auth_headers, ladders):
    teacher, member, lapsed, other = make_user("teacher"), make_user("student"), make_user("student"), \
        make_user("student")
    video = ladders["six"].install(app, dbsession, teacher)
    _, lessons = course_with_lesson(dbsession, teacher, video, member_only=True)
    url = f"/api/v1/lessons/{lessons[0].id}/video"
    pm = app.registry["learnsail.pm"]
    current = Members(member.id, utcnow() + dt.timedelta(days=30))
    old = Members(lapsed.id, utcnow() - dt.timedelta(days=1))
    pm.register(current, name="test-members")
    pm.register(old, name="test-lapsed")
    try:
        assert testapp.get(url, headers=auth_headers(member)).json["access"] == "full"
        testapp.get(url, headers=auth_headers(lapsed), status=403)
        testapp.get(url, headers=auth_headers(other), status=403)
    finally:
        pm.unregister(name="test-members")
        pm.unregister(name="test-lapsed")


def test_a_trial_playlist_stops_at_the_limit(app, testapp, make_user, dbsession, auth_headers, ladders,
                                             monkeypatch, tmp_path):
    monkeypatch.setitem(app.registry.settings, S.TRIAL_SECONDS, 4)
    teacher, visitor, enrolled = make_user("teacher"), make_user("student"), make_user("student")
    video = ladders["six"].install(app, dbsession, teacher)
    course, lessons = course_with_lesson(dbsession, teacher, video, lesson_trial=True)
    enrol(dbsession, enrolled, course)
    url = f"/api/v1/lessons/{lessons[0].id}/video"

    trial = testapp.get(url, headers=auth_headers(visitor)).json
    assert trial["access"] == "trial" and trial["trial_seconds"] == 4 and trial["mp4_url"] is None
    fetched = fetch_hls(testapp, trial["video_url"], tmp_path / "trial")
    media = fetched["media"]["sd"]
    assert playlist_seconds(media) == pytest.approx(4.0, abs=0.05) and len(segment_urls(media)) == 1
    assert media.rstrip().endswith("#EXT-X-ENDLIST")
    assert float(ffprobe_json(fetched["master"])["format"]["duration"]) < 5.0
    track = testapp.get(urllib.parse.urlsplit(trial["thumbnails_url"]).path).text
    starts = [line.split(" --> ")[0] for line in track.splitlines() if " --> " in line]
    assert starts and max(starts) < "00:00:04.000"

    full = testapp.get(url, headers=auth_headers(enrolled)).json
    media = fetch_hls(testapp, full["video_url"], tmp_path / "full")["media"]["sd"]
    assert playlist_seconds(media) == pytest.approx(6.0, abs=0.05) and len(segment_urls(media)) == 2


def test_a_lesson_that_is_not_a_trial_gives_visitors_nothing(testapp, auth_headers, setup):
    testapp.get(lesson_url(setup), headers=auth_headers(setup["student"]), status=403)


def test_the_owner_previews_and_others_do_not_see_an_unattached_video(app, testapp, dbsession, make_user,
                                                                      auth_headers, ladders):
    teacher, student, admin = make_user("teacher"), make_user("student"), make_user("admin")
    video = ladders["six"].install(app, dbsession, teacher)
    url = f"/api/v1/videos/{video.id}/play"
    assert testapp.get(url, headers=auth_headers(teacher)).json["access"] == "preview"
    assert testapp.get(url, headers=auth_headers(admin)).json["access"] == "preview"
    assert testapp.get(url, headers=auth_headers(student), status=404).json["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_play_chooses_a_quality(app, testapp, dbsession, make_user, auth_headers, ladders, tmp_path):
    teacher, student = make_user("teacher"), make_user("student")
    video = ladders["two"].install(app, dbsession, teacher)
    course, _ = course_with_lesson(dbsession, teacher, video)
    enrol(dbsession, student, course)
    url = f"/api/v1/videos/{video.id}/play"
    auto = testapp.get(url, headers=auth_headers(student)).json
    assert auto["available_qualities"] == ["sd", "hd"] and auto["quality"] == "auto"
    assert auto["resolution"] == "1280x720" and auto["video_url"] == auto["hls_url"]
    fetched = fetch_hls(testapp, auto["video_url"], tmp_path / "both")
    assert sorted(fetched["media"]) == ["hd", "sd"]
    streams = ffprobe_json(fetched["master"])["streams"]
    assert sorted(s["height"] for s in streams if s["codec_type"] == "video") == [360, 720]

    hd = testapp.get(url, {"quality": "hd"}, headers=auth_headers(student)).json
    assert hd["quality"] == "hd" and hd["video_url"].endswith("/hd/index.m3u8") and hd["resolution"] == "1280x720"
    assert "#EXTINF" in testapp.get(urllib.parse.urlsplit(hd["video_url"]).path).text
    bad = testapp.get(url, {"quality": "4k"}, headers=auth_headers(student), status=400).json
    assert "sd, hd" in bad["error"]["details"]["quality"][0]


def test_last_position_and_next_video(app, testapp, dbsession, make_user, auth_headers, ladders):
    teacher, student = make_user("teacher"), make_user("student")
    first = ladders["six"].install(app, dbsession, teacher, title="One")
    second = ladders["six"].install(app, dbsession, teacher, title="Two")
    course, lessons = course_with_lesson(dbsession, teacher, first, lessons=3)
    lessons[2].video_id = second.id  # lesson 2 has no video: lesson 3 is next
    dbsession.commit()
    enrol(dbsession, student, course)
    url = f"/api/v1/lessons/{lessons[0].id}/video"
    before = testapp.get(url, headers=auth_headers(student)).json
    assert before["last_position"] is None
    assert (before["next_lesson_id"], before["next_video_id"]) == (lessons[2].id, second.id)
    testapp.post_json(f"/api/v1/lessons/{lessons[0].id}/progress", {"progress_percent": 40, "last_position": 3},
                      headers=auth_headers(student))
    assert testapp.get(url, headers=auth_headers(student)).json["last_position"] == 3
    last = testapp.get(f"/api/v1/lessons/{lessons[2].id}/video", headers=auth_headers(student)).json
    assert last["next_video_id"] is None


def test_a_video_still_processing_does_not_play(app, testapp, dbsession, make_user, auth_headers, ladders):
    teacher = make_user("teacher")
    video = ladders["six"].install(app, dbsession, teacher)
    video.status = "processing"
    dbsession.commit()
    answer = testapp.get(f"/api/v1/videos/{video.id}/play", headers=auth_headers(teacher), status=409).json
    assert answer["error"]["details"]["status"] == "processing"


def test_a_lesson_without_a_video_is_404(testapp, dbsession, auth_headers, setup):
    enrol(dbsession, setup["student"], setup["course"])
    answer = testapp.get(f"/api/v1/lessons/{setup['lessons'][1].id}/video", headers=auth_headers(setup["student"]),
                         status=404).json
    assert "no video" in answer["error"]["message"]
    testapp.get("/api/v1/lessons/999999/video", headers=auth_headers(setup["student"]), status=404)


def test_a_draft_course_hides_its_lesson_video(app, testapp, dbsession, make_user, auth_headers, ladders):
    teacher, student = make_user("teacher"), make_user("student")
    video = ladders["six"].install(app, dbsession, teacher)
    _, lessons = course_with_lesson(dbsession, teacher, video, status="draft", lesson_free=True)
    testapp.get(f"/api/v1/lessons/{lessons[0].id}/video", headers=auth_headers(student), status=404)
    assert testapp.get(f"/api/v1/lessons/{lessons[0].id}/video",
                       headers=auth_headers(teacher)).json["access"] == "preview"
