"""Message delivery: email over a real SMTP server (aiosmtpd on loopback),
SMS providers, and sending only after the transaction commits.

The fixtures ``smtp_server``, ``mailbox`` and ``sms_outbox`` are imported
by the other tests that read the codes the app sends.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from typing import Any

import pytest
import transaction
import webtest
from aiosmtpd.smtp import AuthResult
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from learnsail import delivery, settings as settings_mod
from learnsail.testing import isolated_environ
from learnsail.testing.mail import SmtpServer, start_smtp
from learnsail.testing.services import free_port


# --- helpers ------------------------------------------------------------------------

def _registry_with(settings: dict[str, Any]) -> Any:
    """A bare registry holding a Delivery built from ``settings``."""
    config = Configurator(settings=settings_mod.collect(settings_mod.CORE_SETTINGS, settings, {}))
    config.include("learnsail.delivery")
    config.commit()
    return config.registry


def _smtp_settings(server: SmtpServer, **extra: Any) -> dict[str, Any]:
    return {"learnsail.smtp_host": server.host, "learnsail.smtp_port": str(server.port),
            "learnsail.smtp_starttls": "false", "learnsail.smtp_from": "learnsail <noreply@school.example>",
            **extra}


# --- tests ----------------------------------------------------------------------------

def test_email_goes_out_over_smtp_only_when_the_transaction_commits(smtp_server):
    registry = _registry_with(_smtp_settings(smtp_server))
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        delivery.send_email(registry, "ada@example.edu", "课程提醒 / Reminder", "你好，Ada！", tm=tm)
        assert registry["learnsail.delivery"].wait(1) and smtp_server.messages == []  # not before commit
    assert registry["learnsail.delivery"].wait(10)
    (message,) = smtp_server.messages
    assert message["To"] == "ada@example.edu"
    assert message["From"] == "learnsail <noreply@school.example>"
    assert message["Subject"] == "课程提醒 / Reminder"
    assert message["Message-ID"].endswith("@school.example>")
    assert message.get_body().get_content().strip() == "你好，Ada！"
    assert smtp_server.sink.envelopes[0].rcpt_tos == ["ada@example.edu"]


def test_an_aborted_transaction_sends_nothing(smtp_server):
    registry = _registry_with(_smtp_settings(smtp_server))
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    delivery.send_email(registry, "ada@example.edu", "Never", "This must not leave.", tm=tm)
    delivery.send_sms(registry, "13800138000", "verification_code", {"code": "1", "minutes": 1}, tm=tm)
    tm.abort()
    assert registry["learnsail.delivery"].wait(5)
    assert smtp_server.messages == []


def test_a_failed_request_sends_nothing(smtp_server):
    settings = settings_mod.collect(settings_mod.CORE_SETTINGS, _smtp_settings(smtp_server), {})
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config = Configurator(settings=settings)
    config.include("pyramid_tm")
    config.include("learnsail.delivery")

    def send_then(request: Any) -> Any:
        delivery.send_email(request, "ada@example.edu", request.matchdict["outcome"], "body")
        if request.matchdict["outcome"] == "fail":
            raise RuntimeError("the request fails after queuing the email")
        return request.response

    config.add_route("send", "/send/{outcome}")
    config.add_view(send_then, route_name="send")
    client = webtest.TestApp(config.make_wsgi_app())
    with pytest.raises(RuntimeError):
        client.get("/send/fail")
    assert config.registry["learnsail.delivery"].wait(5)
    assert smtp_server.messages == []
    client.get("/send/ok", status=200)
    assert config.registry["learnsail.delivery"].wait(10)
    assert [m["Subject"] for m in smtp_server.messages] == ["ok"]


def _self_signed(tmp_path: Any) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_starttls_and_login(tmp_path):
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"s3cret")

    server = start_smtp(tls_context=server_tls, require_starttls=True, authenticator=authenticator,
                        auth_require_tls=True)
    try:
        mailer = delivery.SMTPMailer(server.host, server.port, username="mailer", password="s3cret",
                                     starttls=True, ssl_context=ssl.create_default_context(cafile=cert))
        registry = _registry_with(_smtp_settings(server))
        registry["learnsail.delivery"].mailer = mailer
        tm = transaction.TransactionManager(explicit=True)
        with tm:
            delivery.send_email(registry, "ada@example.edu", "Secure", "over TLS", tm=tm)
        assert registry["learnsail.delivery"].wait(10)
        assert [m["Subject"] for m in server.messages] == ["Secure"]
        assert logins == [("mailer", "s3cret")]
        # a server certificate the client does not trust: nothing is sent
        untrusted = delivery.SMTPMailer(server.host, server.port, starttls=True)
        with pytest.raises(ssl.SSLError):
            untrusted.send(registry["learnsail.delivery"].email_message("ada@example.edu", "No", "no"))
        assert len(server.messages) == 1
    finally:
        server.controller.stop()


def test_a_failed_send_is_logged_not_raised(caplog):
    registry = _registry_with({"learnsail.smtp_host": "127.0.0.1", "learnsail.smtp_port": str(free_port()),
                               "learnsail.smtp_starttls": "false", "learnsail.smtp_timeout": "2"})
    tm = transaction.TransactionManager(explicit=True)
    with caplog.at_level(logging.ERROR, logger="learnsail.delivery"):
        with tm:  # commit succeeds although the server is down
            delivery.send_email(registry, "ada@example.edu", "Lost", "nobody listens", tm=tm)
        assert registry["learnsail.delivery"].wait(10)
    assert "delivery of email to ada@example.edu failed" in caplog.text


def test_embedded_defaults_write_to_the_log(caplog):
    registry = _registry_with({})
    sent = registry["learnsail.delivery"]
    assert isinstance(sent.mailer, delivery.ConsoleMailer)
    assert isinstance(sent.sms, delivery.ConsoleSmsProvider)
    tm = transaction.TransactionManager(explicit=True)
    with caplog.at_level(logging.INFO, logger="learnsail.delivery"):
        with tm:
            delivery.send_email(registry, "ada@example.edu", "Hello", "Body text", tm=tm)
            delivery.send_sms(registry, "13800138000", "verification_code", {"code": "654321", "minutes": 10},
                              tm=tm)
        assert sent.wait(10)
    assert "email to ada@example.edu: Hello" in caplog.text and "Body text" in caplog.text
    assert "SMS to 13800138000" in caplog.text and "654321" in caplog.text and "10 分钟" in caplog.text


def test_smtp_settings_select_the_smtp_mailer():
    mailer = delivery.mailer_from_settings(settings_mod.collect(settings_mod.CORE_SETTINGS, {
        "learnsail.smtp_host": "mail.school.example", "learnsail.smtp_user": "u",
        "learnsail.smtp_password": "p"}, {"LEARNSAIL_SMTP_PORT": "2525"}))
    assert isinstance(mailer, delivery.SMTPMailer)
    assert (mailer.host, mailer.port, mailer.username, mailer.password, mailer.starttls) == \
        ("mail.school.example", 2525, "u", "p", True)


def test_unknown_sms_template_fails_the_caller():
    registry = _registry_with({})
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        with pytest.raises(ValueError, match="no_such_template"):
            delivery.send_sms(registry, "13800138000", "no_such_template", {}, tm=tm)


def test_a_plugin_adds_an_sms_provider_and_a_missing_one_stops_startup(tmp_path):
    from learnsail.app import configure

    base = {"learnsail.data_dir": str(tmp_path), "learnsail.plugins": "", "learnsail.secret": "x" * 40}

    class Gateway:
        def __init__(self, settings: Any) -> None:
            self.settings, self.sent = settings, []

        def send(self, phone: str, template: str, params: Any) -> None:
            self.sent.append((phone, template, params))

    config = configure({**base, "learnsail.sms_provider": "gateway"}, environ=isolated_environ())
    config.add_sms_provider("gateway", Gateway)
    app = config.make_wsgi_app()
    assert isinstance(app.registry["learnsail.delivery"].sms, Gateway)
    app.registry["learnsail.db_engine"].dispose()

    config = configure({**base, "learnsail.sms_provider": "nowhere"}, environ=isolated_environ())
    with pytest.raises(ConfigurationError, match="learnsail.sms_provider is 'nowhere'.*console"):
        config.make_wsgi_app()
    config.registry["learnsail.db_engine"].dispose()


def test_a_hook_given_only_a_session_sends_after_its_request_commits(smtp_server):
    """A hook such as learnsail_login_new_device receives a session, not the
    request: send_email(session, ...) rides on that request's transaction."""
    from sqlalchemy.orm import Session

    registry = _registry_with(_smtp_settings(smtp_server))
    tm = transaction.TransactionManager(explicit=True)
    session = Session()
    session.info.update({"learnsail.registry": registry, "learnsail.tm": tm})
    tm.begin()
    delivery.send_email(session, "ada@example.edu", "New sign-in", "From a new device.")
    assert registry["learnsail.delivery"].wait(1) and smtp_server.messages == []
    tm.commit()
    assert registry["learnsail.delivery"].wait(10)
    assert [m["Subject"] for m in smtp_server.messages] == ["New sign-in"]
