"""Test fixtures for email and SMS: a real SMTP server (aiosmtpd) on
loopback, and the app's deliveries captured per test.

- ``smtp_server``: the server, emptied at the start of each test;
- ``mailbox``: the app under test sends its email through ``smtp_server``;
  ``mailbox.delivered()`` waits for pending sends and returns the messages;
- ``sms_outbox``: the app's SMS are kept; ``sms_outbox.delivered()``.
"""

from __future__ import annotations

import email
import email.policy
import threading
from typing import Any, Iterator

import pytest

from learnsail import delivery
from learnsail.testing.services import ServiceUnavailable, free_port

__all__ = ["SmtpSink", "SmtpServer", "start_smtp", "_smtp_server", "smtp_server", "Mailbox", "mailbox",
           "SmsOutbox", "sms_outbox"]


class SmtpSink:
    """An aiosmtpd handler keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[Any] = []
        self.logins: list[str] = []
        self.received = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.received:
            self.envelopes.append(envelope)
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            self.received.notify_all()
        return "250 OK"

    def clear(self) -> None:
        with self.received:
            self.messages.clear()
            self.envelopes.clear()
            self.logins.clear()


class SmtpServer:
    def __init__(self, host: str, port: int, sink: SmtpSink, controller: Any) -> None:
        self.host, self.port, self.sink, self.controller = host, port, sink, controller

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        return self.sink.messages


def start_smtp(**smtp_options: Any) -> SmtpServer:
    """Start an SMTP server on a free loopback port (aiosmtpd)."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        raise ServiceUnavailable("aiosmtpd is not installed (pip install aiosmtpd)") from None
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    return SmtpServer("127.0.0.1", port, sink, controller)


@pytest.fixture(scope="session")
def _smtp_server() -> Iterator[SmtpServer]:
    from learnsail.testing import unavailable

    try:
        server = start_smtp()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    yield server
    server.controller.stop()


@pytest.fixture
def smtp_server(_smtp_server: SmtpServer) -> SmtpServer:
    """A real SMTP server on loopback; empty at the start of each test."""
    _smtp_server.sink.clear()
    return _smtp_server


class Mailbox:
    """What the app under test sent to the SMTP server."""

    def __init__(self, registry: Any, server: SmtpServer) -> None:
        self.registry, self.server = registry, server

    def delivered(self) -> list[email.message.EmailMessage]:
        assert self.registry["learnsail.delivery"].wait(10), "a message was still being sent after 10 s"
        return list(self.server.messages)


@pytest.fixture
def mailbox(app: Any, smtp_server: SmtpServer, monkeypatch: Any) -> Mailbox:
    """The app's email goes through SMTP to ``smtp_server`` in this test."""
    mailer = delivery.SMTPMailer(smtp_server.host, smtp_server.port, starttls=False, timeout=5)
    monkeypatch.setattr(app.registry["learnsail.delivery"], "mailer", mailer)
    return Mailbox(app.registry, smtp_server)


class SmsOutbox:
    """A provider keeping the SMS the app sends: ``(phone, template, params)``."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self._sent: list[tuple[str, str, dict]] = []

    def send(self, phone: str, template: str, params: Any) -> None:
        delivery.render_sms(template, params)  # what a text gateway would send must render
        self._sent.append((phone, template, dict(params)))

    def delivered(self) -> list[tuple[str, str, dict]]:
        assert self.registry["learnsail.delivery"].wait(10)
        return list(self._sent)


@pytest.fixture
def sms_outbox(app: Any, monkeypatch: Any) -> SmsOutbox:
    outbox = SmsOutbox(app.registry)
    monkeypatch.setattr(app.registry["learnsail.delivery"], "sms", outbox)
    return outbox
