"""Message delivery: email over SMTP and SMS through a provider.

    from learnsail.delivery import send_email, send_sms

    send_email(request, "ada@example.edu", "Welcome", "Hello Ada")
    send_sms(request, "+8613800138000", "verification_code", {"code": "123456", "minutes": 10})

Nothing is sent when it is called: the message is queued on the current
transaction and handed over only after that transaction commits, so a
request that fails sends nothing.  It is then sent off the request thread,
so a slow mail server delays no response (and response times do not tell
whether an account exists).

Email goes through ``learnsail.smtp_host`` (STARTTLS and login when
configured); with no host it is written to the log, the embedded default.
SMS goes through the provider named by ``learnsail.sms_provider``: the core
ships ``console`` (writes to the log, for development); a plugin adds a real
one with ``config.add_sms_provider(name, factory)``.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Callable, Mapping, Protocol

from pyramid.exceptions import ConfigurationError

from learnsail.aftercommit import on_commit, registry_of

log = logging.getLogger("learnsail.delivery")

#: texts of the SMS templates the core sends.  Providers that need templates
#: approved in advance (most Chinese SMS gateways) map these names to theirs.
SMS_TEMPLATES: dict[str, str] = {
    "verification_code": "【learnsail】您的验证码是 {code}，{minutes} 分钟内有效。"
                         "Your verification code is {code}; it expires in {minutes} minutes.",
}


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` (From, To and Subject are set) or raise."""


class SmsProvider(Protocol):
    def send(self, phone: str, template: str, params: Mapping[str, Any]) -> None:
        """Deliver the SMS ``template`` (a key of :data:`SMS_TEMPLATES` or a
        plugin's) with ``params`` to ``phone`` (E.164) or raise."""


def render_sms(template: str, params: Mapping[str, Any]) -> str:
    """The text of an SMS template, for providers that send free text."""
    try:
        return SMS_TEMPLATES[template].format(**params)
    except KeyError as exc:
        raise ValueError(f"SMS template {template!r} is unknown or misses the parameter {exc}") from None


class SMTPMailer:
    """Sends through an SMTP server, one connection per message."""

    def __init__(self, host: str, port: int, *, username: str = "", password: str = "",
                 starttls: bool = True, timeout: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.starttls, self.timeout = starttls, timeout
        self.ssl_context = ssl_context

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)


class ConsoleMailer:
    """The embedded default (no SMTP host): writes each email to the log."""

    def send(self, message: EmailMessage) -> None:
        log.info("email to %s: %s\n%s", message["To"], message["Subject"], message.get_body().get_content())


class ConsoleSmsProvider:
    """The development SMS provider: writes each message to the log."""

    def send(self, phone: str, template: str, params: Mapping[str, Any]) -> None:
        log.info("SMS to %s: %s", phone, render_sms(template, params))


class Delivery:
    """The app's outgoing channels and the worker threads that send."""

    def __init__(self, mailer: Mailer, sms: SmsProvider, sender: str) -> None:
        self.mailer = mailer
        self.sms = sms
        self.sender = sender
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future] = set()
        self._lock = threading.Lock()

    def email_message(self, to: str, subject: str, body: str, html: str | None = None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2].strip("> ") or None)
        message.set_content(body)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    def submit(self, what: str, send: Callable[..., None], *args: Any) -> None:
        """Run ``send(*args)`` on a worker thread; a failure is logged with ``what``."""
        with self._lock:
            if self._executor is None:  # created on first use: safe across a pre-fork server
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="learnsail-delivery")
            future = self._executor.submit(_send_logged, what, send, args)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message was handed over (tests, CLI
        commands about to exit).  False if some are still pending."""
        with self._lock:
            pending = set(self._pending)
        done, not_done = wait(pending, timeout=timeout)
        return not not_done


def _send_logged(what: str, send: Callable[..., None], args: tuple) -> None:
    try:
        send(*args)
    except Exception:  # a failed send must not kill the worker; it is logged for the operator
        log.exception("delivery of %s failed", what)


# --- queuing on the transaction ---------------------------------------------

def _after_commit(target: Any, tm: Any, what: str, send: Callable[..., None], *args: Any) -> None:
    delivery: Delivery = registry_of(target)["learnsail.delivery"]
    on_commit(target, delivery.submit, what, send, delivery, *args, tm=tm, what=what)


# the channels are looked up when sending, so swapping one (tests) takes effect at once
def _send_email(delivery: Delivery, message: EmailMessage) -> None:
    delivery.mailer.send(message)


def _send_sms(delivery: Delivery, to: str, template: str, params: Mapping[str, Any]) -> None:
    delivery.sms.send(to, template, params)


def send_email(target: Any, to: str, subject: str, body: str, *, html: str | None = None,
               tm: Any = None) -> None:
    """Send an email once the current transaction commits.

    ``target`` is the request (its transaction), a request's SQLAlchemy
    session (what a hook receives; its request's transaction), or the
    registry (then the
    transaction of ``tm``, or of the thread's default manager).  The message
    is built now, so a malformed address fails the caller, not the send.
    """
    delivery: Delivery = registry_of(target)["learnsail.delivery"]
    message = delivery.email_message(to, subject, body, html)
    _after_commit(target, tm, f"email to {to}", _send_email, message)


def send_sms(target: Any, to: str, template: str, params: Mapping[str, Any], *, tm: Any = None) -> None:
    """Send the SMS ``template`` with ``params`` to ``to`` once the current
    transaction commits (``target`` and ``tm`` as for :func:`send_email`)."""
    if template not in SMS_TEMPLATES:
        raise ValueError(f"SMS template {template!r} is unknown; add it to learnsail.delivery.SMS_TEMPLATES")
    _after_commit(target, tm, f"SMS to {to}", _send_sms, to, template, dict(params))


# --- configuration ------------------------------------------------------------

SMS_PROVIDERS_KEY = "learnsail.sms_providers"


def add_sms_provider(config: Any, name: str, factory: Callable[[Mapping[str, Any]], SmsProvider]) -> None:
    """Make an SMS provider selectable with ``learnsail.sms_provider = name``.
    ``factory(settings)`` builds it (reading the plugin's own settings)."""
    config.registry.setdefault(SMS_PROVIDERS_KEY, {})[name] = factory


def mailer_from_settings(settings: Mapping[str, Any]) -> Mailer:
    host = settings.get("learnsail.smtp_host") or ""
    if not host:
        return ConsoleMailer()
    return SMTPMailer(host, int(settings.get("learnsail.smtp_port") or 587),
                      username=settings.get("learnsail.smtp_user") or "",
                      password=settings.get("learnsail.smtp_password") or "",
                      starttls=bool(settings.get("learnsail.smtp_starttls", True)),
                      timeout=float(settings.get("learnsail.smtp_timeout") or 10))


def build_delivery(registry: Any) -> Delivery:
    settings = registry.settings
    name = settings.get("learnsail.sms_provider") or "console"
    providers = registry.get(SMS_PROVIDERS_KEY, {})
    if name not in providers:
        raise ConfigurationError(
            f"learnsail.sms_provider is {name!r}, which no enabled plugin provides "
            f"(available: {', '.join(sorted(providers))}); set LEARNSAIL_SMS_PROVIDER to one of them "
            f"or enable the plugin that adds it.")
    return Delivery(mailer_from_settings(settings), providers[name](settings),
                    settings.get("learnsail.smtp_from") or "noreply@localhost")


def includeme(config: Any) -> None:
    config.add_directive("add_sms_provider", add_sms_provider)
    config.add_sms_provider("console", lambda settings: ConsoleSmsProvider())

    def register() -> None:
        # at commit, once every plugin has had the chance to add its provider
        config.registry["learnsail.delivery"] = build_delivery(config.registry)

    config.action("learnsail.delivery", register)
