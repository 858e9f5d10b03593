"""The HTTP API: thin views that validate, call a service, serialise."""

from __future__ import annotations

from typing import Any

from pyramid.response import Response

from learnsail.api import Service
from learnsail.db.pagination import paginate
from learnsail_bookmarks import services
from learnsail_bookmarks.schemas import (BookmarkCreateSchema, BookmarkListQuery, BookmarkPageSchema,
                                         BookmarkPath, BookmarkSchema, serialize)

VIEW = "bookmarks:bookmark:view"
CREATE = "bookmarks:bookmark:create"
DELETE = "bookmarks:bookmark:delete"

collection = Service(name="bookmarks.collection", path="/api/v1/bookmarks",
                     description="The caller's bookmarks.")
item = Service(name="bookmarks.item", path="/api/v1/bookmarks/{id}",
               description="One of the caller's bookmarks.")


@collection.get(permission=VIEW, schema={"querystring": BookmarkListQuery},
                responses={200: (BookmarkPageSchema, "A page of the caller's bookmarks, newest first.")})
def list_bookmarks(request: Any) -> dict:
    """List the caller's bookmarks, newest first."""
    return paginate(request, request.db, services.owned_by(request.identity.id), serialize)


@collection.post(permission=CREATE, schema=BookmarkCreateSchema, errors=(409,),
                 responses={201: (BookmarkSchema, "The new bookmark.")})
def create_bookmark(request: Any) -> dict:
    """Bookmark a URL.

    409 CONFLICT when the caller already bookmarked this URL, or already
    holds the most bookmarks allowed (setting learnsail.bookmarks.max_per_user).
    """
    body = request.validated["body"]
    bookmark = services.create_bookmark(
        request.db, request.identity.id, url=body["url"], title=body["title"], note=body["note"],
        max_per_user=request.registry.settings[services.MAX_PER_USER_SETTING])
    request.response.status = 201
    return serialize(bookmark)


@item.get(permission=VIEW, schema={"path": BookmarkPath},
          responses={200: (BookmarkSchema, "The bookmark.")})
def get_bookmark(request: Any) -> dict:
    """One of the caller's bookmarks (404 for anyone else's)."""
    return serialize(services.get_bookmark(request.db, request.identity.id,
                                           request.validated["path"]["id"]))


@item.delete(permission=DELETE, schema={"path": BookmarkPath},
             responses={204: (None, "Deleted.")})
def delete_bookmark(request: Any) -> Any:
    """Delete one of the caller's bookmarks (404 for anyone else's)."""
    services.delete_bookmark(request.db, request.identity.id, request.validated["path"]["id"])
    return Response(status=204)  # no body, no Content-Type


SERVICES = (collection, item)
