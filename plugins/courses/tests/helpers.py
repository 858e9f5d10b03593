"""Builders the tests share: courses through the API, as a user would."""

from __future__ import annotations

import itertools

_n = itertools.count(1)


def make_category(client, name=None, **body):
    return client.post_json("/api/v1/categories", {"name": name or f"Category {next(_n)}", **body},
                            status=201).json


def make_course(client, title=None, **body):
    return client.post_json("/api/v1/courses", {"title": title or f"Course {next(_n)}", **body}, status=201).json


def add_chapter(client, course_id, title=None, **body):
    return client.post_json(f"/api/v1/courses/{course_id}/chapters",
                            {"title": title or f"Chapter {next(_n)}", **body}, status=201).json


def add_lesson(client, chapter_id, title=None, **body):
    return client.post_json(f"/api/v1/chapters/{chapter_id}/lessons",
                            {"title": title or f"Lesson {next(_n)}", **body}, status=201).json


def published_course(teacher, admin, title=None, lessons=2, **body):
    """A course with one chapter of ``lessons`` lessons, submitted and
    published.  Returns (course, chapter, [lessons])."""
    course = make_course(teacher, title, **body)
    chapter = add_chapter(teacher, course["id"])
    made = [add_lesson(teacher, chapter["id"], duration=600) for _ in range(lessons)]
    teacher.put_json(f"/api/v1/courses/{course['id']}", {"status": "reviewing"}, status=200)
    admin.put_json(f"/api/v1/courses/{course['id']}/review", {"status": "published"}, status=200)
    return course, chapter, made


#: what the core's sign-in reads when its short caches (learnsail.auth_cache_seconds,
#: the role-permission cache) have expired: a slow machine may outlast them
#: between two requests, so counts of the plugin's own queries leave them out
_SIGN_IN_MARKERS = ("revoked_tokens", "user_roles", "users.tokens_valid_after", "role_permissions")


def own_statements(statements):
    """``statements`` without the sign-in's cache refills."""
    return [s for s in statements if not any(marker in s for marker in _SIGN_IN_MARKERS)]
