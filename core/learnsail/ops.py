"""Operations: request ids and JSON logs, metrics, health, security
headers, CORS, body-size limit, API version negotiation.

One tween does the per-request work so the core's overhead stays small.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import secrets
import urllib.parse
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from learnsail import errors

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
log = logging.getLogger("learnsail.access")

REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
VENDOR_ACCEPT = re.compile(r"application/vnd\.learnsail\.v(\d+)\+json")
SUPPORTED_VERSIONS = {"1"}

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


class JSONFormatter(logging.Formatter):
    """One JSON object per line, with the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            payload["request_id"] = request_id
        for key in ("method", "path", "status", "duration_ms", "route"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(settings: dict[str, Any]) -> None:
    root = logging.getLogger("learnsail")
    if getattr(root, "_learnsail_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if settings.get("learnsail.log_format", "json") == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(str(settings.get("learnsail.log_level", "INFO")).upper())
    root.propagate = False
    root._learnsail_configured = True  # type: ignore[attr-defined]


class Metrics:
    """The app's Prometheus registry and the core's request metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("learnsail_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("learnsail_http_request_duration_seconds", "Request latency by route",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def _error_response(request: Any, status: int, code: str, message: str, details: dict | None = None) -> Response:
    from learnsail.api.errorviews import render_envelope

    return render_envelope(request, status, code, message, details)


def _not_utf8(environ: dict) -> str | None:
    """The part of the URL that is not UTF-8 ("path" or "query string"), or
    None.  WebOb decodes both as UTF-8 on every access to ``request.path``
    or ``request.GET``: such a URL used to crash even the error views."""
    path = environ.get("PATH_INFO", "")
    if not path.isascii():
        try:
            path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            # keep request.path readable for the access log
            environ["PATH_INFO"] = (path.encode("latin-1", "replace").decode("utf-8", "replace")
                                    .encode("utf-8").decode("latin-1"))
            return "path"
    query = environ.get("QUERY_STRING", "")
    if query and ("%" in query or not query.isascii()):
        try:
            urllib.parse.unquote_to_bytes(query.encode("latin-1")).decode("utf-8")
        except UnicodeError:
            return "query string"
    return None


def core_tween_factory(handler: Callable, registry: Any) -> Callable:
    settings = registry.settings
    max_body = int(settings.get("learnsail.max_body_size", 10 * 1024 * 1024))
    origins = set(settings.get("learnsail.cors_origins") or ())
    metrics: Metrics = registry["learnsail.metrics"]
    # prometheus label lookups cost microseconds: keep the children
    counters: dict[tuple[str, str, int], Any] = {}
    histograms: dict[tuple[str, str], Any] = {}
    static_headers = [*SECURITY_HEADERS, ("Content-Security-Policy", API_CSP)]

    def tween(request: Any) -> Any:
        start = time.perf_counter()
        environ = request.environ
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if incoming and REQUEST_ID_OK.match(incoming) else secrets.token_hex(16)
        request.request_id = request_id
        token = request_id_var.set(request_id)
        origin = environ.get("HTTP_ORIGIN")
        try:
            query = environ.get("QUERY_STRING")
            bad = None
            if not environ.get("PATH_INFO", "").isascii() or (query and ("%" in query or not query.isascii())):
                bad = _not_utf8(environ)
            if bad is not None:
                response = _error_response(request, 400, errors.VALIDATION_ERROR, "The request is invalid.",
                                           {"url": [f"The {bad} is not valid UTF-8."]})
            # the guard only has work when one of these is present
            elif origin or environ.get("CONTENT_LENGTH", "0") not in ("", "0") or environ.get("HTTP_TRANSFER_ENCODING") \
                    or "vnd.learnsail" in environ.get("HTTP_ACCEPT", ""):
                response = _guard(request, max_body, origins, origin)
                if response is None:
                    response = handler(request)
            else:
                response = handler(request)
        finally:
            request_id_var.reset(token)
        headerlist = response.headerlist
        present = {name.lower() for name, _ in headerlist}
        headerlist.append(("X-Request-ID", request_id))
        for name, value in static_headers:
            if name.lower() not in present:
                headerlist.append((name, value))
        if environ.get("wsgi.url_scheme") == "https" and "strict-transport-security" not in present:
            headerlist.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
        if origin and origin in origins:
            headers = response.headers
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"
            headers["Vary"] = "Origin"
        elapsed = time.perf_counter() - start
        matched = request.matched_route
        route = matched.name if matched is not None else "<unmatched>"
        method = request.method
        status = response.status_code
        counter = counters.get((method, route, status))
        if counter is None:
            counter = counters[(method, route, status)] = metrics.requests.labels(method, route, str(status))
        counter.inc()
        histogram = histograms.get((method, route))
        if histogram is None:
            histogram = histograms[(method, route)] = metrics.latency.labels(method, route)
        histogram.observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            token = request_id_var.set(request_id)
            log.info("%s %s %s", method, request.path, status,
                     extra={"method": method, "path": request.path, "route": route,
                            "status": status, "duration_ms": round(elapsed * 1000, 2)})
            request_id_var.reset(token)
        return response

    return tween


def body_limit_of(registry: Any, path: str) -> int | None:
    """The body limit a route set for itself in ``registry["learnsail.body_limits"]``
    (uploads, which read their body as a stream and stop at that limit), or
    None.  A key is a path, or a prefix ending in ``/`` for routes with an id
    in the path (``/api/v1/videos/tus/``); the exact path wins, then the
    longest prefix."""
    limits = registry.get("learnsail.body_limits")
    if not limits:
        return None
    if path in limits:
        return limits[path]
    best = None
    for key in limits:
        if key.endswith("/") and path.startswith(key) and (best is None or len(key) > len(best)):
            best = key
    return limits[best] if best is not None else None


def _guard(request: Any, max_body: int, origins: set[str], origin: str | None) -> Response | None:
    """Answer directly what must not reach a view: CORS preflights, bodies
    over the limit, API versions this server does not speak."""
    if request.method == "OPTIONS" and origin and request.headers.get("Access-Control-Request-Method"):
        if origin not in origins:
            return _error_response(request, 403, errors.PERMISSION_DENIED,
                                   "You do not have permission to do this.",
                                   {"origin": f"{origin} is not in learnsail.cors_origins"})
        response = Response(status=204)
        response.headers.update({
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers",
                                                                "Authorization, Content-Type"),
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        })
        return response
    length = request.content_length
    own_limit = body_limit_of(request.registry, request.path)
    limit = max_body if own_limit is None else own_limit
    if length is not None and length > limit:
        return _error_response(request, 413, errors.PAYLOAD_TOO_LARGE, "The request body is too large.",
                               {"max_bytes": limit})
    streamed = own_limit is not None
    if length is None and request.headers.get("Transfer-Encoding", "").lower() == "chunked" and not streamed:
        # routes with a limit of their own (uploads) read the body as a stream
        # and stop at their limit; the others are small enough to buffer here
        body = request.body_file.read(limit + 1)
        if len(body) > limit:
            return _error_response(request, 413, errors.PAYLOAD_TOO_LARGE, "The request body is too large.",
                                   {"max_bytes": limit})
        request.body = body
    accept = request.headers.get("Accept", "")
    if "vnd.learnsail" in accept:
        versions = set(VENDOR_ACCEPT.findall(accept))
        if versions and not versions & SUPPORTED_VERSIONS and "*/*" not in accept \
                and "application/json" not in accept:
            return _error_response(request, 406, errors.NOT_ACCEPTABLE,
                                   "The requested representation is not available.",
                                   {"supported": ["application/vnd.learnsail.v1+json", "application/json"]})
    return None


def healthz_view(request: Any) -> Response:
    """Readiness: every check (database, and what plugins add) must pass."""
    checks: dict[str, Any] = {}
    healthy = True
    for name, check in request.registry["learnsail.health_checks"].items():
        try:
            check()
            checks[name] = {"status": "ok"}
        except Exception as exc:  # a failing dependency is reported, not raised
            healthy = False
            checks[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
            logging.getLogger("learnsail.health").warning("health check %s failed: %s", name, exc)
    body = {"status": "ok" if healthy else "error", "checks": checks}
    response = Response(status=200 if healthy else 503, content_type="application/json", charset="utf-8")
    response.text = json.dumps(body)
    response.cache_control = "no-store"
    return response


def metrics_view(request: Any) -> Response:
    allowed = request.registry.settings.get("learnsail.metrics_allow") or ()
    if "*" not in allowed and request.client_addr not in allowed:
        return _error_response(request, 403, errors.PERMISSION_DENIED, "You do not have permission to do this.",
                               {"reason": "Your address is not in learnsail.metrics_allow."})
    data = generate_latest(request.registry["learnsail.metrics"].registry)
    return Response(body=data, content_type=CONTENT_TYPE_LATEST.split(";")[0], charset="utf-8")


def includeme(config: Any) -> None:
    settings = config.get_settings()
    configure_logging(settings)
    config.registry["learnsail.metrics"] = Metrics()
    config.add_tween("learnsail.ops.core_tween_factory", over="pyramid_tm.tm_tween_factory")
    config.add_route("learnsail.healthz", "/healthz")
    config.add_view(healthz_view, route_name="learnsail.healthz", permission=NO_PERMISSION_REQUIRED,
                    request_method="GET")
    if settings.get("learnsail.metrics_enabled", True):
        config.add_route("learnsail.metrics", "/metrics")
        config.add_view(metrics_view, route_name="learnsail.metrics", permission=NO_PERMISSION_REQUIRED,
                        request_method="GET")
