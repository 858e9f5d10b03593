"""The error envelope ``{"error": {"code", "message", "details"}}``.

Services raise these domain errors; the core's exception views turn them
(and every HTTP error Pyramid raises itself) into the envelope with the
right status.  The codes are the spec's (000 §六.5).
"""

from __future__ import annotations

from typing import Any

AUTH_FAILED = "AUTH_FAILED"
PERMISSION_DENIED = "PERMISSION_DENIED"
RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
VALIDATION_ERROR = "VALIDATION_ERROR"
CONFLICT = "CONFLICT"
RATE_LIMITED = "RATE_LIMITED"
SERVER_ERROR = "SERVER_ERROR"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


class APIError(Exception):
    """A failure a client can act on.  Subclasses fix status and code."""

    status = 400
    code = VALIDATION_ERROR
    default_message = "The request is invalid."

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None,
                 *, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        return envelope(self.code, self.message, self.details)


class ValidationFailed(APIError):
    """``details`` maps each bad field to a list of reasons."""

    status = 400
    code = VALIDATION_ERROR
    default_message = "The request has invalid fields."

    def __init__(self, details: dict[str, Any] | None = None, message: str | None = None) -> None:
        super().__init__(message, details)


class AuthFailed(APIError):
    status = 401
    code = AUTH_FAILED
    default_message = "Authentication is required or has failed."

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details, headers={"WWW-Authenticate": 'Bearer realm="learnsail"'})


class PermissionDenied(APIError):
    status = 403
    code = PERMISSION_DENIED
    default_message = "You do not have permission to do this."


class NotFound(APIError):
    status = 404
    code = RESOURCE_NOT_FOUND
    default_message = "The resource does not exist."


class Conflict(APIError):
    status = 409
    code = CONFLICT
    default_message = "The request conflicts with the current state."


class RateLimited(APIError):
    status = 429
    code = RATE_LIMITED
    default_message = "Too many requests; retry later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, {"retry_after": retry_after}, headers={"Retry-After": str(retry_after)})


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}
