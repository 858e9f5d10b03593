"""Course comments and ratings (000 §六 评论相关API), replies, likes, moderation."""

from __future__ import annotations

from typing import Any

from learnsail.api import PUBLIC, Service, no_content, page_of
from learnsail.db.pagination import paginate
from learnsail.errors import NotFound
from learnsail.identity.acl import require_owner_or_permission
from learnsail_courses import comments
from learnsail_courses.permissions import COMMENT, COMMENT_MODERATE
from learnsail_courses.schemas import (CommentCreateSchema, CommentCreatedSchema, CommentListQuery, CommentSchema,
                                       IdPath, LikeSchema, ModerationSchema)
from learnsail_courses.settings import COMMENT_APPROVAL
from learnsail_courses.views.common import forget_course, may, user_id
from learnsail_courses.views.learning import visible_course

course_comments = Service(name="courses.comments", path="/api/v1/courses/{id}/comments",
                          description="A course's comments and ratings.")
comment = Service(name="courses.comment", path="/api/v1/comments/{id}", description="One comment.")
moderation = Service(name="courses.comment_moderation", path="/api/v1/comments/{id}/moderation",
                     description="Approve or hide a comment.")
like = Service(name="courses.comment_like", path="/api/v1/comments/{id}/like", description="Like a comment.")


def comment_out(item: Any) -> dict:
    """000's answer to POST /courses/{id}/comments (plus parent_id and the moderation flags)."""
    return {"id": item.id, "content": item.content, "rating": item.rating, "course_id": item.course_id,
            "user_id": item.user_id, "parent_id": item.parent_id, "is_approved": item.is_approved,
            "is_hidden": item.is_hidden, "created_at": item.created_at}


def _user(user: Any) -> dict:
    return {"id": user.id, "username": user.username, "avatar_url": user.avatar_url}


def _flags(item: Any, liked: set[int]) -> dict:
    return {"like_count": item.like_count, "liked": item.id in liked, "is_approved": item.is_approved,
            "is_hidden": item.is_hidden}


@course_comments.get(permission=PUBLIC, schema={"path": IdPath, "querystring": CommentListQuery},
                     responses={200: (page_of(CommentSchema), "A page of threads, each with its replies.")})
def list_comments(request: Any) -> dict:
    """A course's comments (000): top-level comments with their replies
    (oldest first), like counts and whether the caller liked each.  Five
    queries whatever the page size (six signed in)."""
    course = visible_course(request, request.validated["path"]["id"])
    query = request.validated["querystring"]
    include_hidden = bool(query.get("include_hidden")) and may(request, COMMENT_MODERATE)
    viewer = user_id(request)
    page = paginate(request, request.db, comments.threads(course.id, query.get("sort") or "newest",
                                                          include_hidden=include_hidden, viewer_id=viewer),
                    lambda c: c)
    roots = page["results"]
    replies = comments.replies_of(request.db, [c.id for c in roots], include_hidden=include_hidden,
                                  viewer_id=viewer)
    ids = [c.id for c in roots] + [r.id for thread in replies.values() for r in thread]
    liked = comments.liked_by(request.db, viewer, ids)
    page["results"] = [{
        "id": c.id, "content": c.content, "rating": c.rating, "created_at": c.created_at, "user": _user(c.user),
        **_flags(c, liked),
        "replies": [{"id": r.id, "parent_id": r.parent_id, "content": r.content, "created_at": r.created_at,
                     "user": _user(r.user), **_flags(r, liked)} for r in replies.get(c.id, [])],
    } for c in roots]
    return page


@course_comments.post(permission=COMMENT, schema={"path": IdPath, "body": CommentCreateSchema},
                      responses={201: (CommentCreatedSchema, "The new comment.")})
def create_comment(request: Any) -> dict:
    """Comment on a course (000), rate it, or reply (parent_id).

    A rating (1-5) needs an enrolment (403 otherwise) and is given once per
    course (400 the second time); the course's rating and rating_count
    change in the same transaction.  With learnsail.courses.comment_approval
    on, the comment waits for a moderator's approval."""
    course = visible_course(request, request.validated["path"]["id"])
    body = request.validated["body"]
    approved = not request.registry.settings.get(COMMENT_APPROVAL) or may(request, COMMENT_MODERATE)
    created = comments.add_comment(request.db, request.authenticated_userid, course, content=body["content"],
                                   rating=body["rating"], parent_id=body["parent_id"], lesson_id=body["lesson_id"],
                                   approved=approved, moderator=may(request, COMMENT_MODERATE))
    if created.rating is not None:
        forget_course(request, course.id)  # rating
    request.response.status = 201
    return comment_out(created)


@comment.delete(permission=COMMENT, schema={"path": IdPath}, responses={204: (None, "Deleted, with its replies.")})
def delete_comment(request: Any) -> Any:
    """Delete a comment and its replies (its author; comment moderators any)."""
    found = comments.get_comment(request.db, request.validated["path"]["id"])
    require_owner_or_permission(request, found.user_id, COMMENT_MODERATE)
    comments.delete_comment(request.db, found)
    forget_course(request, found.course_id)
    return no_content(request)


@moderation.put(permission=COMMENT_MODERATE, schema={"path": IdPath, "body": ModerationSchema},
                responses={200: (CommentCreatedSchema, "The moderated comment.")})
def moderate_comment(request: Any) -> dict:
    """Approve or hide a comment (comment moderators); a hidden or
    unapproved rating no longer counts in the course's rating."""
    found = comments.moderate(request.db, comments.get_comment(request.db, request.validated["path"]["id"]),
                              request.validated["body"])
    forget_course(request, found.course_id)
    return comment_out(found)


def _likeable(request: Any) -> Any:
    """The comment, if the caller may see it: its course, and the comment
    itself as the list shows it (hidden and unapproved ones are 404 but for
    their author and moderators)."""
    found = comments.get_comment(request.db, request.validated["path"]["id"])
    visible_course(request, found.course_id)
    if not comments.shown_to(found, user_id(request), may(request, COMMENT_MODERATE)):
        raise NotFound(f"No comment with id {found.id}.")
    return found


@like.post(permission=COMMENT, schema={"path": IdPath}, responses={200: (LikeSchema, "Liked (idempotent).")})
def like_comment(request: Any) -> dict:
    """Like a comment; liking twice counts once."""
    found = _likeable(request)
    comments.like(request.db, request.authenticated_userid, found)
    return {"id": found.id, "like_count": found.like_count, "liked": True}


@like.delete(permission=COMMENT, schema={"path": IdPath}, responses={200: (LikeSchema, "Not liked (idempotent).")})
def unlike_comment(request: Any) -> dict:
    """Take a like back."""
    found = _likeable(request)
    comments.unlike(request.db, request.authenticated_userid, found)
    return {"id": found.id, "like_count": found.like_count, "liked": False}


SERVICES = (course_comments, comment, moderation, like)
