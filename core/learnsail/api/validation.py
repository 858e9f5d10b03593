"""The core's marshmallow validator for Cornice views.

Cornice's bundled marshmallow validator does not work with marshmallow 4,
so the core owns this one.  A view declares ``schema=`` as a Schema class
(the JSON body) or a dict ``{"body": ..., "querystring": ..., "path": ...}``.
Validated data lands in ``request.validated["body" | "querystring" |
"path"]``; every bad field is reported, with its reason, in one 400.
"""

from __future__ import annotations

import json
from typing import Any

import marshmallow
from marshmallow import fields
from pyramid.httpexceptions import HTTPUnsupportedMediaType

LOCATIONS = ("path", "querystring", "body")


class Schema(marshmallow.Schema):
    """Base schema: unknown fields are an error, so typos are caught."""

    class Meta:
        unknown = marshmallow.RAISE


class QuerySchema(marshmallow.Schema):
    """Base for query strings: unknown parameters (``page``...) are ignored."""

    class Meta:
        unknown = marshmallow.EXCLUDE


def schemas_of(args: dict[str, Any]) -> dict[str, type[marshmallow.Schema]]:
    schema = args.get("schema")
    if schema is None:
        return {}
    if isinstance(schema, dict):
        unknown = set(schema) - set(LOCATIONS)
        if unknown:
            raise ValueError(f"schema locations must be among {LOCATIONS}, not {sorted(unknown)}")
        return {k: v for k, v in schema.items() if v is not None}
    return {"body": schema}


def _instance(schema: Any) -> marshmallow.Schema:
    return schema() if isinstance(schema, type) else schema


def _query_data(request: Any, schema: marshmallow.Schema) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, field in schema.fields.items():
        key = field.data_key or name
        if key not in request.GET:
            continue
        if isinstance(field, fields.List):
            values = request.GET.getall(key)
            # "tags=a,b" and "tags=a&tags=b" both work
            data[key] = [v for value in values for v in value.split(",") if v != ""]
        else:
            data[key] = request.GET.get(key)
    return data


def _body_data(request: Any) -> Any:
    if not request.body:
        return {}
    content_type = (request.content_type or "").lower()
    if content_type and not (content_type == "application/json" or content_type.endswith("+json")):
        raise HTTPUnsupportedMediaType(f"Send the body as application/json, not {content_type}.")
    try:
        return json.loads(request.body.decode(request.charset or "utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadBody(f"The body is not valid JSON: {exc}") from None


class _BadBody(Exception):
    pass


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"a.b": ["reason"]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[name] = list(value)
            else:
                out.update(_flatten(value, name))
    elif isinstance(messages, list):
        out[prefix or "_schema"] = [str(m) for m in messages]
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out


def marshmallow_validator(request: Any, **kwargs: Any) -> None:
    """Validate path, query string and body against the view's schemas."""
    request.validated.setdefault("path", dict(request.matchdict or {}))
    for location, schema_cls in schemas_of(kwargs).items():
        schema = _instance(schema_cls)
        if location == "body":
            try:
                data = _body_data(request)
            except _BadBody as exc:
                request.errors.add("body", "body", str(exc))
                continue
            if not isinstance(data, dict) and not schema.many:
                request.errors.add("body", "body", "The body must be a JSON object.")
                continue
        elif location == "querystring":
            data = _query_data(request, schema)
        else:
            data = dict(request.matchdict or {})
        try:
            request.validated[location] = schema.load(data)
        except marshmallow.ValidationError as exc:
            for name, reasons in _flatten(exc.messages).items():
                for reason in reasons:
                    request.errors.add(location, name, reason)
