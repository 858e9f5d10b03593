"""The OpenAPI 3.1 document, generated from the services the enabled
plugins registered, and the offline interactive docs page.

``GET /api/openapi.json`` and ``GET /api/docs`` (Swagger UI, its assets
served from the swagger-ui-py package: no CDN).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import swagger_ui
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from learnsail import __version__
from learnsail.api.validation import schemas_of

PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "examples": ["VALIDATION_ERROR"]},
                "message": {"type": "string"},
                "details": {"type": "object",
                            "description": "For VALIDATION_ERROR: each bad field and its reasons."},
            },
        }
    },
}

ERROR_DESCRIPTIONS = {
    "400": "VALIDATION_ERROR: a field is missing or invalid (details name each field).",
    "401": "AUTH_FAILED: no valid bearer token.",
    "403": "PERMISSION_DENIED: the caller's role lacks the permission.",
    "404": "RESOURCE_NOT_FOUND.",
    "409": "CONFLICT.",
    "413": "PAYLOAD_TOO_LARGE.",
    "415": "UNSUPPORTED_MEDIA_TYPE: send application/json.",
    "429": "RATE_LIMITED (see Retry-After).",
}


def _schema_ref(spec: APISpec, schema: Any) -> Any:
    if isinstance(schema, dict):
        return schema  # a literal JSON schema
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema") or cls.__name__
    many = not isinstance(schema, type) and getattr(schema, "many", False)
    if name not in spec.components.schemas:
        spec.components.schema(name, schema=cls)
    ref = {"$ref": f"#/components/schemas/{name}"}
    return {"type": "array", "items": ref} if many else ref


def _has_required(schema: Any) -> bool:
    if isinstance(schema, dict):
        return bool(schema.get("required"))
    instance = schema() if isinstance(schema, type) else schema
    return getattr(instance, "many", False) or any(f.required for f in instance.fields.values())


def _response(spec: APISpec, value: Any, default_description: str) -> dict:
    description = default_description
    if isinstance(value, tuple):
        value, description = value
    if value is None:
        return {"description": description}
    return {"description": description,
            "content": {"application/json": {"schema": _schema_ref(spec, value)}}}


def _summary(view: Any) -> tuple[str, str]:
    doc = (getattr(view, "__doc__", None) or "").strip()
    if not doc:
        return "", ""
    first, _, rest = doc.partition("\n")
    return first.strip(), rest.strip()


def build(registry: Any) -> dict:
    """The OpenAPI document for the services registered in ``registry``."""
    plugin = MarshmallowPlugin()
    spec = APISpec(title="learnsail API", version=__version__, openapi_version="3.1.0",
                   plugins=[plugin],
                   info={"description": "REST API of a learnsail platform. Every error is "
                                        '`{"error": {"code", "message", "details"}}`.'})
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer",
                                                   "bearerFormat": "JWT"})
    spec.components.schema("Error", ERROR_SCHEMA)
    error_ref = {"$ref": "#/components/schemas/Error"}
    tags: dict[str, str] = {}
    for service in sorted(registry.get("learnsail.services", []), key=lambda s: s.path):
        operations: dict[str, dict] = {}
        path_params = PATH_PARAM.findall(service.path)
        for method, view, args in service.definitions:
            method = method.upper()
            if method in ("OPTIONS", "HEAD") and method not in service.docs:
                continue  # Cornice's automatic HEAD of a GET; a view declared for them is documented
            docs = service.docs.get(method, {})
            summary, description = _summary(view)
            op: dict[str, Any] = {
                "operationId": f"{service.name}.{method.lower()}",
                "tags": list(docs.get("tags") or [service.plugin]),
                "summary": docs.get("summary") or summary or f"{method} {service.path}",
                "parameters": [],
                "responses": {},
            }
            tags.setdefault(service.plugin, "")
            if description:
                op["description"] = description
            if docs.get("deprecated"):
                op["deprecated"] = True
            schemas = schemas_of(args)
            path_schema = schemas.get("path")
            for name in path_params:
                param_schema: dict[str, Any] = {"type": "string"}
                if path_schema is not None:
                    field = (path_schema() if isinstance(path_schema, type) else path_schema).fields.get(name)
                    if field is not None:
                        param_schema = plugin.converter.field2property(field)
                op["parameters"].append({"in": "path", "name": name, "required": True,
                                         "schema": param_schema})
            if "querystring" in schemas:
                op["parameters"].append({"in": "query", "schema": schemas["querystring"]})
            if "body" in schemas:
                # an empty body is read as {}: it is required only when a field is
                op["requestBody"] = {"required": _has_required(schemas["body"]), "content": {
                    "application/json": {"schema": _schema_ref(spec, schemas["body"])}}}
            elif docs.get("request_body"):
                op["requestBody"] = {"required": True, "content": {
                    media: {"schema": _schema_ref(spec, schema)} for media, schema in docs["request_body"].items()}}
            for status, value in (docs.get("responses") or {200: None}).items():
                op["responses"][str(status)] = _response(spec, value, "Success.")
            error_statuses = set(str(s) for s in docs.get("errors", ()))
            if "body" in schemas or "querystring" in schemas or path_params:
                error_statuses.add("400")
            if docs.get("permission") not in (NO_PERMISSION_REQUIRED, None):
                error_statuses |= {"401", "403"}
                op["security"] = [{"bearerAuth": []}]
            else:
                op["security"] = []
            if path_params:
                error_statuses.add("404")
            if "body" in schemas or docs.get("request_body"):
                error_statuses |= {"413", "415"}
            for status in sorted(error_statuses):
                op["responses"].setdefault(status, {
                    "description": ERROR_DESCRIPTIONS.get(status, "Error."),
                    "content": {"application/json": {"schema": error_ref}}})
            op["responses"].setdefault("500", {"description": "SERVER_ERROR.",
                                               "content": {"application/json": {"schema": error_ref}}})
            operations[method.lower()] = op
        if operations:
            spec.path(path=service.path, operations=operations,
                      description=service.description or None)
    for tag in sorted(tags):
        spec.tag({"name": tag})
    return _plain_numbers(spec.to_dict())


def _plain_numbers(value: Any) -> Any:
    """The document with JSON numbers where apispec left a Decimal (the
    ``minimum``/``maximum`` of a Decimal field's Range): rendered as a string,
    it is no JSON Schema number and OpenAPI tools refuse the operation."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(item) for item in value]
    return value


def openapi_view(request: Any) -> Any:
    cached = request.registry.get("learnsail.openapi")
    if cached is None:
        cached = request.registry["learnsail.openapi"] = build(request.registry)
    return cached


SWAGGER_STATIC = Path(swagger_ui.__file__).parent / "static"

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>learnsail API</title>
<link rel="stylesheet" href="{static}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-ui-standalone-preset.js"></script>
<script src="{init}"></script>
</body></html>
"""

DOCS_INIT_JS = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: %s, dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
};
"""


def docs_view(request: Any) -> Response:
    html = DOCS_HTML.format(static=request.script_name + "/api/docs/static",
                            init=request.route_path("learnsail.docs_init"))
    response = Response(html, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'"
    )
    return response


def docs_init_view(request: Any) -> Response:
    import json

    js = DOCS_INIT_JS % json.dumps(request.route_path("learnsail.openapi"))
    return Response(js, content_type="application/javascript", charset="utf-8")


def includeme(config: Any) -> None:
    config.add_route("learnsail.openapi", "/api/openapi.json")
    config.add_view(openapi_view, route_name="learnsail.openapi", renderer="json",
                    permission=NO_PERMISSION_REQUIRED, request_method="GET")
    if config.get_settings().get("learnsail.docs_enabled", True):
        config.add_route("learnsail.docs", "/api/docs")
        config.add_view(docs_view, route_name="learnsail.docs", permission=NO_PERMISSION_REQUIRED,
                        request_method="GET")
        config.add_route("learnsail.docs_init", "/api/docs/init.js")
        config.add_view(docs_init_view, route_name="learnsail.docs_init",
                        permission=NO_PERMISSION_REQUIRED, request_method="GET")
        config.add_static_view(name="api/docs/static", path=str(SWAGGER_STATIC), cache_max_age=86400,
                               permission=NO_PERMISSION_REQUIRED)
