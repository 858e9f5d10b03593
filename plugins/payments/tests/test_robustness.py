"""What fuzzing the OpenAPI contract of the payments routes found (as in
tests/test_fuzz_regressions.py): each request here once got a 500, a
response that broke its documented schema, or a document that OpenAPI
tools refused."""

from __future__ import annotations

from numbers import Number


def _bounds(node, where=""):
    """Every ``minimum``/``maximum`` of a JSON document, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, dict):
                yield f"{where}/{key}", value
            else:
                yield from _bounds(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _bounds(value, f"{where}/{i}")


def test_money_bounds_in_the_openapi_document_are_numbers(testapp):
    """A Decimal field's Range (prices, amounts, discounts) was written as
    the string "99999999.00": no JSON Schema number, so schemathesis (and
    any OpenAPI client generator) refused every operation carrying one."""
    document = testapp.get("/api/openapi.json").json
    bounds = dict(_bounds(document))
    amount = [where for where in bounds if "/api/v1/orders/{id}/refund" in where or "Refund" in where]
    assert amount, "the refund amount has a documented range"
    wrong = {where: value for where, value in bounds.items()
             if not isinstance(value, Number) or isinstance(value, bool)}
    assert not wrong, wrong
