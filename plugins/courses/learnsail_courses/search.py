"""The catalogue query: filters, search and sort of GET /api/v1/courses.

Search over title and description uses MySQL's FULLTEXT index with the
ngram parser (created by the migration on MySQL only) so that Chinese
words match; on MariaDB (no ngram parser) and SQLite it falls back to
``LIKE '%word%'`` on each word, all words required.
"""

from __future__ import annotations

from typing import Any

import datetime as dt
import hashlib
import json
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from learnsail.identity.models import User, UserProfile
from learnsail_courses.catalog import subtree_ids
from learnsail_courses.models import PUBLISHED, Course, Tag, course_tags

SORTS = {
    "newest": (Course.published_at.desc(), Course.id.desc()),
    "popular": (Course.student_count.desc(), Course.id.desc()),
    "rating": (Course.rating.desc(), Course.rating_count.desc(), Course.id.desc()),
    "price": (Course.price.asc(), Course.id.desc()),
    "-price": (Course.price.desc(), Course.id.desc()),
}


def uses_fulltext(session: Session) -> bool:
    dialect = session.get_bind().dialect
    return dialect.name == "mysql" and not getattr(dialect, "is_mariadb", False)


def search_condition(text: str, *, fulltext: bool) -> sa.ColumnElement:
    """The condition of ``search``: FULLTEXT (MySQL) or LIKE, every word required."""
    words = [w for w in text.split() if w][:10]

    def like(word: str) -> sa.ColumnElement:
        return sa.or_(Course.title.contains(word, autoescape=True), Course.description.contains(word, autoescape=True))

    if fulltext:
        # boolean mode, every word required; the ngram parser (tokens of 2
        # characters by default) splits Chinese.  A word shorter than a token
        # cannot match the index: LIKE finds it.
        long_words = [w for w in words if len(w) >= 2]
        conditions = [like(w) for w in words if len(w) < 2]
        if long_words:
            query = " ".join('+"' + w.replace('"', " ") + '"' for w in long_words)
            conditions.append(sa.text("MATCH (courses_courses.title, courses_courses.description) "
                                      "AGAINST (:q IN BOOLEAN MODE)").bindparams(q=query))
        return sa.and_(*conditions)
    return sa.and_(*[like(w) for w in words])


def catalogue(session: Session, query: dict[str, Any], *, caller_id: int | None, may_view_any: bool) -> sa.Select:
    """The select of the courses ``query`` asks for, in order.

    The public sees published courses only; ``status`` is honoured for
    course managers, and for a teacher listing their own courses
    (``teacher_id`` = themselves), who see every status by default."""
    stmt = sa.select(Course).where(Course.deleted_at.is_(None))
    own = caller_id is not None and query.get("teacher_id") == caller_id
    status = query.get("status")
    if may_view_any or own:
        if status:
            stmt = stmt.where(Course.status == status)
        elif not own:
            stmt = stmt.where(Course.status == PUBLISHED)
    else:
        stmt = stmt.where(Course.status == PUBLISHED)
    if query.get("teacher_id"):
        stmt = stmt.where(Course.teacher_id == query["teacher_id"])
    if query.get("category_id"):
        stmt = stmt.where(Course.category_id.in_(subtree_ids(session, query["category_id"])))
    for field in ("difficulty", "course_type", "is_free"):
        if query.get(field) is not None:
            stmt = stmt.where(getattr(Course, field) == query[field])
    if query.get("price_min") is not None:
        stmt = stmt.where(Course.price >= query["price_min"])
    if query.get("price_max") is not None:
        stmt = stmt.where(Course.price <= query["price_max"])
    for name in dict.fromkeys(query.get("tags") or []):
        stmt = stmt.where(sa.exists().where(course_tags.c.course_id == Course.id,
                                            course_tags.c.tag_id == Tag.id, Tag.name == name))
    if query.get("search") and query["search"].split():
        stmt = stmt.where(search_condition(query["search"], fulltext=uses_fulltext(session)))
    return stmt.order_by(*SORTS[query.get("sort") or "newest"])


#: what a course card shows, read as plain rows (no ORM objects: the
#: catalogue is the hottest list of the platform)
CARD_COLUMNS = (Course.id, Course.title, Course.cover_image_url, Course.teacher_id, Course.price, Course.rating,
                Course.rating_count, Course.student_count, Course.difficulty, Course.status, Course.category_id,
                Course.course_type, Course.is_free, Course.is_member_only, Course.duration, Course.tag_names,
                Course.published_at,
                User.username.label("teacher_username"), UserProfile.real_name.label("teacher_real_name"))


def ids_only(stmt: sa.Select) -> sa.Select:
    """The catalogue select reading only course ids, so the count and the
    page are found on the indexes alone (see :func:`page_cards`)."""
    return stmt.with_only_columns(Course.id, maintain_column_froms=True)


def is_public(query: dict[str, Any], *, caller_id: int | None, may_view_any: bool) -> bool:
    """Is the answer to ``query`` the same for every caller (published
    courses only)?  Not for a teacher's own list or a manager's status."""
    own = caller_id is not None and query.get("teacher_id") == caller_id
    return not own and not (may_view_any and query.get("status"))


def count_key(query: dict[str, Any]) -> str:
    """The cache key of the count of a public catalogue ``query`` (what it
    filters, not its page or order)."""
    filters = {k: v for k, v in query.items() if k not in ("page", "page_size", "sort") and v not in (None, "", [])}
    digest = hashlib.sha1(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()
    return f"courses:count:{digest}"


def page_cards(session: Session, page_stmt: sa.Select, sort: str | None) -> list[Any]:
    """A limited catalogue select's page in one statement: the page's ids,
    found on the indexes (a deep page skips index entries, not rows), joined
    to their rows (tag names included, ``Course.tag_names``) and teachers
    (:data:`CARD_COLUMNS`), in order."""
    ids = ids_only(page_stmt).subquery("page")
    stmt = (sa.select(*CARD_COLUMNS).join(ids, ids.c.id == Course.id).join(User, User.id == Course.teacher_id)
            .outerjoin(UserProfile, UserProfile.user_id == User.id).order_by(*SORTS[sort or "newest"]))
    return list(session.execute(stmt))


#: the sorts whose keys change only with a change of the catalogue (which
#: drops the cached counts and anchors): a page of these may be read by
#: seeking from the row before it instead of skipping every row before it
SEEK_KEYS = {
    "newest": ((Course.published_at, "desc", dt.datetime.fromisoformat), (Course.id, "desc", int)),
    "price": ((Course.price, "asc", Decimal), (Course.id, "desc", int)),
    "-price": ((Course.price, "desc", Decimal), (Course.id, "desc", int)),
}


def _after(keys: tuple, values: list[Any]) -> sa.ColumnElement:
    """Rows after ``values`` in the order of ``keys`` (lexicographic)."""
    clauses = []
    for i, (column, direction, _) in enumerate(keys):
        beyond = column < values[i] if direction == "desc" else column > values[i]
        clauses.append(sa.and_(*[keys[j][0] == values[j] for j in range(i)], beyond))
    return sa.or_(*clauses)


def _anchor_of(keys: tuple, row: Any) -> list[Any]:
    """The sort key of ``row`` as JSON values (the cache stores JSON)."""
    values = (getattr(row, column.key) for column, _, _ in keys)
    return [v.isoformat() if isinstance(v, dt.datetime) else v if isinstance(v, int) else str(v) for v in values]


def _values(keys: tuple, anchor: list[Any]) -> list[Any]:
    return [decode(value) for (_, _, decode), value in zip(keys, anchor)]


def anchor_key(query: dict[str, Any], size: int, page: int) -> str:
    """The cache key of the sort key of the row just before ``page``."""
    return f"{count_key(query)}:before:{query.get('sort') or 'newest'}:{size}:{page}"


def fetch_page(session: Session, cache: Any, stmt: sa.Select, query: dict[str, Any], page: int, size: int, *,
               anchors: bool, ttl: int) -> list[Any]:
    """The cards of ``page`` of the catalogue select ``stmt`` (one statement).

    With ``anchors`` (a public query, whose answer is the same for
    everyone) and a stable sort (:data:`SEEK_KEYS`), the sort key of the row
    before each page served is kept in the cache: the next page, or the
    same page asked again, is then read by seeking to it on the index
    rather than skipping every row before it (OFFSET), so deep pages cost
    about what the first one does.  A page asked cold is read with OFFSET
    (one row more, the one before it, gives its anchor)."""
    sort = query.get("sort") or "newest"
    keys = SEEK_KEYS.get(sort) if anchors else None
    if keys is None:
        return page_cards(session, stmt.limit(size).offset((page - 1) * size), sort)
    before = cache.get(anchor_key(query, size, page)) if page > 1 else None
    if page == 1:
        rows = page_cards(session, stmt.limit(size), sort)
    elif before is not None:
        rows = page_cards(session, stmt.where(_after(keys, _values(keys, before))).limit(size), sort)
    else:
        rows = page_cards(session, stmt.limit(size + 1).offset((page - 1) * size - 1), sort)
        if rows:
            cache.set(anchor_key(query, size, page), _anchor_of(keys, rows[0]), ttl)
        rows = rows[1:]
    if len(rows) == size:
        cache.set(anchor_key(query, size, page + 1), _anchor_of(keys, rows[-1]), ttl)
    return rows


def with_card_data(stmt: sa.Select) -> sa.Select:
    """Load what a course card shows (the teacher) in more queries per page,
    whatever its size (tag names are on the row)."""
    return stmt.options(selectinload(Course.teacher).selectinload(User.profile))


def hot(session: Session, limit: int) -> list[Course]:
    """The most popular published courses: students, then rating."""
    stmt = (sa.select(Course).where(Course.deleted_at.is_(None), Course.status == PUBLISHED)
            .order_by(Course.student_count.desc(), Course.rating.desc(), Course.id.desc()).limit(limit))
    return list(session.scalars(with_card_data(stmt)))
