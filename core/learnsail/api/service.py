"""The Service class every plugin uses, so no plugin configures Cornice.

    from learnsail.api import Service, PUBLIC

    bookmarks = Service(name="bookmarks.collection", path="/api/v1/bookmarks",
                        description="The caller's bookmarks")

    @bookmarks.get(permission="bookmarks:bookmark:view",
                   schema={"querystring": ListQuery},
                   responses={200: BookmarkPage})
    def list_bookmarks(request): ...

and, in the plugin's ``learnsail_includeme(config)``:
``config.add_learnsail_service(bookmarks)``.

Every view states its ``permission`` (``PUBLIC`` for none), so nothing is
reachable by accident.  ``responses`` documents response bodies (a schema
or ``(schema, "description")``) and feeds the OpenAPI document;
``request_body`` documents a body the view reads itself (not JSON, such
as a multipart upload): ``{"multipart/form-data": UploadForm}``, a
media type mapped to a schema.
"""

from __future__ import annotations

from typing import Any

import cornice
from pyramid.security import NO_PERMISSION_REQUIRED

from learnsail.api.validation import marshmallow_validator, schemas_of

PUBLIC = NO_PERMISSION_REQUIRED

#: view arguments that only document the API; kept off Pyramid's add_view
DOC_ARGUMENTS = ("responses", "tags", "summary", "deprecated", "errors", "request_body")


class Service(cornice.Service):
    """A Cornice service with the core's conventions built in: JSON, the
    core validator, the error envelope, documentation metadata."""

    renderer = "json"
    default_validators = [marshmallow_validator]

    def __init__(self, name: str, path: str, description: str = "", **kw: Any) -> None:
        if not path.startswith("/api/"):
            raise ValueError(f"service {name!r}: API paths start with /api/ (got {path!r})")
        kw.setdefault("error_handler", _error_handler)
        super().__init__(name=name, path=path, description=description, **kw)
        self.docs: dict[str, dict[str, Any]] = {}

    @property
    def plugin(self) -> str:
        """The plugin a service belongs to, from its name ``<plugin>.<thing>``."""
        return self.name.split(".", 1)[0]

    def add_view(self, method: Any, view: Any, **kwargs: Any) -> None:
        methods = method if isinstance(method, (list, tuple)) else [method]
        if "permission" not in kwargs and not {m.upper() for m in methods} <= {"OPTIONS", "HEAD"}:
            raise ValueError(
                f"service {self.name!r} {methods}: every view states its permission "
                f"(use learnsail.api.PUBLIC for an open endpoint)"
            )
        schemas_of(kwargs)  # fail at import time on a misspelt location
        docs = {key: kwargs.pop(key) for key in DOC_ARGUMENTS if key in kwargs}
        docs["permission"] = kwargs.get("permission")
        for m in methods:
            self.docs[m.upper()] = docs
        super().add_view(method, view, **kwargs)


def _error_handler(request: Any) -> Any:
    """Cornice's validation errors as the core's envelope."""
    from learnsail.api.errorviews import render_envelope
    from learnsail import errors

    details: dict[str, list[str]] = {}
    for error in request.errors:
        name = error.get("name") or error.get("location") or "_schema"
        description = error.get("description")
        if isinstance(description, bytes):
            description = description.decode("utf-8", "replace")
        details.setdefault(name, []).append(str(description))
    status = getattr(request.errors, "status", 400) or 400
    code = {406: errors.NOT_ACCEPTABLE, 415: errors.UNSUPPORTED_MEDIA_TYPE}.get(status, errors.VALIDATION_ERROR)
    message = "The request has invalid fields." if code == errors.VALIDATION_ERROR else "The request cannot be served."
    return render_envelope(request, status, code, message, details)


def add_learnsail_service(config: Any, service: Service) -> None:
    """Register ``service``: its routes, views and its place in the API docs."""
    if not isinstance(service, Service):
        raise TypeError(f"{service!r} is not a learnsail.api.Service")
    config.add_cornice_service(service)
    config.registry.setdefault("learnsail.services", []).append(service)


def includeme(config: Any) -> None:
    config.add_directive("add_learnsail_service", add_learnsail_service)
