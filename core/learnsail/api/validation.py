"""The core's marshmallow validator for Cornice views.

Cornice's bundled marshmallow validator does not work with marshmallow 4,
so the core owns this one.  A view declares ``schema=`` as a Schema class
(the JSON body) or a dict ``{"body": ..., "querystring": ..., "path": ...}``.
Validated data lands in ``request.validated["body" | "querystring" |
"path"]``; every bad field is reported, with its reason, in one 400.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import marshmallow
from marshmallow import fields, validate
from pyramid.httpexceptions import HTTPUnsupportedMediaType

LOCATIONS = ("path", "querystring", "body")

#: the largest row id every backend stores (MariaDB's signed INT, the type
#: of every ``id`` column); ids outside 1..MAX_ID name no row
MAX_ID = 2**31 - 1
#: integers SQLite binds (signed 64-bit): any other one is refused with a
#: 400 wherever a schema took it, so none reaches the database
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def Id(**kwargs: Any) -> fields.Integer:
    """An integer field for a row id: 1..MAX_ID (documented as such)."""
    kwargs.setdefault("strict", False)
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


class UTCInstant(fields.AwareDateTime):
    """An ISO 8601 instant (UTC when no offset is given), loaded in UTC.
    One whose UTC value falls outside years 1..9999 (e.g.
    ``0001-01-01T00:00+01:00``) is a validation error, not an overflow in
    the database layer."""

    default_error_messages = {"range": "Out of the range of dates (years 1 to 9999 in UTC)."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("default_timezone", dt.timezone.utc)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:
        instant = super()._deserialize(value, attr, data, **kwargs)
        try:
            return instant.astimezone(dt.timezone.utc)
        except OverflowError:
            raise self.make_error("range") from None


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
    body = request.body
    if not body:
        return {}
    content_type = (request.content_type or "").lower()
    if content_type and not (content_type == "application/json" or content_type.endswith("+json")):
        raise HTTPUnsupportedMediaType(f"Send the body as application/json, not {content_type}.")
    try:
        return json.loads(body.decode(request.charset or "utf-8"))
    except (ValueError, UnicodeDecodeError, LookupError) as exc:
        raise _BadBody(f"The body is not valid JSON: {exc}") from None


def _walk(value: Any, name: str = "") -> Any:
    """``(dotted name, value)`` of every scalar in loaded data (keys too)."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{name}.{key}" if name else str(key)
            yield child, key
            yield from _walk(item, child)
    elif isinstance(value, (list, tuple, set)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{name}.{index}" if name else str(index))
    else:
        yield name or "_schema", value


def _unstorable(data: Any) -> dict[str, str]:
    """Values no database can take: integers beyond 64 bits, text with lone
    surrogates (JSON's ``"\\ud800"``), which UTF-8 cannot encode."""
    problems: dict[str, str] = {}
    for name, value in _walk(data):
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT64_MIN <= value <= INT64_MAX:
                problems.setdefault(name, f"Must be between {INT64_MIN} and {INT64_MAX}.")
        elif isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                problems.setdefault(name, "Not valid Unicode text (it contains a lone surrogate).")
    return problems


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
            loaded = schema.load(data)
        except marshmallow.ValidationError as exc:
            for name, reasons in _flatten(exc.messages).items():
                for reason in reasons:
                    request.errors.add(location, name, reason)
            continue
        problems = _unstorable(loaded)
        for name, reason in problems.items():
            request.errors.add(location, name, reason)
        if not problems:
            request.validated[location] = loaded
