"""Settings: declared once with a default and a description, read from the ini
file and overridden by ``LEARNSAIL_*`` environment variables.

Every setting has a name like ``learnsail.<key>`` (core) or
``learnsail.<plugin>.<key>`` (a plugin's, declared through the
``learnsail_settings`` hook).  Its environment variable is the name upper-cased
with dots replaced by underscores: ``learnsail.database_url`` ->
``LEARNSAIL_DATABASE_URL``.  Precedence: default < ini file < environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping


class SettingError(ValueError):
    """A setting has a value that cannot be used (the message names it)."""


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def as_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [part for part in str(value).replace(",", " ").split() if part]


def as_int(value: Any) -> int:
    return int(str(value).strip())


def as_str(value: Any) -> str:
    return str(value).strip()


@dataclass(frozen=True)
class Setting:
    """One documented setting.

    ``parse`` turns the raw string (ini or env) into the value the code uses.
    """

    name: str
    default: Any
    description: str
    parse: Callable[[Any], Any] = as_str

    @property
    def env_var(self) -> str:
        return env_name(self.name)


def env_name(name: str) -> str:
    return name.upper().replace(".", "_").replace("-", "_")


CORE_SETTINGS: tuple[Setting, ...] = (
    Setting("learnsail.plugins", "*",
            "Plugins to enable: names separated by spaces or commas, `*` for every installed plugin, "
            "or empty for the core alone.",
            as_list),
    Setting("learnsail.data_dir", "./var",
            "Directory for embedded data (the SQLite database, local files)."),
    Setting("learnsail.database_url", "",
            "SQLAlchemy URL of the database. Empty: SQLite at `<data_dir>/learnsail.sqlite`. "
            "MySQL/MariaDB: `mysql+mysqldb://user:pass@host/db?charset=utf8mb4`."),
    Setting("learnsail.database_pool_size", 10, "Connections kept open per process (MySQL).", as_int),
    Setting("learnsail.database_max_overflow", 20, "Extra connections allowed under load (MySQL).", as_int),
    Setting("learnsail.database_pool_recycle", 3600,
            "Seconds after which a pooled connection is replaced (keep below MySQL's wait_timeout).", as_int),
    Setting("learnsail.database_echo", False, "Log every SQL statement (debugging only).", as_bool),
    Setting("learnsail.secret", "",
            "Secret key for signing tokens and URLs. Empty: a random key is generated once and kept "
            "in `<data_dir>/secret.key` (set it explicitly when running several app processes)."),
    Setting("learnsail.jwt_algorithm", "HS256",
            "JWT signing algorithm: HS256 (default, keyed by learnsail.secret) or RS256 "
            "(with learnsail.jwt_private_key / learnsail.jwt_public_key). Tokens signed otherwise are refused."),
    Setting("learnsail.jwt_access_ttl", 7200, "Access-token lifetime in seconds (2 hours).", as_int),
    Setting("learnsail.jwt_refresh_ttl", 604800, "Refresh-token lifetime in seconds (7 days).", as_int),
    Setting("learnsail.jwt_audience", "learnsail", "Audience (`aud`) written into and required from tokens."),
    Setting("learnsail.jwt_private_key", "",
            "RS256 only: the PEM private key that signs tokens (inline or a file path)."),
    Setting("learnsail.jwt_public_key", "",
            "RS256 only: the PEM public key that verifies tokens (inline or a file path)."),
    Setting("learnsail.ratelimit_storage_url", "memory://",
            "Where rate-limit counters live: `memory://` (one process) or `redis://host:6379/1` "
            "(shared by every app process)."),
    Setting("learnsail.ratelimit_login_ip", "30/minute", "Sign-in attempts per client IP."),
    Setting("learnsail.ratelimit_login_account", "10/minute", "Sign-in attempts per account identifier."),
    Setting("learnsail.ratelimit_register_ip", "20/hour", "Registrations per client IP."),
    Setting("learnsail.ratelimit_codes", "5/hour",
            "Verification codes sent per destination (email or phone) and per IP."),
    Setting("learnsail.code_ttl", 600, "Seconds a verification code (email or SMS) stays valid.", as_int),
    Setting("learnsail.code_length", 6, "Digits in a verification code (4 to 10).", as_int),
    Setting("learnsail.code_max_attempts", 5,
            "Wrong entries of a verification code after which it stops working (request a new one).",
            as_int),
    Setting("learnsail.smtp_host", "",
            "SMTP server that sends email. Empty: emails are written to the log (development)."),
    Setting("learnsail.smtp_port", 587, "Port of the SMTP server.", as_int),
    Setting("learnsail.smtp_user", "", "SMTP login name. Empty: send without logging in."),
    Setting("learnsail.smtp_password", "", "SMTP password (with learnsail.smtp_user)."),
    Setting("learnsail.smtp_from", "noreply@localhost",
            "Sender of the platform's emails, e.g. `learnsail <noreply@example.edu>`."),
    Setting("learnsail.smtp_starttls", True,
            "Upgrade the SMTP connection with STARTTLS (verifying the server's certificate) before "
            "logging in and sending. Turn off only for a local relay.", as_bool),
    Setting("learnsail.smtp_timeout", 10, "Seconds to wait for the SMTP server.", as_int),
    Setting("learnsail.sms_provider", "console",
            "SMS gateway: `console` writes messages to the log (development); plugins add real "
            "gateways under their own names."),
    Setting("learnsail.login_max_failures", 10,
            "Failed sign-ins within learnsail.login_failure_window that lock the account.", as_int),
    Setting("learnsail.login_failure_window", 900, "Seconds over which failed sign-ins are counted.", as_int),
    Setting("learnsail.login_lockout_seconds", 900, "How long a locked account stays locked.", as_int),
    Setting("learnsail.self_assignable_roles", "student teacher",
            "Roles a user may choose when registering (role_id); any other role needs an admin.", as_list),
    Setting("learnsail.auth_cache_seconds", 1.0,
            "How long an app process trusts what it knows of a user's sign-in state (disabled, signed "
            "out, roles) before asking the database again; changes made in the process apply at once. "
            "0 asks on every request.", float),
    Setting("learnsail.cors_origins", "",
            "Origins allowed to call the API from a browser (space separated, exact match). Empty: none.",
            as_list),
    Setting("learnsail.max_body_size", 10 * 1024 * 1024,
            "Largest request body accepted, in bytes; larger requests get 413.", as_int),
    Setting("learnsail.log_format", "json", "`json` (one JSON object per line) or `text`."),
    Setting("learnsail.log_level", "INFO", "Python logging level of the learnsail loggers."),
    Setting("learnsail.trusted_proxy", "",
            "Address of the reverse proxy in front of `learnsail serve` (e.g. `127.0.0.1`), whose "
            "X-Forwarded-For/-Proto/-Host headers are then trusted for the client address and scheme "
            "(rate limits, logs, HSTS, links). Empty: no proxy is trusted."),
    Setting("learnsail.metrics_allow", "127.0.0.1 ::1",
            "Client addresses allowed to read /metrics (space separated); `*` for anyone.", as_list),
    Setting("learnsail.docs_enabled", True, "Serve the interactive API docs at /api/docs.", as_bool),
    Setting("learnsail.metrics_enabled", True, "Serve Prometheus metrics at /metrics.", as_bool),
)


def collect(declared: Iterable[Setting], raw: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Resolve ``declared`` settings from ``raw`` (ini) and ``environ``.

    Unknown keys in ``raw`` are kept as they are (Pyramid's own settings,
    ``pyramid.includes`` and the like).  Raises :class:`SettingError` naming
    the setting and its variable when a value cannot be parsed.
    """
    raw = dict(raw or {})
    environ = os.environ if environ is None else environ
    result: dict[str, Any] = dict(raw)
    for setting in declared:
        if setting.env_var in environ:
            value, source = environ[setting.env_var], f"environment variable {setting.env_var}"
        elif setting.name in raw:
            value, source = raw[setting.name], f"setting {setting.name}"
        else:
            result[setting.name] = setting.parse(setting.default)
            continue
        try:
            result[setting.name] = setting.parse(value)
        except (TypeError, ValueError) as exc:
            raise SettingError(f"{source} has an invalid value {value!r}: {exc}") from None
    return result


def data_dir(settings: Mapping[str, Any]) -> Path:
    path = Path(settings.get("learnsail.data_dir") or "./var").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(settings: Mapping[str, Any]) -> str:
    url = settings.get("learnsail.database_url") or ""
    if url:
        return url
    return f"sqlite:///{data_dir(settings) / 'learnsail.sqlite'}"


def secret_key(settings: Mapping[str, Any]) -> str:
    """The signing secret: configured, or generated once into the data dir."""
    secret = settings.get("learnsail.secret") or ""
    if secret:
        return secret
    path = data_dir(settings) / "secret.key"
    if not path.exists():
        import secrets

        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
