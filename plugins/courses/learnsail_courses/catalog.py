"""Categories (a tree) and tags: the rules, independent of HTTP."""

from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from learnsail.errors import Conflict, NotFound, ValidationFailed
from learnsail_courses.models import Category, Course, Tag, course_tags

MAX_DEPTH = 5


# --- categories ----------------------------------------------------------------

def get_category(session: Session, category_id: int) -> Category:
    category = session.get(Category, category_id)
    if category is None:
        raise NotFound(f"No category with id {category_id}.")
    return category


def _name_taken(session: Session, name: str, but: int | None = None) -> None:
    stmt = sa.select(Category.id).where(Category.name == name)
    if but is not None:
        stmt = stmt.where(Category.id != but)
    if session.scalar(stmt) is not None:
        raise Conflict(f"A category named {name!r} already exists.", {"name": ["Already used."]})


def _parent(session: Session, parent_id: int | None) -> Category | None:
    if parent_id is None:
        return None
    parent = session.get(Category, parent_id)
    if parent is None:
        raise ValidationFailed({"parent_id": [f"No category with id {parent_id}."]})
    if parent.level >= MAX_DEPTH:
        raise ValidationFailed({"parent_id": [f"Categories nest at most {MAX_DEPTH} levels deep."]})
    return parent


def create_category(session: Session, *, name: str, parent_id: int | None = None,
                    description: str | None = None, sort_order: int = 0, is_active: bool = True) -> Category:
    _name_taken(session, name)
    parent = _parent(session, parent_id)
    category = Category(name=name, parent_id=parent_id, description=description, sort_order=sort_order,
                        is_active=is_active, level=(parent.level + 1) if parent else 1, path="/")
    try:
        with session.begin_nested():
            session.add(category)
            session.flush()
    except IntegrityError:
        raise Conflict(f"A category named {name!r} already exists.", {"name": ["Already used."]}) from None
    category.path = f"{parent.path if parent else '/'}{category.id}/"
    session.flush()
    return category


def update_category(session: Session, category: Category, changes: dict) -> Category:
    if "name" in changes and changes["name"] != category.name:
        _name_taken(session, changes["name"], but=category.id)
    if "parent_id" in changes and changes["parent_id"] != category.parent_id:
        parent = _parent(session, changes["parent_id"])
        if parent is not None and (parent.id == category.id or parent.path.startswith(category.path)):
            raise ValidationFailed({"parent_id": ["A category cannot move under itself or its descendants."]})
        old_path, old_level = category.path, category.level
        new_path = f"{parent.path if parent else '/'}{category.id}/"
        delta = ((parent.level + 1) if parent else 1) - old_level
        depth = session.scalar(sa.select(sa.func.max(Category.level))
                               .where(Category.path.startswith(old_path, autoescape=True)))
        if (depth or old_level) + delta > MAX_DEPTH:
            raise ValidationFailed({"parent_id": [f"Categories nest at most {MAX_DEPTH} levels deep."]})
        # move the whole subtree: rewrite the prefix of every descendant's path
        session.execute(
            sa.update(Category)
            .where(Category.path.startswith(old_path, autoescape=True))
            .values(path=sa.literal(new_path, sa.String) + sa.func.substr(Category.path, len(old_path) + 1,
                                                                          type_=sa.String),
                    level=Category.level + delta)
            .execution_options(synchronize_session=False))
        session.expire(category)
        category.parent_id = changes["parent_id"]
    for field in ("name", "description", "sort_order", "is_active"):
        if field in changes:
            setattr(category, field, changes[field])
    session.flush()
    return category


def delete_category(session: Session, category: Category) -> None:
    """Refused (409) while the category has sub-categories or courses
    (deleted courses included: they still reference it)."""
    children = session.scalar(sa.select(sa.func.count()).where(Category.parent_id == category.id))
    courses = session.scalar(sa.select(sa.func.count()).select_from(Course)
                             .where(Course.category_id == category.id))
    if children or courses:
        raise Conflict("The category still has sub-categories or courses; move or delete them first.",
                       {"children": children, "courses": courses})
    session.delete(category)
    session.flush()


def subtree_ids(session: Session, category_id: int) -> sa.Select:
    """A select of the ids of ``category_id`` and every category under it."""
    path = f"%/{int(category_id)}/%"
    return sa.select(Category.id).where(Category.path.like(path))


def category_tree(session: Session, parent_id: int | None, *,
                  include_inactive: bool) -> tuple[sa.Select, sa.Select]:
    """Two selects: the categories directly under ``parent_id`` (the page),
    and every category (for :func:`load_tree`, which builds the sub-trees)."""
    stmt = sa.select(Category).order_by(Category.sort_order, Category.id)
    if not include_inactive:
        stmt = stmt.where(Category.is_active.is_(True))
    top = stmt.where(Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id)
    return top, stmt


def load_tree(session: Session, all_stmt: sa.Select) -> tuple[dict[int | None, list[Category]], dict[int, int]]:
    """Every category by parent id, and the published course count of each
    category (two queries)."""
    from learnsail_courses.models import PUBLISHED

    children: dict[int | None, list[Category]] = {}
    for category in session.scalars(all_stmt):
        children.setdefault(category.parent_id, []).append(category)
    counts = dict(session.execute(
        sa.select(Course.category_id, sa.func.count())
        .where(Course.status == PUBLISHED, Course.deleted_at.is_(None), Course.category_id.is_not(None))
        .group_by(Course.category_id)).all())
    return children, counts


# --- tags ----------------------------------------------------------------------

def list_tags(session: Session, type_: str | None = None) -> list[tuple[Tag, int]]:
    """Every tag (of ``type_``) with the number of published courses carrying it (two queries)."""
    from learnsail_courses.models import PUBLISHED

    stmt = sa.select(Tag).order_by(Tag.type, Tag.name)
    if type_:
        stmt = stmt.where(Tag.type == type_)
    tags = list(session.scalars(stmt))
    counts = dict(session.execute(
        sa.select(course_tags.c.tag_id, sa.func.count()).join(Course, Course.id == course_tags.c.course_id)
        .where(Course.status == PUBLISHED, Course.deleted_at.is_(None)).group_by(course_tags.c.tag_id)).all())
    return [(tag, counts.get(tag.id, 0)) for tag in tags]


def create_tags(session: Session, items: Iterable[dict]) -> list[Tag]:
    """Create tags in a batch; 409 naming the names that exist already."""
    items = list(items)
    names = [item["name"] for item in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationFailed({"tags": [f"Named twice: {', '.join(dupes)}."]})
    existing = set(session.scalars(sa.select(Tag.name).where(Tag.name.in_(names))))
    if existing:
        raise Conflict(f"These tags exist already: {', '.join(sorted(existing))}.", {"names": sorted(existing)})
    tags = [Tag(name=i["name"], type=i.get("type") or "general", colour=i.get("colour")) for i in items]
    try:
        with session.begin_nested():
            session.add_all(tags)
            session.flush()
    except IntegrityError:
        raise Conflict("Some of these tags were created meanwhile; try again.", {"names": names}) from None
    return tags


def update_tag(session: Session, tag_id: int, changes: dict) -> Tag:
    tag = session.get(Tag, tag_id)
    if tag is None:
        raise NotFound(f"No tag with id {tag_id}.")
    if "name" in changes and changes["name"] != tag.name and session.scalar(
            sa.select(Tag.id).where(Tag.name == changes["name"], Tag.id != tag.id)) is not None:
        raise Conflict(f"A tag named {changes['name']!r} already exists.", {"name": ["Already used."]})
    renamed = "name" in changes and changes["name"] != tag.name
    for field, value in changes.items():
        setattr(tag, field, value)
    session.flush()
    if renamed:
        refresh_tag_names(session, sa.select(course_tags.c.course_id).where(course_tags.c.tag_id == tag.id))
    return tag


def delete_tags(session: Session, ids: list[int]) -> int:
    """Delete the tags ``ids`` (and their course relations); 404 naming the
    ids that do not exist, deleting none."""
    found = set(session.scalars(sa.select(Tag.id).where(Tag.id.in_(ids))))
    missing = sorted(set(ids) - found)
    if missing:
        raise NotFound(f"No tags with ids {missing}.", {"ids": missing})
    courses = list(session.scalars(sa.select(course_tags.c.course_id).where(course_tags.c.tag_id.in_(ids))
                                   .distinct()))
    session.execute(sa.delete(course_tags).where(course_tags.c.tag_id.in_(ids)))
    session.execute(sa.delete(Tag).where(Tag.id.in_(ids)))
    refresh_tag_names(session, courses)
    return len(found)


def refresh_tag_names(session: Session, course_ids: Any) -> None:
    """Recompute ``Course.tag_names`` of ``course_ids`` (a list or a select
    of ids) from their tag relations: a tag was renamed or deleted."""
    ids = list(course_ids) if isinstance(course_ids, (list, set, tuple)) else list(session.scalars(course_ids))
    if not ids:
        return
    names: dict[int, list[str]] = {i: [] for i in ids}
    for course_id, name in session.execute(
            sa.select(course_tags.c.course_id, Tag.name).join(Tag, Tag.id == course_tags.c.tag_id)
            .where(course_tags.c.course_id.in_(ids)).order_by(Tag.name)):
        names[course_id].append(name)
    session.connection().execute(sa.update(Course.__table__).where(Course.id == sa.bindparam("cid"))
                                 .values(tag_names=sa.bindparam("names")),
                                 [{"cid": i, "names": n} for i, n in names.items()])
    for course_id in ids:  # loaded courses see the new names
        loaded = session.identity_map.get(sa.inspect(Course).identity_key_from_primary_key((course_id,)))
        if loaded is not None:
            session.expire(loaded, ["tag_names"])


def resolve_tags(session: Session, names: list[str]) -> list[Tag]:
    """The tags named ``names`` (000's ``tags: ["string"]``), creating the
    missing ones as ``general`` tags; order and duplicates of ``names`` are
    dropped."""
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not wanted:
        return []
    tags = {t.name.lower(): t for t in session.scalars(sa.select(Tag).where(Tag.name.in_(wanted)))}
    out = []
    for name in wanted:
        tag = tags.get(name.lower()) or _tag_named(session, name)
        tags[name.lower()] = tag
        if tag not in out:
            out.append(tag)
    return sorted(out, key=lambda t: t.name)


def _tag_named(session: Session, name: str) -> Tag:
    """The tag the database holds equal to ``name`` (its collation decides:
    MariaDB's ignores control characters and reads ß as ss, which Python's
    lower() does not), created as a ``general`` tag when there is none."""
    found = session.scalar(sa.select(Tag).where(Tag.name == name).limit(1))
    if found is not None:
        return found
    tag = Tag(name=name, type="general")
    try:
        with session.begin_nested():
            session.add(tag)
            session.flush()
    except IntegrityError:  # created meanwhile by a concurrent request
        found = session.scalar(sa.select(Tag).where(Tag.name == name).limit(1))
        if found is None:
            raise Conflict(f"The tag {name!r} is being created by another request; try again.",
                           {"tags": [name]}) from None
        return found
    return tag
