"""What the API accepts and answers (marshmallow 4).  Input schemas derive
from the core's bases, so an unknown body field is a VALIDATION_ERROR and
unknown query parameters are ignored."""

from __future__ import annotations

from marshmallow import fields, validate

from learnsail.api import Schema
from learnsail.api.validation import QuerySchema
from learnsail.db.pagination import MAX_PAGE_SIZE
from learnsail_bookmarks.models import TITLE_MAX_LENGTH, URL_MAX_LENGTH

NOTE_MAX_LENGTH = 10_000


class BookmarkCreateSchema(Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                     validate=validate.Length(max=URL_MAX_LENGTH),
                     metadata={"description": "The page to remember (http or https)."})
    title = fields.String(required=True, validate=validate.Length(min=1, max=TITLE_MAX_LENGTH))
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=NOTE_MAX_LENGTH),
                         metadata={"description": "A private note."})


class BookmarkSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    title = fields.String()
    note = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class BookmarkPageSchema(Schema):
    count = fields.Integer(metadata={"description": "Bookmarks in all pages."})
    next = fields.String(allow_none=True, metadata={"description": "URL of the next page, or null."})
    previous = fields.String(allow_none=True, metadata={"description": "URL of the previous page, or null."})
    results = fields.List(fields.Nested(BookmarkSchema))


class BookmarkListQuery(QuerySchema):
    page = fields.Integer(validate=validate.Range(min=1), metadata={"description": "Page number (1-based)."})
    page_size = fields.Integer(validate=validate.Range(min=1),
                               metadata={"description": f"Items per page (default 20, capped at {MAX_PAGE_SIZE})."})


class BookmarkPath(Schema):
    id = fields.Integer(required=True, strict=False, validate=validate.Range(min=1))


def serialize(bookmark) -> dict:
    return {"id": bookmark.id, "url": bookmark.url, "title": bookmark.title, "note": bookmark.note,
            "created_at": bookmark.created_at, "updated_at": bookmark.updated_at}
