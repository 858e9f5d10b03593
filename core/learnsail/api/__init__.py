"""API conventions owned by the core: the Service class plugins use, the
schema validator, the error envelope views, the OpenAPI document and docs."""

from learnsail.api.service import Service, PUBLIC  # noqa: F401
from learnsail.api.validation import Schema  # noqa: F401


def no_content(request):
    """An empty 204 response (no body, no Content-Type)."""
    response = request.response
    response.status = 204
    response.content_type = None
    return response


def page_of(item_schema: type) -> type:
    """The documented shape of a paginated list of ``item_schema``:
    ``{count, next, previous, results}``."""
    from marshmallow import fields

    name = item_schema.__name__.removesuffix("Schema") + "Page"
    return Schema.from_dict({
        "count": fields.Integer(metadata={"description": "Items in all pages."}),
        "next": fields.String(allow_none=True, metadata={"description": "URL of the next page."}),
        "previous": fields.String(allow_none=True, metadata={"description": "URL of the previous page."}),
        "results": fields.List(fields.Nested(item_schema)),
    }, name=name)


def includeme(config):
    # The core renders every error itself: keep Cornice's exception views out.
    config.get_settings()["handle_exceptions"] = False
    config.include("cornice")
    config.include("learnsail.api.service")
    config.include("learnsail.api.errorviews")
    config.include("learnsail.api.openapi")
