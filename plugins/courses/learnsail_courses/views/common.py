"""Small helpers the view modules share."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from learnsail.errors import AuthFailed


class _RoleOnly:
    """A context without an ACL: a permission check asks the caller's role only."""


def may(request: Any, permission: str) -> bool:
    """Does the caller's active role hold ``permission``?"""
    return request.authenticated_userid is not None and bool(request.has_permission(permission, _RoleOnly()))


def user_id(request: Any) -> int | None:
    """The caller's id, from the verified token (no query, unlike
    ``request.identity``, which loads the user)."""
    return request.authenticated_userid


def signed_in(request: Any) -> int:
    if request.authenticated_userid is None:
        raise AuthFailed()
    return request.authenticated_userid


def number(value: Decimal | None) -> float:
    return float(value or 0)


def hook(request: Any) -> Any:
    return request.registry["learnsail.pm"].hook


def detail_key(course_id: int) -> str:
    return f"courses:detail:{course_id}"


def forget_course(request: Any, course_id: int | None = None, *, catalogue: bool = False) -> None:
    """Drop the cached detail of ``course_id`` (every course's when None)
    once the request's transaction commits; with ``catalogue`` (a change
    that may move courses in or out of catalogue results: status, filters,
    search text) or for every course, the cached catalogue counts and page
    anchors and the hot ranking too (a course no longer published must
    leave it at once, not after hot_cache_ttl)."""
    cache = request.registry["learnsail.cache"]
    if course_id is None:
        cache.invalidate(request, prefix="courses:detail:")
    else:
        cache.invalidate(request, detail_key(course_id))
    if catalogue or course_id is None:
        cache.invalidate(request, prefix=COUNT_PREFIX)
        cache.invalidate(request, prefix=HOT_PREFIX)


#: cached counts and page anchors of catalogue queries (see search.count_key)
COUNT_PREFIX = "courses:count:"
#: cached hot rankings, one per limit (views/courses.py)
HOT_PREFIX = "courses:hot:"
