"""Bookmark rules, independent of HTTP (call them from views, tasks or
other code with a SQLAlchemy session)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from learnsail.errors import Conflict, NotFound
from learnsail.identity.models import User
from learnsail_bookmarks.models import Bookmark, url_digest

MAX_PER_USER_SETTING = "learnsail.bookmarks.max_per_user"
DEFAULT_MAX_PER_USER = 500


def owned_by(user_id: int) -> sa.Select:
    """The user's bookmarks, newest first (the list endpoint's query)."""
    return (sa.select(Bookmark).where(Bookmark.user_id == user_id)
            .order_by(Bookmark.id.desc()))


def create_bookmark(session: Session, user_id: int, *, url: str, title: str, note: str | None = None,
                    max_per_user: int = DEFAULT_MAX_PER_USER) -> Bookmark:
    """Bookmark ``url`` for ``user_id``.

    Raises :class:`Conflict` when the user already bookmarked this exact URL
    or already holds ``max_per_user`` bookmarks.
    """
    # Serialise one user's concurrent creates on their user row, so two
    # requests cannot both pass the limit check (a no-op on SQLite, whose
    # writers are serialised anyway).
    session.execute(sa.select(User.id).where(User.id == user_id).with_for_update())
    digest = url_digest(url)
    if session.scalar(sa.select(Bookmark.id).where(Bookmark.user_id == user_id,
                                                   Bookmark.url_hash == digest)) is not None:
        raise _duplicate()
    held = session.scalar(sa.select(sa.func.count()).select_from(Bookmark)
                          .where(Bookmark.user_id == user_id))
    if held >= max_per_user:
        raise Conflict(f"You already have {held} bookmarks, the most allowed ({max_per_user}). "
                       f"Delete some first.", {"max_per_user": max_per_user})
    bookmark = Bookmark(user_id=user_id, url=url, title=title, note=note)
    try:
        with session.begin_nested():  # a lost race on the unique key is a 409, not a 500
            session.add(bookmark)
    except IntegrityError:
        raise _duplicate() from None
    return bookmark


def _duplicate() -> Conflict:
    return Conflict("You have already bookmarked this URL.", {"url": ["Already bookmarked."]})


def get_bookmark(session: Session, user_id: int, bookmark_id: int) -> Bookmark:
    """The user's bookmark ``bookmark_id``.  Someone else's is NotFound, as a
    missing one is: the answer does not reveal that it exists."""
    bookmark = session.scalar(sa.select(Bookmark).where(Bookmark.id == bookmark_id,
                                                        Bookmark.user_id == user_id))
    if bookmark is None:
        raise NotFound("No such bookmark.")
    return bookmark


def delete_bookmark(session: Session, user_id: int, bookmark_id: int) -> None:
    session.delete(get_bookmark(session, user_id, bookmark_id))
    session.flush()


def erase_user(session: Session, user_id: int) -> int:
    """Delete every bookmark of ``user_id``; returns how many."""
    result = session.execute(sa.delete(Bookmark).where(Bookmark.user_id == user_id))
    return result.rowcount


def export_user(session: Session, user_id: int) -> list[dict] | None:
    rows = session.scalars(owned_by(user_id)).all()
    if not rows:
        return None
    return [{"url": b.url, "title": b.title, "note": b.note, "created_at": b.created_at.isoformat()}
            for b in rows]


#: (url, title, note) bookmarked for the demo administrator by ``learnsail init``
DEMO_BOOKMARKS = (
    ("https://docs.pylonsproject.org/projects/pyramid/en/latest/", "Pyramid documentation",
     "The web framework learnsail is built on."),
    ("https://alembic.sqlalchemy.org/en/latest/branches.html", "Alembic: working with branches",
     "How every learnsail plugin keeps its own migration branch."),
    ("https://pluggy.readthedocs.io/en/stable/", "pluggy", "The hook system behind learnsail plugins."),
)


def load_demo_data(session: Session) -> int:
    """Bookmark :data:`DEMO_BOOKMARKS` for the first administrator; adds
    only the missing ones (idempotent).  Returns how many were added."""
    from learnsail.identity.models import Role
    from learnsail.identity.services import ADMIN_ROLE

    admin_id = session.scalar(sa.select(User.id).join(Role, User.role_id == Role.id)
                              .where(Role.name == ADMIN_ROLE).order_by(User.id).limit(1))
    if admin_id is None:
        return 0
    have = set(session.scalars(sa.select(Bookmark.url_hash).where(Bookmark.user_id == admin_id)))
    added = 0
    for url, title, note in DEMO_BOOKMARKS:
        if url_digest(url) not in have:
            session.add(Bookmark(user_id=admin_id, url=url, title=title, note=note))
            added += 1
    session.flush()
    return added
