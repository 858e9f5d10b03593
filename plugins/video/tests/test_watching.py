"""Watching: only what was really watched counts, completion at 90%, watch
records per session, courses progress fed, statistics and drop-off."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from learnsail_video import watching
from learnsail_video.media_models import Viewer, WatchSession
from video_media_helpers import Ladder, course_with_lesson, enrol, make_clip


# --- the rules ------------------------------------------------------------------------------

def test_merge_joins_overlapping_and_touching_pieces():
    assert watching.merge([], 0, 10) == [[0.0, 10.0]]
    assert watching.merge([[0, 10]], 5, 20) == [[0.0, 20.0]]
    assert watching.merge([[0, 10]], 10.1, 20) == [[0.0, 20.0]]
    assert watching.merge([[0, 10]], 50, 60) == [[0.0, 10.0], [50.0, 60.0]]
    assert watching.merge([[0, 10], [50, 60]], 8, 52) == [[0.0, 60.0]]
    assert watching.covered([[0, 10], [50, 60]]) == 20


def test_marks_say_which_5_percent_moments_were_watched():
    assert watching.marks_of([[0, 100]], 100) == (1 << 21) - 1
    assert watching.marks_of([[0, 10]], 100) == 0b111  # 0%, 5%, 10%
    assert watching.marks_of([[90, 100]], 100) == 0b111 << 18  # 90%, 95%, 100%


def test_a_report_credits_continuous_playback_but_not_a_seek():
    # playing on: previous position to this one
    assert watching.credit(position=20, watched=10, previous=10, wall=10, max_report=60) == (10, 20)
    # a seek from 10 to 90 with 5 s played: only those 5 s, ending at 90
    assert watching.credit(position=90, watched=5, previous=10, wall=5, max_report=60) == (85, 90)
    # a client claiming a long play without the time passing gets what the clock allows
    assert watching.credit(position=100, watched=100, previous=None, wall=3, max_report=60) == (92, 100)
    # a viewer's first report: at most max_report seconds
    assert watching.credit(position=600, watched=600, previous=None, wall=None, max_report=60) == (540, 600)
    assert watching.credit(position=5, watched=0, previous=5, wall=5, max_report=60) is None


# --- over HTTP ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ladder(tmp_path_factory, ffmpeg):
    base = tmp_path_factory.mktemp("watch")
    clip = make_clip(base / "clip.mp4", width=320, height=180, seconds=4)
    return Ladder(clip, base / "out", width=320, height=180, duration=4.0)


class Clock:
    def __init__(self):
        self.now = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self):
        return self.now

    def tick(self, seconds):
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(watching, "_now", fake)
    return fake


@pytest.fixture
def watched(app, dbsession, make_user, ladder):
    """A 100-second video (its duration as recorded) in a course a student is enrolled in."""
    teacher, student = make_user("teacher"), make_user("student")
    video = ladder.install(app, dbsession, teacher)
    video.duration, video.duration_ms = 100, 100_000
    dbsession.commit()
    course, lessons = course_with_lesson(dbsession, teacher, video)
    enrol(dbsession, student, course)
    return {"teacher": teacher, "student": student, "video": video, "course": course, "lesson": lessons[0]}


def report(testapp, auth_headers, user, video, **body):
    return testapp.post_json(f"/api/v1/videos/{video.id}/progress", body, headers=auth_headers(user)).json


def lesson_progress(testapp, auth_headers, user, lesson):
    return testapp.get(f"/api/v1/lessons/{lesson.id}", headers=auth_headers(user)).json["progress"]


def test_seeking_to_the_end_is_not_completing(testapp, auth_headers, watched, clock):
    student, video = watched["student"], watched["video"]
    first = report(testapp, auth_headers, student, video, position=5, watch_duration=5, session_id="s1")
    assert first["progress_percent"] == 5.0 and first["is_completed"] is False
    clock.tick(5)
    jumped = report(testapp, auth_headers, student, video, position=98, watch_duration=10, session_id="s1")
    assert jumped["is_completed"] is False and jumped["progress_percent"] == 10.0
    assert jumped["last_position"] == 98
    progress = lesson_progress(testapp, auth_headers, student, watched["lesson"])
    assert progress["is_completed"] is False and progress["progress_percent"] == 10.0
    assert progress["last_position"] == 98


def test_really_watching_completes(testapp, auth_headers, watched, clock, dbsession):
    student, video = watched["student"], watched["video"]
    answers = []
    for position in range(10, 101, 10):
        clock.tick(10)
        answers.append(report(testapp, auth_headers, student, video, position=position, watch_duration=position,
                              device_type="mobile", platform="ios", quality="sd", session_id="s1"))
    assert [a["is_completed"] for a in answers].index(True) == 8  # at 90 s of 100
    assert answers[-1]["progress_percent"] == 100.0
    progress = lesson_progress(testapp, auth_headers, student, watched["lesson"])
    assert progress["is_completed"] is True
    record = dbsession.scalar(sa.select(WatchSession).where(WatchSession.video_id == video.id))
    assert (record.device_type, record.platform, record.quality, record.reports) == ("mobile", "ios", "sd", 10)
    assert record.is_completed and record.watched_seconds == 100 and record.max_position == 100


def test_a_part_watched_twice_counts_once_across_sessions(testapp, auth_headers, watched, clock, dbsession):
    student, video = watched["student"], watched["video"]
    for session in ("a", "b"):
        for position in (10, 20, 30):
            clock.tick(10)
            report(testapp, auth_headers, student, video, position=position, watch_duration=position,
                   session_id=session)
        clock.tick(600)
    viewer = dbsession.scalar(sa.select(Viewer).where(Viewer.video_id == video.id))
    assert viewer.intervals == [[0.0, 30.0]] and viewer.watched_seconds == 30
    sessions = dbsession.scalars(sa.select(WatchSession).where(WatchSession.video_id == video.id)).all()
    assert sorted(s.session_key for s in sessions) == ["a", "b"]


def test_a_report_without_session_id_continues_the_latest_session(testapp, auth_headers, watched, clock,
                                                                   dbsession):
    student, video = watched["student"], watched["video"]
    first = report(testapp, auth_headers, student, video, position=10, watch_duration=10)
    clock.tick(10)
    second = report(testapp, auth_headers, student, video, position=20, watch_duration=20)
    assert first["session_id"] == second["session_id"] and second["watched_seconds"] == 20
    clock.tick(3600)
    third = report(testapp, auth_headers, student, video, position=30, watch_duration=5)
    assert third["session_id"] != first["session_id"]


def test_reports_need_the_same_access_as_playing(testapp, auth_headers, watched, make_user):
    outsider = make_user("student")
    testapp.post_json(f"/api/v1/videos/{watched['video'].id}/progress", {"position": 5, "watch_duration": 5},
                      headers=auth_headers(outsider), status=403)
    testapp.post_json(f"/api/v1/videos/{watched['video'].id}/progress", {"position": 5}, status=401)
    bad = testapp.post_json(f"/api/v1/videos/{watched['video'].id}/progress",
                            {"position": -1, "device_type": "toaster"}, headers=auth_headers(watched["student"]),
                            status=400).json
    assert set(bad["error"]["details"]) == {"position", "device_type"}


def test_a_preview_is_not_recorded(testapp, auth_headers, watched, dbsession):
    answer = report(testapp, auth_headers, watched["teacher"], watched["video"], position=50, watch_duration=50)
    assert answer["recorded"] is False
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(WatchSession)) == 0


def test_statistics_on_a_known_set_of_reports(app, testapp, auth_headers, watched, clock, make_user, dbsession):
    video, course = watched["video"], watched["course"]
    students = [watched["student"]] + [make_user("student") for _ in range(3)]
    for student in students[1:]:
        enrol(dbsession, student, course)
    # student 0 watches everything; 1 watches half; 2 watches the first 10 s and seeks to the end; 3 nothing
    plans = {0: range(10, 101, 10), 1: range(10, 51, 10)}
    for index, positions in plans.items():
        for position in positions:
            clock.tick(10)
            report(testapp, auth_headers, students[index], video, position=position, watch_duration=position,
                   session_id=f"p{index}")
    clock.tick(10)
    report(testapp, auth_headers, students[2], video, position=10, watch_duration=10, session_id="p2")
    clock.tick(3)
    report(testapp, auth_headers, students[2], video, position=100, watch_duration=13, session_id="p2")
    clock.tick(86400)  # the next day, student 1 comes back for another session
    report(testapp, auth_headers, students[1], video, position=60, watch_duration=10, session_id="p1b")

    answer = testapp.get(f"/api/v1/videos/{video.id}/statistics", {"days": 7},
                         headers=auth_headers(watched["teacher"])).json
    assert answer["period_days"] == 7 and answer["duration"] == 100
    assert answer["total_plays"] == 4 and answer["total_unique_viewers"] == 3
    assert answer["total_completions"] == 1 and answer["viewers"] == 3
    # really watched: 100%, 60%, 13% -> mean 57.7
    assert answer["avg_completion_rate"] == pytest.approx(57.7, abs=0.05)
    days = {d["date"]: d for d in answer["daily_stats"]}
    assert len(answer["daily_stats"]) == 7
    first_day, second_day = (clock.now.date() - dt.timedelta(days=1)).isoformat(), clock.now.date().isoformat()
    assert (days[first_day]["plays"], days[first_day]["unique_viewers"], days[first_day]["completions"]) == (3, 3, 1)
    assert (days[second_day]["plays"], days[second_day]["unique_viewers"]) == (1, 1)
    assert days[first_day]["watch_seconds"] == pytest.approx(100 + 50 + 13)
    curve = {point["percent"]: point["viewers"] for point in answer["drop_off"]}
    assert [point["percent"] for point in answer["drop_off"]] == list(range(0, 101, 5))
    assert curve[0] == 3 and curve[10] == 3          # everyone saw the start
    assert curve[15] == 2 and curve[60] == 2         # student 2 skipped the middle; 1 watched to 60%
    assert curve[65] == 1 and curve[85] == 1         # only student 0
    assert curve[95] == 1 and curve[100] == 2        # student 2 watched only 97-100 s at the end
    assert answer["drop_off"][0]["share"] == 100.0

    # owner and course managers only
    testapp.get(f"/api/v1/videos/{video.id}/statistics", headers=auth_headers(students[0]), status=403)
    other = make_user("teacher")
    testapp.get(f"/api/v1/videos/{video.id}/statistics", headers=auth_headers(other), status=404)
    admin = make_user("admin")
    assert testapp.get(f"/api/v1/videos/{video.id}/statistics", {"days": 7},
                       headers=auth_headers(admin)).json["total_plays"] == 4
    testapp.get(f"/api/v1/videos/{video.id}/statistics", {"days": 0}, headers=auth_headers(admin), status=400)


def test_a_trial_counts_up_to_its_limit(app, testapp, auth_headers, dbsession, make_user, ladder, clock,
                                        monkeypatch):
    from learnsail_video import settings as S

    monkeypatch.setitem(app.registry.settings, S.TRIAL_SECONDS, 30)
    teacher, visitor = make_user("teacher"), make_user("student")
    video = ladder.install(app, dbsession, teacher)
    video.duration, video.duration_ms = 100, 100_000
    dbsession.commit()
    course_with_lesson(dbsession, teacher, video, lesson_trial=True)
    for position in (10, 20, 30, 40, 50):
        clock.tick(10)
        answer = report(testapp, auth_headers, visitor, video, position=position, watch_duration=position)
    assert answer["last_position"] == 30 and answer["progress_percent"] == 30.0


def test_the_write_path_stays_small(app, testapp, auth_headers, watched, clock):
    from learnsail.testing import count_queries

    report(testapp, auth_headers, watched["student"], watched["video"], position=10, watch_duration=10,
           session_id="q")
    clock.tick(10)
    app.registry["learnsail.auth_cache"].clear()
    app.registry.get("learnsail.permission_cache", {}).clear()
    with count_queries(app.registry["learnsail.db_engine"]) as statements:
        report(testapp, auth_headers, watched["student"], watched["video"], position=20, watch_duration=20,
               session_id="q")
    ours = [s for s in statements if "video_watch_sessions" in s or "video_viewers" in s]
    assert len(ours) == 4  # read and write the session, read and write the viewer
    assert len(statements) <= 25


def test_an_erased_viewer_leaves_no_watch_records_and_export_shows_them_before(app, testapp, auth_headers,
                                                                                watched, clock, dbsession):
    student, video = watched["student"], watched["video"]
    report(testapp, auth_headers, student, video, position=10, watch_duration=10, session_id="e")
    hook = app.registry["learnsail.pm"].hook
    (exported,) = [r for r in hook.learnsail_user_export(user_id=student.id, session=dbsession)
                   if r and "video" in r]
    assert [(w["video_id"], w["watched_seconds"]) for w in exported["video"]["watched"]] == [(video.id, 10.0)]
    hook.learnsail_user_erased(user_id=student.id, session=dbsession)
    dbsession.flush()
    for model in (Viewer, WatchSession):
        assert dbsession.scalar(sa.select(sa.func.count()).select_from(model).where(model.user_id == student.id)) == 0
