"""Sending one webhook request: the URL rules, the SSRF guard, the
signature, and an HTTP POST pinned to the address that was checked.

The guard resolves the host once, refuses the request when any of its
addresses is internal (loopback, private, link-local, carrier-grade NAT,
multicast, reserved, unspecified) unless ``learnsail.webhooks_allow_private``
is on, and then connects to that very address -- a DNS answer that changes
between the check and the connection (rebinding) cannot redirect it.
Redirects are not followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse

#: the start of a receiver's answer kept in the attempt log
BODY_EXCERPT = 1000
USER_AGENT = "learnsail-webhooks/1"


class Refused(ValueError):
    """The URL may not be called (scheme, credentials, internal address)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``"<timestamp>.<body>"`` with the
    endpoint's secret (the X-Learnsail-Signature header)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str, tolerance: int = 300,
           now: float | None = None) -> bool:
    """What a receiver does: the signature matches and the timestamp is
    within ``tolerance`` seconds (replays of old requests fail)."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, stamp, body), header or "")


def parse(url: str) -> urllib.parse.SplitResult:
    """The parts of a receiver URL; :class:`Refused` unless it is an
    absolute http(s) URL with a host and without credentials."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("only http:// and https:// URLs can receive webhooks")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise Refused("the URL must not contain a user name or password")
    if port == 0:
        raise Refused("port 0 cannot be called")
    if any(ch in url for ch in "\r\n\t ") or parts.fragment:
        raise Refused("the URL must not contain spaces, line breaks or a #fragment")
    return parts


def is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or ip in ipaddress.ip_network("100.64.0.0/10"))


def resolve(url: str, allow_private: bool) -> tuple[urllib.parse.SplitResult, str]:
    """Check ``url`` and resolve its host: ``(parts, address)`` to connect
    to.  :class:`Refused` for a bad URL, a host that does not resolve, or
    (unless ``allow_private``) one with an internal address."""
    parts = parse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"the host {parts.hostname!r} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise Refused(f"the host {parts.hostname!r} does not resolve")
    if not allow_private:
        internal = [a for a in addresses if is_internal(a)]
        if internal:
            raise Refused(f"the host {parts.hostname!r} resolves to an internal address ({internal[0]}); "
                          f"set learnsail.webhooks_allow_private to call such addresses")
    return parts, addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._ssl = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl.wrap_socket(raw, server_hostname=self.host)


@dataclasses.dataclass
class Outcome:
    """What one attempt gave: the status (None when nothing came back),
    milliseconds, an error text for failures, the start of the answer."""

    status: int | None
    elapsed_ms: int
    error: str | None
    body: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool,
         ssl_context: ssl.SSLContext | None = None) -> Outcome:
    """POST ``body`` to ``url``; a 2xx answer is a success, anything else
    (including no answer within ``timeout`` seconds) a failure."""
    started = time.monotonic()

    def done(status: int | None, error: str | None, text: str | None = None) -> Outcome:
        return Outcome(status, int((time.monotonic() - started) * 1000), error and error[:500], text)

    try:
        parts, address = resolve(url, allow_private)
    except Refused as exc:
        return done(None, f"refused: {exc}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPS(address, parts.hostname, port, timeout,
                                                        ssl_context or ssl.create_default_context())
    else:
        conn = _PinnedHTTP(address, parts.hostname, port, timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        response = conn.getresponse()
        text = response.read(BODY_EXCERPT).decode("utf-8", "replace")
        if 200 <= response.status < 300:
            return done(response.status, None, text)
        return done(response.status, f"the receiver answered {response.status} {response.reason}", text)
    except (OSError, http.client.HTTPException) as exc:
        reason = "no answer within the timeout" if isinstance(exc, TimeoutError | socket.timeout) else \
            f"{type(exc).__name__}: {exc}"
        return done(None, reason)
    finally:
        conn.close()
