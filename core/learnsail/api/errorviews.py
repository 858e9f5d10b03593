"""Exception views: every error leaves as the envelope, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from pyramid.httpexceptions import HTTPException
from pyramid.response import Response

from learnsail import errors
from learnsail.api.i18n import translate

log = logging.getLogger("learnsail.errors")

STATUS_CODES = {
    400: errors.VALIDATION_ERROR,
    401: errors.AUTH_FAILED,
    403: errors.PERMISSION_DENIED,
    404: errors.RESOURCE_NOT_FOUND,
    405: errors.METHOD_NOT_ALLOWED,
    406: errors.NOT_ACCEPTABLE,
    409: errors.CONFLICT,
    413: errors.PAYLOAD_TOO_LARGE,
    415: errors.UNSUPPORTED_MEDIA_TYPE,
    429: errors.RATE_LIMITED,
    503: errors.SERVICE_UNAVAILABLE,
}

DEFAULT_MESSAGES = {
    errors.VALIDATION_ERROR: "The request is invalid.",
    errors.AUTH_FAILED: "Authentication is required or has failed.",
    errors.PERMISSION_DENIED: "You do not have permission to do this.",
    errors.RESOURCE_NOT_FOUND: "The resource does not exist.",
    errors.METHOD_NOT_ALLOWED: "This method is not allowed here.",
    errors.NOT_ACCEPTABLE: "The requested representation is not available.",
    errors.CONFLICT: "The request conflicts with the current state.",
    errors.PAYLOAD_TOO_LARGE: "The request body is too large.",
    errors.UNSUPPORTED_MEDIA_TYPE: "The request body has an unsupported media type.",
    errors.RATE_LIMITED: "Too many requests; retry later.",
    errors.SERVICE_UNAVAILABLE: "The service is temporarily unavailable.",
    errors.SERVER_ERROR: "An internal error occurred; it has been logged.",
}


def render_envelope(request: Any, status: int, code: str, message: str,
                    details: dict | None = None, headers: dict | None = None) -> Response:
    body = errors.envelope(code, translate(request, message), details)
    response = Response(status=status, charset="utf-8", content_type="application/json")
    response.text = request.registry["learnsail.json_dumps"](body)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def api_error_view(exc: errors.APIError, request: Any) -> Response:
    return render_envelope(request, exc.status, exc.code, exc.message, exc.details, exc.headers)


def http_exception_view(exc: HTTPException, request: Any) -> Response:
    status = exc.status_int
    if status < 400:  # redirects and the like pass through untouched
        return exc
    code = STATUS_CODES.get(status, errors.SERVER_ERROR if status >= 500 else errors.VALIDATION_ERROR)
    headers: dict[str, str] = {}
    if status == 403 and request.authenticated_userid is None:
        # Permission denied to an anonymous caller: they must authenticate.
        status, code = 401, errors.AUTH_FAILED
        headers["WWW-Authenticate"] = 'Bearer realm="learnsail"'
    if status == 405 and exc.headers.get("Allow"):
        headers["Allow"] = exc.headers["Allow"]
    message = DEFAULT_MESSAGES.get(code, exc.title)
    details: dict[str, Any] = {}
    if exc.detail and status not in (401, 403, 404):
        details["reason"] = str(exc.detail)
    return render_envelope(request, status, code, message, details, headers)


def _will_retry(request: Any, exc: Exception) -> bool:
    """Whether pyramid_retry replays the request after ``exc`` (a transient
    database error such as SQLite's "database is locked", not the last
    attempt): the client never sees this response."""
    try:
        from pyramid_retry import is_last_attempt

        return not is_last_attempt(request) and bool(request.tm.get().isRetryableError(exc))
    except Exception:  # no transaction, no retry policy: an ordinary error
        return False


def server_error_view(exc: Exception, request: Any) -> Response:
    if _will_retry(request, exc):
        # pyramid_tm tags errors raised in the view, but not those of the
        # commit (a write flushed only then, like a sign-in's log entry):
        # tag them here so that pyramid_retry replays the request too
        from pyramid_retry import IRetryableError
        from zope.interface import alsoProvides

        alsoProvides(exc, IRetryableError)
        log.warning("retrying %s %s after a transient error: %s", request.method, request.path_qs,
                    str(exc).partition("\n")[0])
    else:
        log.error("unhandled error on %s %s", request.method, request.path_qs, exc_info=exc)
    details = {"request_id": getattr(request, "request_id", None)}
    return render_envelope(request, 500, errors.SERVER_ERROR, DEFAULT_MESSAGES[errors.SERVER_ERROR], details)


def includeme(config: Any) -> None:
    common: dict = {}
    config.add_exception_view(api_error_view, context=errors.APIError, **common)
    config.add_exception_view(http_exception_view, context=HTTPException, **common)
    config.add_exception_view(server_error_view, context=Exception, **common)
