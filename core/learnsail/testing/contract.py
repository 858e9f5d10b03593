"""Does a live answer match what ``/api/openapi.json`` documents for it?

:func:`mismatches` checks a response body against the schema the document
gives for that operation and status: a field the schema does not name
(where it allows no others), a field of another JSON type, a required
field missing.  Enough of JSON Schema for what the core's generator writes
(``$ref`` to components, ``type`` lists, objects, arrays); formats and
ranges are not checked.  Plugins use it to pin the answers a fuzzer once
found outside their documented schema."""

from __future__ import annotations

import re
from typing import Any

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def response_schema(document: dict, method: str, path: str, status: int | str) -> dict:
    """The JSON schema documented for ``method path`` answering ``status``
    (``{}``, anything, when the answer is documented without one)."""
    operation = document["paths"][path][method.lower()]
    response = operation["responses"][str(status)]
    content = response.get("content") or {}
    return (content.get("application/json") or {}).get("schema") or {}


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _matches_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = _TYPES.get(kind)
    return expected is None or isinstance(value, expected)


def check(document: dict, schema: dict, value: Any, where: str = "") -> list[str]:
    """What is wrong with ``value`` against ``schema`` (empty: nothing)."""
    schema = _resolve(document, schema)
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            tried = [check(document, alternative, value, where) for alternative in schema[keyword]]
            if all(tried):
                return [f"{where or '/'}: matches none of its {keyword}: " + "; ".join(p[0] for p in tried)]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_matches_type(value, kind) for kind in kinds):
            return [f"{where or '/'}: {value!r:.60} is not {' or '.join(kinds)}"]
    problems: list[str] = []
    if isinstance(value, dict) and ("properties" in schema or "additionalProperties" in schema):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}/{name}: required, missing")
        for name, item in value.items():
            if name in properties:
                problems += check(document, properties[name], item, f"{where}/{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}/{name}: not documented")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += check(document, schema["additionalProperties"], item, f"{where}/{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += check(document, schema["items"], item, f"{where}/{i}")
    return problems


def mismatches(document: dict, method: str, path: str, response: Any) -> list[str]:
    """What is wrong with a WebTest ``response`` to ``method path`` (the
    documented path, ``{id}`` and all) against its documented schema."""
    return [f"{method.upper()} {path} {response.status_int}: {problem}"
            for problem in check(document, response_schema(document, method, path, response.status_int),
                                 response.json)]


def documented_path(document: dict, url: str) -> str:
    """The documented path template that ``url`` (no query) falls under."""
    for template in document["paths"]:
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, url):
            return template
    raise KeyError(url)
