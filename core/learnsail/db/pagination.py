"""Pagination, the one way every list endpoint pages.

Page-number pagination answers ``{count, next, previous, results}`` (000
§六) with ``page`` / ``page_size`` (capped at 100, never an error).  Keyset
pagination serves very large tables with an opaque ``cursor``.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.errors import ValidationFailed

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
#: the last page number asked for: its OFFSET must fit the database's integers
MAX_PAGE = 2**31 - 1


def _positive_int(request: Any, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed({name: [f"Must be a whole number, got {raw[:50]!r}."]}) from None
    if value < 1:
        raise ValidationFailed({name: ["Must be at least 1."]})
    if maximum is not None and value > maximum:
        raise ValidationFailed({name: [f"Must be at most {maximum}."]})
    return value


def page_params(request: Any, default_size: int = DEFAULT_PAGE_SIZE) -> tuple[int, int]:
    """``(page, page_size)`` from the query string; page_size capped at 100,
    page at most :data:`MAX_PAGE` (a larger one is a 400, never an OFFSET
    the database cannot bind)."""
    page = _positive_int(request, "page", 1, MAX_PAGE)
    size = min(_positive_int(request, "page_size", default_size), MAX_PAGE_SIZE)
    return page, size


def _page_url(request: Any, page: int, size: int) -> str:
    params = [(k, v) for k, v in request.GET.items() if k not in ("page", "page_size")]
    params += [("page", str(page)), ("page_size", str(size))]
    return request.current_route_url(_query=params)


def count_of(session: Session, stmt: sa.Select) -> int:
    """How many rows ``stmt`` selects (one ``COUNT(*)`` over it)."""
    return session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))


def paginate(request: Any, session: Session, stmt: sa.Select,
             serialize: Callable[[Any], dict], *, scalars: bool = True,
             default_size: int = DEFAULT_PAGE_SIZE,
             count: Callable[[sa.Select], int] | None = None,
             fetch: Callable[[sa.Select], Sequence[Any]] | None = None) -> dict:
    """Run ``stmt`` for the requested page: two queries whatever the size
    (one count, one page).  ``serialize`` turns each row into a dict.

    ``count(stmt)`` replaces the count query (e.g. a count kept in the
    cache for a hot list: it is then zero queries); ``fetch(page_stmt)``
    replaces the page query (e.g. to read the page's ids on an index, then
    join their rows in the same statement), and returns the rows."""
    page, size = page_params(request, default_size)
    total = count(stmt) if count is not None else count_of(session, stmt)
    page_stmt = stmt.limit(size).offset((page - 1) * size)
    if fetch is not None:
        rows: Sequence[Any] = fetch(page_stmt)
    else:
        rows = session.scalars(page_stmt).all() if scalars else session.execute(page_stmt).all()
    return {
        "count": total,
        "next": _page_url(request, page + 1, size) if page * size < total else None,
        "previous": _page_url(request, page - 1, size) if page > 1 and total else None,
        "results": [serialize(row) for row in rows],
    }


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values), default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise ValidationFailed({"cursor": ["Not a cursor this API issued."]}) from None
    if not isinstance(values, list):
        raise ValidationFailed({"cursor": ["Not a cursor this API issued."]})
    return values


def keyset_paginate(request: Any, session: Session, stmt: sa.Select, key: sa.ColumnElement,
                    serialize: Callable[[Any], dict], *, descending: bool = False,
                    default_size: int = DEFAULT_PAGE_SIZE) -> dict:
    """Keyset (seek) pagination on a unique, indexed ``key`` column.

    Answers ``{next, results}``; ``next`` carries ``?cursor=`` for the
    following page.  Cost does not grow with the depth of the page, unlike
    OFFSET.
    """
    size = min(_positive_int(request, "page_size", default_size), MAX_PAGE_SIZE)
    cursor = request.GET.get("cursor")
    if cursor:
        (after,) = decode_cursor(cursor)[:1] or [None]
        if after is None:
            raise ValidationFailed({"cursor": ["Not a cursor this API issued."]})
        stmt = stmt.where(key < after if descending else key > after)
    stmt = stmt.order_by(key.desc() if descending else key.asc()).limit(size + 1)
    rows = list(session.scalars(stmt).all())
    more = len(rows) > size
    rows = rows[:size]
    next_url = None
    if more:
        last = getattr(rows[-1], key.key)
        params = [(k, v) for k, v in request.GET.items() if k != "cursor"] + [("cursor", encode_cursor([last]))]
        next_url = request.current_route_url(_query=params)
    return {"next": next_url, "results": [serialize(row) for row in rows]}
