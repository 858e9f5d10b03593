"""Authorisation matrices: one request per actor, every status checked,
every mismatch reported at once.

    from learnsail.testing.authz import check_matrix

    def test_roles_are_admin_only(testapp, actor_headers):
        check_matrix(testapp, actor_headers, "GET", "/api/v1/roles", {
            "anonymous": 401, "student": 403, "other_student": 403,
            "teacher": 403, "other_teacher": 403, "admin": 200})

The matrix must name every actor of ``headers_by_actor`` (so adding an
actor to the fixtures cannot leave an endpoint untested for it); copy
``ADMIN_ONLY`` or ``SIGNED_IN`` and adjust (``{**ADMIN_ONLY, "teacher":
200}``).  Actors are served in the order of ``expected``: put the one
whose request succeeds (and changes something) last.  A 401 or 403 must
come with the error envelope and its code.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["check_matrix", "AuthorisationMismatch", "ADMIN_ONLY", "SIGNED_IN"]

#: the usual expectations, to copy and adjust
ADMIN_ONLY = {"anonymous": 401, "student": 403, "other_student": 403, "teacher": 403,
              "other_teacher": 403, "admin": 200}
SIGNED_IN = {"anonymous": 401, "student": 200, "other_student": 200, "teacher": 200,
             "other_teacher": 200, "admin": 200}

_CODES = {401: "AUTH_FAILED", 403: "PERMISSION_DENIED"}


class AuthorisationMismatch(AssertionError):
    """Some actors got a status the matrix did not expect."""


def _headers(value: Any) -> dict[str, str]:
    # a header dict, or anything carrying .headers (an ActorClient)
    return dict(getattr(value, "headers", value) or {})


def check_matrix(testapp: Any, headers_by_actor: Mapping[str, Any], method: str, url: str,
                 expected: Mapping[str, int], json: Any = None, params: Any = None) -> dict[str, Any]:
    """Send ``method url`` as each actor and compare the statuses with
    ``expected`` (``{actor: status}``).

    ``json`` is the request body, or a callable ``json(actor)`` giving one
    per actor (e.g. unique names).  ``params`` is the query string.
    Returns ``{actor: response}``; raises :class:`AuthorisationMismatch`
    listing every actor that got something else.
    """
    missing = set(headers_by_actor) - set(expected)
    unknown = set(expected) - set(headers_by_actor)
    if missing or unknown:
        raise ValueError(f"the matrix must name exactly the actors {sorted(headers_by_actor)}: "
                         f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    target = url + ("&" if "?" in url else "?") + _query(params) if params else url
    responses: dict[str, Any] = {}
    problems: list[str] = []
    for actor, status in expected.items():
        body = json(actor) if callable(json) else json
        kwargs: dict[str, Any] = {"method": method.upper(), "headers": _headers(headers_by_actor[actor]),
                                  "expect_errors": True}
        if body is not None:
            kwargs.update(body=_encode(body), content_type="application/json")
        response = testapp.request(target, **kwargs)
        responses[actor] = response
        if response.status_int != status:
            problems.append(f"  {actor}: expected {status}, got {response.status_int} {_excerpt(response)}")
        elif status in _CODES and _error_code(response) != _CODES[status]:
            problems.append(f"  {actor}: {status} without the {_CODES[status]} envelope: {_excerpt(response)}")
    if problems:
        raise AuthorisationMismatch(f"{method.upper()} {url}:\n" + "\n".join(problems))
    return responses


def _encode(body: Any) -> bytes:
    import json as json_mod

    return json_mod.dumps(body).encode("utf-8")


def _query(params: Any) -> str:
    from urllib.parse import urlencode

    return urlencode(params, doseq=True)


def _error_code(response: Any) -> str | None:
    try:
        return response.json["error"]["code"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _excerpt(response: Any) -> str:
    text = response.text if response.body else ""
    return text[:200]

