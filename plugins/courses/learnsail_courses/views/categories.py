"""Categories (000 §六 课程分类管理API) and tags."""

from __future__ import annotations

from typing import Any

from learnsail.api import PUBLIC, Service, no_content, page_of
from learnsail.db.pagination import paginate
from learnsail_courses import catalog
from learnsail_courses.permissions import CATEGORY_MANAGE, TAG_MANAGE
from learnsail_courses.schemas import (CategoryCreateSchema, CategoryListQuery, CategorySchema, CategoryUpdateSchema,
                                       IdPath, TagBatchSchema, TagDeleteQuery, TagListQuery, TagSchema,
                                       TagUpdateSchema)
from learnsail_courses.settings import HOT_CACHE_TTL
from learnsail_courses.views.common import forget_course, may

categories = Service(name="courses.categories", path="/api/v1/categories",
                     description="The course category tree.")
category = Service(name="courses.category", path="/api/v1/categories/{id}", description="One category.")
tags = Service(name="courses.tags", path="/api/v1/tags", description="Course tags.")
tag = Service(name="courses.tag", path="/api/v1/tags/{id}", description="One course tag.")


def category_out(category: Any, children: dict | None = None, counts: dict | None = None) -> dict:
    out = {"id": category.id, "name": category.name, "parent_id": category.parent_id,
           "description": category.description, "sort_order": category.sort_order, "level": category.level,
           "path": category.path, "is_active": category.is_active,
           "created_at": category.created_at, "updated_at": category.updated_at}
    if children is not None:
        kids = [category_out(child, children, counts) for child in children.get(category.id, [])]
        out["children"] = kids
        out["course_count"] = (counts or {}).get(category.id, 0) + sum(k["course_count"] for k in kids)
    return out


@categories.get(permission=PUBLIC, schema={"querystring": CategoryListQuery},
                responses={200: (page_of(CategorySchema), "A page of categories, each with its sub-tree.")})
def list_categories(request: Any) -> dict:
    """List categories: the roots (or the children of parent_id), each with
    its whole sub-tree in ``children`` and its published course count.

    Inactive categories are left out unless a category manager asks with
    include_inactive=true.  Four queries whatever the size of the tree."""
    query = request.validated["querystring"]
    include_inactive = bool(query.get("include_inactive")) and may(request, CATEGORY_MANAGE)
    top, everything = catalog.category_tree(request.db, query.get("parent_id"), include_inactive=include_inactive)
    page = paginate(request, request.db, top, lambda c: c)
    children, counts = catalog.load_tree(request.db, everything)
    page["results"] = [category_out(c, children, counts) for c in page["results"]]
    return page


@categories.post(permission=CATEGORY_MANAGE, schema=CategoryCreateSchema, errors=(409,),
                 responses={201: (CategorySchema, "The new category.")})
def create_category(request: Any) -> dict:
    """Create a category (category managers; 409 when the name is taken)."""
    category = catalog.create_category(request.db, **request.validated["body"])
    request.response.status = 201
    return category_out(category)


@category.put(permission=CATEGORY_MANAGE, schema={"path": IdPath, "body": CategoryUpdateSchema}, errors=(409,),
              responses={200: (CategorySchema, "The updated category.")})
def update_category(request: Any) -> dict:
    """Update a category; changing parent_id moves its whole sub-tree."""
    category = catalog.get_category(request.db, request.validated["path"]["id"])
    updated = catalog.update_category(request.db, category, request.validated["body"])
    forget_course(request)  # category names in course details
    return category_out(updated)


@category.delete(permission=CATEGORY_MANAGE, schema={"path": IdPath}, errors=(409,),
                 responses={204: (None, "Deleted.")})
def delete_category(request: Any) -> Any:
    """Delete a category: 409 CONFLICT while it has sub-categories or courses."""
    catalog.delete_category(request.db, catalog.get_category(request.db, request.validated["path"]["id"]))
    return no_content(request)


def forget_tags(request: Any) -> None:
    request.registry["learnsail.cache"].invalidate(request, prefix="courses:tags:")


def tag_out(tag: Any, course_count: int | None = None) -> dict:
    out = {"id": tag.id, "name": tag.name, "type": tag.type, "colour": tag.colour}
    if course_count is not None:
        out["course_count"] = course_count
    return out


@tags.get(permission=PUBLIC, schema={"querystring": TagListQuery},
          responses={200: (TagSchema(many=True), "Every tag (of the type asked), by type and name.")})
def list_tags(request: Any) -> list:
    """List the tags, optionally of one type (general, level, goal, skill,
    body_part), each with the number of published courses carrying it.
    Cached for learnsail.courses.hot_cache_ttl seconds (dropped when a tag
    changes; the counts may lag by that much)."""
    type_ = request.validated["querystring"].get("type")
    produce = lambda: [tag_out(t, n) for t, n in catalog.list_tags(request.db, type_)]  # noqa: E731
    ttl = int(request.registry.settings.get(HOT_CACHE_TTL) or 0)
    if not ttl:
        return produce()
    return request.registry["learnsail.cache"].get_or_set(f"courses:tags:{type_ or ''}", produce, ttl)


@tags.post(permission=TAG_MANAGE, schema=TagBatchSchema, errors=(409,),
           responses={201: (TagSchema(many=True), "The new tags.")})
def create_tags(request: Any) -> list:
    """Create tags in a batch: ``{"tags": [{"name", "type", "colour"}]}``;
    409 naming the names that exist already (none is created then)."""
    created = catalog.create_tags(request.db, request.validated["body"]["tags"])
    forget_tags(request)
    request.response.status = 201
    return [tag_out(t) for t in created]


@tags.delete(permission=TAG_MANAGE, schema={"querystring": TagDeleteQuery},
             responses={204: (None, "Deleted, with their course relations.")})
def delete_tags(request: Any) -> Any:
    """Delete tags in a batch (``?ids=1,2``); 404 naming unknown ids (none is deleted then)."""
    catalog.delete_tags(request.db, request.validated["querystring"]["ids"])
    forget_course(request)
    forget_tags(request)
    return no_content(request)


@tag.put(permission=TAG_MANAGE, schema={"path": IdPath, "body": TagUpdateSchema}, errors=(409,),
         responses={200: (TagSchema, "The updated tag.")})
def update_tag(request: Any) -> dict:
    """Rename a tag or change its type or colour."""
    updated = catalog.update_tag(request.db, request.validated["path"]["id"], request.validated["body"])
    forget_course(request)  # tag names in course details
    forget_tags(request)
    return tag_out(updated)


SERVICES = (categories, category, tags, tag)
