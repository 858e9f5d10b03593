"""Courses catalogue, detail and progress heartbeats, measured (not asserted).

Starts a private MariaDB (learnsail.testing.services.start_mariadb), seeds
it with bulk inserts -- at ``--scale 1``: 100,000 courses, 1,000,000
enrolments and 5,000,000 progress rows -- and prints, in one run, req/s
and p50/p99 for:

- the catalogue ``GET /api/v1/courses``: plain, filtered (category with
  sub-categories + difficulty), searched, and a deep page;
- a course's detail ``GET /api/v1/courses/{id}`` (cached) as a signed-in
  student;
- beside each, a bare Pyramid view running the same single page query (the
  floor), as a ratio.  Goals: list >= 0.6x of the floor, cached detail >=
  0.9x, p99 of a deep page <= 2x the first page;
- progress heartbeats ``POST /api/v1/lessons/{id}/progress`` with
  buffering on (learnsail.courses.progress_buffer_seconds = 10), from
  ``--viewers`` students on distinct lessons: p50/p99 (goal p99 <= 100 ms,
  zero errors).

Requests run in-process through the WSGI app (no HTTP server), one at a
time, so the figures are per-request costs on this machine.

    .venv/bin/python plugins/courses/bench/catalogue.py [--scale 0.01] [--requests 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

TEACHERS, STUDENTS, LESSONS_PER_COURSE = 1000, 10_000, 5


_clients: dict[int, object] = {}


def call(app, method, path, body=None, headers=None):
    """(status line, body) of one request through ``app`` (WebTest, without its lint checks)."""
    import webtest

    client = _clients.get(id(app))
    if client is None:
        client = _clients[id(app)] = webtest.TestApp(app, lint=False)
    response = client.request(path, method=method, headers=headers or {}, expect_errors=True,
                              body=json.dumps(body).encode() if body is not None else b"",
                              content_type="application/json" if body is not None else None)
    return response.status, response.body


def timed(app, method, paths, n, headers=None, body=None):
    """Latencies (s) of ``n`` requests cycling through ``paths``; errors counted."""
    latencies, errors = [], 0
    for i in range(n):
        start = time.perf_counter()
        status, data = call(app, method, paths[i % len(paths)], body=body, headers=headers)
        latencies.append(time.perf_counter() - start)
        if not status.startswith("2"):
            errors += 1
            if errors == 1:
                print(f"  error on {paths[i % len(paths)]}: {status} {data[:200]!r}")
    return latencies, errors


def summary(latencies):
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(ordered) / sum(ordered), statistics.median(ordered) * 1000, p99 * 1000


def seed(engine, scale: float) -> dict:
    """Bulk-insert the data set; returns ids the measurements use."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from learnsail.db import utcnow
    from learnsail.identity.models import Role, User
    from learnsail.identity.services import ensure_default_roles
    from learnsail_courses.models import Category, Chapter, Course, Enrolment, Lesson, Progress, Tag, course_tags

    courses = max(100, int(100_000 * scale))
    enrolments = max(1000, int(1_000_000 * scale))
    teachers, students = max(10, int(TEACHERS * scale)), max(100, int(STUDENTS * scale))
    now = utcnow()
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        ensure_default_roles(session)
        roles = dict(session.execute(sa.select(Role.name, Role.id)).all())
    words = ["Python", "Web", "数据", "机器学习", "设计", "管理", "英语", "数学", "物理", "音乐"]

    def batches(rows, size=5000):
        for i in range(0, len(rows), size):
            yield rows[i:i + size]

    with engine.begin() as conn:
        users = [{"username": f"t{i}", "password": "x", "role_id": roles["teacher"], "is_active": True,
                  "created_at": now, "updated_at": now} for i in range(teachers)]
        users += [{"username": f"s{i}", "password": "x", "role_id": roles["student"], "is_active": True,
                   "created_at": now, "updated_at": now} for i in range(students)]
        for chunk in batches(users):
            conn.execute(sa.insert(User.__table__), chunk)
        teacher_ids = list(conn.scalars(sa.select(User.id).where(User.username.like("t%")).order_by(User.id)))
        student_ids = list(conn.scalars(sa.select(User.id).where(User.username.like("s%")).order_by(User.id)))
        cats, roots = [], []
        for root in range(10):
            conn.execute(sa.insert(Category.__table__), [{"name": f"root{root}", "level": 1, "path": "/",
                                                          "sort_order": root, "is_active": True,
                                                          "created_at": now, "updated_at": now}])
            root_id = conn.scalar(sa.select(Category.id).where(Category.name == f"root{root}"))
            conn.execute(sa.update(Category).where(Category.id == root_id).values(path=f"/{root_id}/"))
            roots.append(root_id)
            for child in range(4):
                conn.execute(sa.insert(Category.__table__), [{
                    "name": f"c{root}-{child}", "parent_id": root_id, "level": 2, "path": "/", "sort_order": child,
                    "is_active": True, "created_at": now, "updated_at": now}])
                child_id = conn.scalar(sa.select(Category.id).where(Category.name == f"c{root}-{child}"))
                conn.execute(sa.update(Category).where(Category.id == child_id)
                             .values(path=f"/{root_id}/{child_id}/"))
                cats.append(child_id)
        conn.execute(sa.insert(Tag.__table__), [{"name": w, "type": "general", "created_at": now, "updated_at": now}
                                                for w in words])
        tag_ids = list(conn.scalars(sa.select(Tag.id).order_by(Tag.id)))
        rng = random.Random(7)
        rows = []
        for i in range(courses):
            word = words[i % len(words)]
            rows.append({"title": f"{word} 课程 {i}", "description": f"关于{word}的第{i}门课程，从入门到实战。",
                         "teacher_id": teacher_ids[i % len(teacher_ids)], "category_id": cats[i % len(cats)],
                         "difficulty": ("beginner", "intermediate", "advanced")[i % 3], "course_type": "video",
                         "price": 0, "is_free": True, "duration": 50, "status": "published",
                         "student_count": rng.randint(0, 500), "rating": 0, "rating_count": 0, "language": "中文",
                         "is_member_only": False, "published_at": now - dt.timedelta(seconds=i),
                         "tag_names": [word],
                         "created_at": now, "updated_at": now})
        for chunk in batches(rows):
            conn.execute(sa.insert(Course.__table__), chunk)
        first_course = conn.scalar(sa.select(sa.func.min(Course.id)))
        course_ids = range(first_course, first_course + courses)
        for chunk in batches([{"course_id": c, "tag_id": tag_ids[(c - first_course) % len(tag_ids)]}
                              for c in course_ids]):
            conn.execute(sa.insert(course_tags), chunk)
        for chunk in batches([{"course_id": c, "title": "第一章", "sort_order": 1, "is_free": False,
                               "created_at": now, "updated_at": now} for c in course_ids]):
            conn.execute(sa.insert(Chapter.__table__), chunk)
        first_chapter = conn.scalar(sa.select(sa.func.min(Chapter.id)))
        lessons = [{"chapter_id": first_chapter + (c - first_course), "course_id": c, "title": f"第{n + 1}课",
                    "duration": 600, "sort_order": n + 1, "is_free": False, "is_trial": False, "type": "video",
                    "created_at": now, "updated_at": now}
                   for c in course_ids for n in range(LESSONS_PER_COURSE)]
        for chunk in batches(lessons):
            conn.execute(sa.insert(Lesson.__table__), chunk)
        first_lesson = conn.scalar(sa.select(sa.func.min(Lesson.id)))
        # enrolments: each student in enrolments / students consecutive courses
        per_student = max(1, enrolments // len(student_ids))
        enrol_rows, progress_rows = [], []
        for s_index, student in enumerate(student_ids):
            for k in range(per_student):
                c = first_course + (s_index * per_student + k) % courses
                enrol_rows.append({"user_id": student, "course_id": c, "kind": "free", "status": "active",
                                   "progress_percent": 20, "completed_lessons": 1, "created_at": now,
                                   "updated_at": now, "last_accessed_at": now})
                for n in range(LESSONS_PER_COURSE):
                    progress_rows.append({"user_id": student, "course_id": c,
                                          "lesson_id": first_lesson + (c - first_course) * LESSONS_PER_COURSE + n,
                                          "progress_percent": 100 if n == 0 else 10, "last_position": 60,
                                          "is_completed": n == 0, "learned_seconds": 60,
                                          "created_at": now, "updated_at": now})
            if len(progress_rows) >= 50_000:
                for chunk in batches(enrol_rows):
                    conn.execute(sa.insert(Enrolment.__table__), chunk)
                for chunk in batches(progress_rows):
                    conn.execute(sa.insert(Progress.__table__), chunk)
                enrol_rows, progress_rows = [], []
        for chunk in batches(enrol_rows):
            conn.execute(sa.insert(Enrolment.__table__), chunk)
        for chunk in batches(progress_rows):
            conn.execute(sa.insert(Progress.__table__), chunk)
        counts = {name: conn.scalar(sa.select(sa.func.count()).select_from(table)) for name, table in
                  (("courses", Course.__table__), ("enrolments", Enrolment.__table__),
                   ("progress rows", Progress.__table__))}
    print("seeded " + ", ".join(f"{n:,} {name}" for name, n in counts.items())
          + f" in {time.perf_counter() - started:.0f} s")
    return {"course": first_course, "category_root": roots[0], "students": student_ids,
            "first_lesson": first_lesson, "courses": courses, "per_student": per_student,
            "first_course": first_course}


def floor_app(engine):
    """A bare Pyramid app: one view, the catalogue's page query, JSON out."""
    import sqlalchemy as sa
    from pyramid.config import Configurator

    from learnsail.identity.models import User
    from learnsail_courses.models import Course

    def page_query(session, params):
        # the same filters as the app's catalogue, as the best single
        # statement: the page's ids on the indexes, then their rows
        from learnsail_courses import search

        query = {"category_id": int(params["category_id"]) if "category_id" in params else None,
                 "difficulty": params.get("difficulty"), "search": params.get("search")}
        n = int(params.get("page", 1))
        ids = (search.catalogue(session, query, caller_id=None, may_view_any=False)
               .with_only_columns(Course.id, maintain_column_froms=True)
               .limit(20).offset((n - 1) * 20).subquery())
        return (sa.select(Course.id, Course.title, Course.cover_image_url, User.username, Course.price,
                          Course.rating, Course.student_count, Course.difficulty)
                .join(ids, ids.c.id == Course.id).join(User, User.id == Course.teacher_id)
                .order_by(Course.published_at.desc(), Course.id.desc()))

    def catalogue(request):
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            rows = session.execute(page_query(session, request.GET)).all()
        return [{"id": r[0], "title": r[1], "cover_image_url": r[2], "teacher_name": r[3], "price": float(r[4]),
                 "rating": float(r[5]), "student_count": r[6], "difficulty": r[7]} for r in rows]

    def detail(request):
        with engine.connect() as conn:
            row = conn.execute(sa.select(Course.id, Course.title, Course.description, User.username)
                               .join(User, User.id == Course.teacher_id)
                               .where(Course.id == int(request.matchdict["id"]))).first()
        return {"id": row[0], "title": row[1], "description": row[2], "teacher": row[3]}

    with Configurator() as config:
        config.add_route("catalogue", "/floor/courses")
        config.add_view(catalogue, route_name="catalogue", renderer="json")
        config.add_route("detail", "/floor/courses/{id}")
        config.add_view(detail, route_name="detail", renderer="json")
        return config.make_wsgi_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 100k courses, 1M enrolments, 5M progress")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print a profile of the plain catalogue")
    args = parser.parse_args()
    logging.getLogger("learnsail").setLevel(logging.WARNING)

    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app
    from learnsail.testing.identity import bearer
    from learnsail.testing.services import start_mariadb

    with tempfile.TemporaryDirectory() as tmp:
        # production-sized, not the test kit's 64 MiB: the data set must fit in memory as it would
        server = start_mariadb(Path(tmp) / "mariadb", options=["--innodb-buffer-pool-size=2G"])
        try:
            url = server.create_database("courses_bench")
            settings = {"learnsail.data_dir": str(Path(tmp) / "data"), "learnsail.plugins": "courses",
                        "learnsail.database_url": url, "learnsail.log_level": "WARNING",
                        "learnsail.secret": "bench-secret-bench-secret-bench-secret",
                        "learnsail.courses.progress_buffer_seconds": "10"}
            config = configure(settings, environ={})
            migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
            app = make_wsgi_app(config)
            engine = app.registry["learnsail.db_engine"]
            ids = seed(engine, args.scale)
            floor = floor_app(engine)
            from sqlalchemy.orm import Session

            from learnsail.identity.models import User

            with Session(engine) as session:
                student = session.get(User, ids["students"][0])
                headers = bearer(app.registry.settings, student)
            n = args.requests
            deep_page = max(2, ids["courses"] // 20 // 2)
            # pages asked once each, never twice: no anchor helps them
            pages = ids["courses"] // 20
            cold_pages = random.Random(3).sample(range(2, pages), min(n, pages - 2))
            cases = [
                ("catalogue, first page", ["/api/v1/courses"], ["/floor/courses"]),
                ("catalogue, filtered", [f"/api/v1/courses?category_id={ids['category_root']}&difficulty=beginner"],
                 [f"/floor/courses?category_id={ids['category_root']}&difficulty=beginner"]),
                ("catalogue, searched", ["/api/v1/courses?search=" + quote("机器学习")],
                 ["/floor/courses?search=" + quote("机器学习")]),
                (f"catalogue, page {deep_page}", [f"/api/v1/courses?page={deep_page}"],
                 [f"/floor/courses?page={deep_page}"]),
                (f"catalogue, pages {deep_page}+ in order",
                 [f"/api/v1/courses?page={deep_page + i}" for i in range(n)],
                 [f"/floor/courses?page={deep_page + i}" for i in range(n)]),
                ("catalogue, random deep pages", [f"/api/v1/courses?page={p}" for p in cold_pages],
                 [f"/floor/courses?page={p}" for p in cold_pages]),
            ]
            print(f"{'case':32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'floor req/s':>12} {'ratio':>6}")
            p99s = {}
            for name, paths, floor_paths in cases:
                warm = 20 if len(paths) == 1 else 0  # a list of pages is measured cold, each page once
                timed(app, "GET", paths, warm)
                timed(floor, "GET", floor_paths, warm)
                lat, errors = timed(app, "GET", paths, n)
                flat, _ = timed(floor, "GET", floor_paths, n)
                rps, p50, p99 = summary(lat)
                frps = summary(flat)[0]
                p99s[name] = p99
                print(f"{name:32} {rps:8.0f} {p50:8.2f} {p99:8.2f} {frps:12.0f} {rps / frps:6.2f}"
                      + (f"  ({errors} errors)" if errors else ""))
            detail_paths = [f"/api/v1/courses/{ids['first_course'] + i}" for i in range(50)]
            timed(app, "GET", detail_paths, 100)
            lat, errors = timed(app, "GET", detail_paths, n)
            flat, _ = timed(floor, "GET", [f"/floor/courses/{ids['first_course'] + i}" for i in range(50)], n)
            rps, p50, p99 = summary(lat)
            frps = summary(flat)[0]
            print(f"{'detail (cached), anonymous':32} {rps:8.0f} {p50:8.2f} {p99:8.2f} {frps:12.0f} {rps / frps:6.2f}")
            floor_detail = [f"/floor/courses/{ids['first_course'] + i}" for i in range(50)]
            timed(app, "GET", detail_paths, 100, headers=headers)
            lat, errors = timed(app, "GET", detail_paths, n, headers=headers)
            flat, _ = timed(floor, "GET", floor_detail, n)
            rps, p50, p99 = summary(lat)
            frps = summary(flat)[0]
            print(f"{'detail (cached), signed in':32} {rps:8.0f} {p50:8.2f} {p99:8.2f} {frps:12.0f} {rps / frps:6.2f}")
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
                timed(app, "GET", ["/api/v1/courses"], n)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            first = p99s["catalogue, first page"]
            for name in (f"catalogue, page {deep_page}", f"catalogue, pages {deep_page}+ in order",
                         "catalogue, random deep pages"):
                print(f"{name} p99 / first page p99: {p99s[name] / first:.2f} (goal <= 2)")

            # heartbeats: viewers on their first enrolled course's second lesson
            viewers = ids["students"][:args.viewers]
            with Session(engine) as session:
                tokens = [bearer(app.registry.settings, session.get(User, v)) for v in viewers]
            lessons = [ids["first_lesson"] + ((i * ids["per_student"]) % ids["courses"]) * LESSONS_PER_COURSE + 1
                       for i in range(len(viewers))]
            latencies, errors = [], 0
            for beat in range(3):  # three rounds of every viewer reporting once
                for i, token in enumerate(tokens):
                    start = time.perf_counter()
                    status, data = call(app, "POST", f"/api/v1/lessons/{lessons[i]}/progress",
                                        {"progress_percent": 10 + beat, "last_position": 60 + 10 * beat},
                                        headers=token)
                    latencies.append(time.perf_counter() - start)
                    if not status.startswith("200"):
                        errors += 1
                        if errors == 1:
                            print(f"  heartbeat error: {status} {data[:200]!r}")
            _, p50, p99 = summary(latencies)
            print(f"heartbeats ({len(latencies)} from {len(tokens)} viewers, buffered): p50 {p50:.2f} ms, "
                  f"p99 {p99:.2f} ms (goal <= 100), {errors} errors")
            engine.dispose()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
