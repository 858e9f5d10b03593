"""Progress heartbeats under load, measured (not asserted).

``--viewers`` simulated students (default 1,000) each report their
position in a lesson every ``--every`` seconds (default 10), for
``--seconds`` (default 60), against the production layout on private
servers: ``learnsail serve`` (waitress, 8 threads), a ``learnsail worker``
and ``learnsail beat`` on a Redis broker, the cache on Redis, MariaDB.  The
run is done twice in one go:

- buffered: ``learnsail.courses.progress_buffer_seconds = 10`` (positions
  kept in Redis, written by the periodic ``courses.flush_progress`` in the
  worker);
- unbuffered (the baseline): every report written at once.

The load is open-loop: each report has a due time (viewers spread evenly
over the interval) and its latency is counted from that due time, so a
server that falls behind shows it (no coordinated omission).  Printed:
requests, achieved rate, p50/p99/max latency, errors, and for the buffered
run how far the database lags the last answered positions once the run is
over (at most one flush interval is lost when the cache dies).

Goal: p99 <= 100 ms with zero errors, buffered.

    .venv/bin/python plugins/courses/bench/heartbeats.py [--viewers 1000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LESSONS = 10


def seed(url: str, data_dir: str, viewers: int) -> dict:
    """The schema, one published course of LESSONS lessons, ``viewers``
    enrolled students who have each started one lesson; returns their ids
    and tokens."""
    import sqlalchemy as sa

    from learnsail import migrations
    from learnsail.app import configure
    from learnsail.db import utcnow
    from learnsail.identity.models import Role, User
    from learnsail.identity.services import ensure_default_roles
    from learnsail.testing.identity import bearer
    from learnsail_courses.models import Chapter, Course, Enrolment, Lesson, Progress

    settings = {"learnsail.data_dir": data_dir, "learnsail.plugins": "courses", "learnsail.database_url": url,
                "learnsail.secret": SECRET, "learnsail.log_level": "WARNING"}
    config = configure(settings, environ={})
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    engine = config.registry["learnsail.db_engine"]
    now = utcnow()
    from sqlalchemy.orm import Session

    with Session(engine) as session, session.begin():
        ensure_default_roles(session)
        roles = dict(session.execute(sa.select(Role.name, Role.id)).all())
    with engine.begin() as conn:
        conn.execute(sa.insert(User.__table__), [
            {"username": "bench_teacher", "password": "x", "role_id": roles["teacher"], "is_active": True,
             "created_at": now, "updated_at": now}])
        teacher = conn.scalar(sa.select(User.id).where(User.username == "bench_teacher"))
        conn.execute(sa.insert(User.__table__), [
            {"username": f"viewer{i}", "password": "x", "role_id": roles["student"], "is_active": True,
             "created_at": now, "updated_at": now} for i in range(viewers)])
        students = list(conn.scalars(sa.select(User.id).where(User.username.like("viewer%")).order_by(User.id)))
        conn.execute(sa.insert(Course.__table__), [{
            "title": "Heartbeat course", "teacher_id": teacher, "difficulty": "beginner", "course_type": "video",
            "price": 0, "is_free": True, "duration": LESSONS * 10, "status": "published",
            "student_count": viewers, "rating": 0, "rating_count": 0, "language": "中文",
            "is_member_only": False, "published_at": now, "created_at": now, "updated_at": now}])
        course = conn.scalar(sa.select(Course.id))
        conn.execute(sa.insert(Chapter.__table__), [{"course_id": course, "title": "第一章", "sort_order": 1,
                                                     "is_free": False, "created_at": now, "updated_at": now}])
        chapter = conn.scalar(sa.select(Chapter.id))
        conn.execute(sa.insert(Lesson.__table__), [{
            "chapter_id": chapter, "course_id": course, "title": f"第{n + 1}课", "duration": 3600,
            "sort_order": n + 1, "is_free": False, "is_trial": False, "type": "video", "created_at": now,
            "updated_at": now} for n in range(LESSONS)])
        lessons = list(conn.scalars(sa.select(Lesson.id).order_by(Lesson.id)))
        conn.execute(sa.insert(Enrolment.__table__), [{
            "user_id": s, "course_id": course, "kind": "free", "status": "active", "progress_percent": 0,
            "completed_lessons": 0, "created_at": now, "updated_at": now} for s in students])
        conn.execute(sa.insert(Progress.__table__), [{
            "user_id": s, "course_id": course, "lesson_id": lessons[i % LESSONS], "progress_percent": 1,
            "last_position": 30, "is_completed": False, "learned_seconds": 0, "created_at": now,
            "updated_at": now} for i, s in enumerate(students)])
    with Session(engine) as session:
        viewers_out = [{"user": s, "lesson": lessons[i % LESSONS],
                        "headers": bearer(config.registry.settings, session.get(User, s))}
                       for i, s in enumerate(students)]
    engine.dispose()
    return {"viewers": viewers_out, "lessons": lessons}


SECRET = "bench-secret-bench-secret-bench-secret"


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    learnsail = Path(sys.executable).with_name("learnsail")
    return subprocess.Popen([str(learnsail), *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def serve(url: str, redis: str, data_dir: str, port: int, buffer_seconds: int, logs: Path) -> list[subprocess.Popen]:
    """The production layout: ``learnsail serve`` (waitress, 8 threads), a
    ``learnsail worker`` for the courses queue and ``learnsail beat``
    sending ``courses.flush_progress`` every interval, on a Redis broker;
    the cache on Redis."""
    env = dict(os.environ, LEARNSAIL_DATABASE_URL=url, LEARNSAIL_CACHE_URL=f"{redis}/1",
               LEARNSAIL_BROKER_URL=f"{redis}/2", LEARNSAIL_DATA_DIR=data_dir, LEARNSAIL_PLUGINS="courses",
               LEARNSAIL_SECRET=SECRET, LEARNSAIL_LOG_LEVEL="WARNING",
               LEARNSAIL_COURSES_PROGRESS_BUFFER_SECONDS=str(buffer_seconds))
    procs = [start(["serve", "--port", str(port), "--threads", "8", "--no-realtime", "--no-scheduler"], env,
                   logs / "serve.log"),
             start(["worker", "-Q", "courses", "--pool", "solo", "--loglevel", "WARNING"], env, logs / "worker.log"),
             start(["beat", "--loglevel", "WARNING"], env, logs / "beat.log")]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return procs
        except OSError:
            time.sleep(0.2)
    for proc in procs:
        proc.kill()
    raise SystemExit(f"learnsail serve did not start; see {logs}")


def load(port: int, viewers: list[dict], every: float, seconds: float, clients: int) -> dict:
    """Open-loop load: viewer i reports at t0 + i*every/len + k*every."""
    jobs: queue.Queue = queue.Queue()
    results: list[tuple[float, int]] = []
    last: dict[int, int] = {}
    lock = threading.Lock()
    t0 = time.monotonic() + 1.0
    rounds = int(seconds // every)
    for k in range(rounds):
        for i in range(len(viewers)):
            jobs.put((t0 + k * every + i * every / len(viewers), i, k))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            try:
                due, i, k = jobs.get_nowait()
            except queue.Empty:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            viewer = viewers[i]
            position = 30 + 10 * (k + 1)
            body = json.dumps({"progress_percent": min(89, 1 + k), "last_position": position})
            try:
                conn.request("POST", f"/api/v1/lessons/{viewer['lesson']}/progress", body=body,
                             headers={**viewer["headers"], "Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                status = 0
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with lock:
                results.append((time.monotonic() - due, status))
                if status == 200:
                    last[viewer["user"]] = max(last.get(viewer["user"], 0), position)

    # the queue is in due order, so each worker takes the next due report
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - max(started, t0)
    latencies = sorted(r[0] for r in results)
    errors = sum(1 for r in results if r[1] != 200)
    return {"n": len(results), "rate": len(results) / elapsed, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "max": latencies[-1] * 1000,
            "errors": errors, "last": last}


def lag(url: str, last: dict[int, int]) -> tuple[int, int]:
    """(viewers whose stored position is behind their last answered one,
    the largest gap in seconds of video)."""
    import sqlalchemy as sa

    from learnsail_courses.models import Progress

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.select(Progress.user_id, sa.func.max(Progress.last_position))
                                   .group_by(Progress.user_id)).all())
    engine.dispose()
    gaps = [position - stored.get(user, 0) for user, position in last.items() if position > stored.get(user, 0)]
    return len(gaps), max(gaps, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32, help="client threads sending the reports")
    args = parser.parse_args()

    from learnsail.testing.services import free_port, start_mariadb, start_redis

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        mariadb = start_mariadb(base / "mariadb", options=["--innodb-buffer-pool-size=1G"])
        redis = start_redis(base / "redis")
        try:
            print(f"{'run':12} {'reports':>8} {'rate/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6}")
            for name, buffer_seconds in (("buffered", 10), ("unbuffered", 0)):
                url = mariadb.create_database(f"heartbeats_{name}")
                data_dir = str(base / f"data_{name}")
                viewers = seed(url, data_dir, args.viewers)["viewers"]
                port = free_port()
                logs = base / f"logs_{name}"
                logs.mkdir()
                import redis as redis_client

                redis_client.Redis(host=redis.host, port=redis.port).flushall()  # each run starts empty
                procs = serve(url, f"redis://{redis.host}:{redis.port}", data_dir, port, buffer_seconds, logs)
                try:
                    result = load(port, viewers, args.every, args.seconds, args.clients)
                    print(f"{name:12} {result['n']:8} {result['rate']:7.1f} {result['p50']:7.2f} "
                          f"{result['p99']:7.2f} {result['max']:7.1f} {result['errors']:6}", flush=True)
                    if buffer_seconds:
                        behind, gap = lag(url, result["last"])
                        print(f"{'':12} right after the run: {behind} of {len(result['last'])} viewers' stored "
                              f"positions behind the answered ones, by at most {gap} s of video")
                        time.sleep(2 * buffer_seconds + 2)  # two flushes
                        behind, gap = lag(url, result["last"])
                        print(f"{'':12} {2 * buffer_seconds + 2} s later: {behind} behind (at most {gap} s)")
                finally:
                    for proc in procs:
                        proc.terminate()
                    for proc in procs:
                        proc.wait(15)
            print(f"goal: buffered p99 <= 100 ms with zero errors ({dt.date.today()})")
        finally:
            redis.stop()
            mariadb.stop()


if __name__ == "__main__":
    main()
