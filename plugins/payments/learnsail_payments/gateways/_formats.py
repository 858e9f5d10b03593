"""Formats both platform adapters share: money in the platforms' units and
text, China Standard Time, endpoint URLs, and how a platform's group of
settings is read (all set, or none)."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from learnsail.settings import SettingError, env_name

from .base import GatewayError

#: China Standard Time; both platforms write times in it.  China keeps no
#: daylight saving, so a fixed offset is exact (and needs no tz database).
CST = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
UTC = dt.timezone.utc
CENT = Decimal("0.01")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def quoted(text: Any, limit: int = 64) -> str:
    """Text from the outside (a serial, an app id), made safe to quote in a
    message or a log line."""
    return re.sub(r"[^0-9A-Za-z_.:\-]", "?", str(text))[:limit]


def as_decimal(amount: Any) -> Decimal:
    if isinstance(amount, Decimal):
        return amount
    if isinstance(amount, float):  # a float is already inexact: say so rather than round
        raise GatewayError(f"amount {amount!r} is a float; pass a Decimal", code="INVALID_AMOUNT")
    try:
        return Decimal(str(amount))
    except InvalidOperation:
        raise GatewayError(f"amount {amount!r} is not a number", code="INVALID_AMOUNT") from None


def yuan_to_fen(amount: Any) -> int:
    """Yuan (Decimal, at most two places) to fen, exactly; anything finer
    than a fen, zero or negative is refused rather than rounded."""
    value = as_decimal(amount)
    fen = value * 100 if value.is_finite() else Decimal(0)
    if fen != fen.to_integral_value() or fen <= 0:
        raise GatewayError(f"amount {value} is not a positive number of yuan with at most two decimal places",
                           code="INVALID_AMOUNT")
    return int(fen)


def fen_to_yuan(fen: Any) -> Decimal:
    if isinstance(fen, bool) or not isinstance(fen, int):
        fen = int(str(fen))
    return Decimal(fen).scaleb(-2)


def yuan_text(amount: Any) -> str:
    """Alipay's amount format: yuan with exactly two places (``"199.90"``)."""
    value = as_decimal(amount)
    yuan_to_fen(value)  # the same checks
    return str(value.quantize(CENT))


def parse_yuan(text: Any) -> Decimal:
    value = Decimal(str(text).strip())
    if not value.is_finite():
        raise InvalidOperation(text)
    return value.quantize(CENT)


def aware_utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_cst(text: str) -> dt.datetime:
    """``YYYY-MM-DD HH:MM:SS`` in China Standard Time (Alipay) -> aware UTC."""
    return dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST).astimezone(UTC)


def format_cst(moment: dt.datetime) -> str:
    return aware_utc(moment).astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def check_endpoint(url: str, setting: str) -> str:
    """``url`` without a trailing slash; HTTPS, or plain HTTP on loopback
    only (the test kit's fake platforms)."""
    url = url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url
    raise SettingError(f"{setting} must be an https:// URL (plain http only on 127.0.0.1/localhost), "
                       f"not {url!r}")


class SettingsReader:
    """Reads one platform's settings: ``None`` when none of its required
    settings is set, an error naming the missing ones when some are."""

    def __init__(self, settings: Mapping[str, Any], prefix: str = "learnsail.payments.") -> None:
        self.settings = settings
        self.prefix = prefix

    def get(self, key: str, default: str = "") -> str:
        value = self.settings.get(self.prefix + key)
        return default if value is None or str(value).strip() == "" else str(value).strip()

    def required(self, platform: str, keys: list[str]) -> dict[str, str] | None:
        values = {key: self.get(key) for key in keys}
        if not any(values.values()):
            return None
        missing = [key for key, value in values.items() if not value]
        if missing:
            names = ", ".join(f"{self.prefix}{key} ({env_name(self.prefix + key)})" for key in missing)
            raise SettingError(f"{platform} is only partly configured: set {names}, "
                               f"or clear every {self.prefix}{keys[0].split('_')[0]}_* setting to turn it off")
        return values
