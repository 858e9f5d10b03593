"""Alipay open platform (public-key mode, RSA2): page, WAP and app
payments, verified asynchronous notifications, query, close and refund.

The published algorithms, implemented here on ``cryptography``:

- a request is the common parameters (``app_id``, ``method``, ``format``,
  ``charset``, ``sign_type=RSA2``, ``timestamp`` in Asia/Shanghai,
  ``version=1.0``, ``notify_url``, ``return_url``) plus ``biz_content``
  (JSON), signed with the app's private key: RSA-SHA256 (PKCS#1 v1.5),
  base64, over the non-empty parameters except ``sign``, sorted by name and
  joined as ``k=v&k=v`` (raw values, not URL-encoded);
- an answer ``{"alipay_trade_query_response": {...}, "sign": "..."}`` is
  signed by Alipay over the exact JSON text of the ``*_response`` value;
- an asynchronous notification (a form POST) is signed by Alipay over its
  parameters except ``sign`` and ``sign_type``, sorted and joined the same
  way.  Both are verified with Alipay's public key before any field is read.

Amounts are yuan text with two places (``"199.90"``) at Alipay and Decimal
on our side; times are ``YYYY-MM-DD HH:MM:SS`` in China Standard Time there
and aware UTC here.  Public-key-certificate mode (app_cert_sn,
alipay_root_cert_sn) is not supported.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import urllib.parse
from decimal import InvalidOperation
from typing import Any, Callable, Mapping

from learnsail.settings import Setting

from ._crypto import PrivateKey, PublicKey, as_secret, load_private_key, load_public_key_setting, rsa_sign, rsa_verify
from ._formats import (
    SettingsReader,
    check_endpoint,
    format_cst,
    parse_cst,
    parse_yuan,
    quoted,
    yuan_text,
)
from ._http import HttpClient
from .base import (
    Acknowledgement,
    Gateway,
    GatewayError,
    Notification,
    PaymentRequest,
    QueryResult,
    RefundResult,
    VerificationFailed,
)

log = logging.getLogger("learnsail.payments.alipay")

DEFAULT_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"

_P = "learnsail.payments."

SETTINGS: list[Setting] = [
    Setting(_P + "alipay_app_id", "",
            "Alipay: the app id (APPID) of the open-platform application. Alipay is off while every "
            "alipay_* key setting is empty."),
    Setting(_P + "alipay_seller_id", "",
            "Alipay: the seller's user id (PID, 2088...) notifications must be for."),
    Setting(_P + "alipay_app_private_key", "",
            "Alipay: the application's RSA2 private key that signs our requests: PEM text, the path of "
            "a PEM file, or the bare base64 key Alipay's key tool prints. Secret.",
            as_secret),
    Setting(_P + "alipay_public_key", "",
            "Alipay: Alipay's public key (支付宝公钥, not the app's) that verifies notifications and "
            "answers: PEM text, a PEM file, or the bare base64 text shown in the console."),
    Setting(_P + "alipay_gateway_url", DEFAULT_GATEWAY_URL,
            "Alipay: the open API gateway (https; the sandbox is "
            "https://openapi-sandbox.dl.alipaydev.com/gateway.do; tests point it at the test kit's fake)."),
]

_REQUIRED = ["alipay_app_id", "alipay_seller_id", "alipay_app_private_key", "alipay_public_key"]

#: scene -> (method, product_code)
_SCENES = {
    "page": ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
    "wap": ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
    "app": ("alipay.trade.app.pay", "QUICK_MSECURITY_PAY"),
}
_PAYMENT_STATES = {
    "TRADE_SUCCESS": "paid",
    "TRADE_FINISHED": "paid",   # paid, and past the refund period
    "TRADE_CLOSED": "closed",
    "WAIT_BUYER_PAY": "pending",
}


def sign_content(params: Mapping[str, Any], exclude: tuple[str, ...] = ("sign",), *,
                 skip_empty: bool = True) -> str:
    """The text Alipay signs: ``k=v`` pairs sorted by key, joined by ``&``."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params)
                    if key not in exclude and not (skip_empty and params[key] in (None, "")))



class _Answer:
    __slots__ = ("data", "verified")

    def __init__(self, data: dict[str, Any], verified: bool) -> None:
        self.data, self.verified = data, verified

    @property
    def ok(self) -> bool:
        return str(self.data.get("code")) == "10000"

    @property
    def sub_code(self) -> str:
        return str(self.data.get("sub_code") or "")


class AlipayGateway(Gateway):
    """Alipay for one application (``app_id``) and seller (``seller_id``).

    Build it with :meth:`from_settings` or directly (keys as ``cryptography``
    objects).  ``clock`` gives the request timestamps (tests move it);
    ``http`` is anything with the ``_http.HttpClient.request`` method.
    Immutable after construction, hence thread-safe.
    """

    name = "alipay"
    resends_same_nonce = True

    def __init__(self, *, app_id: str, seller_id: str, app_private_key: PrivateKey,
                 alipay_public_key: PublicKey, gateway_url: str = DEFAULT_GATEWAY_URL,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time, http: Any = None) -> None:
        self.app_id = app_id
        self.seller_id = self.merchant_id = seller_id
        self.gateway_url = gateway_url
        self._private_key = app_private_key
        self._alipay_key = alipay_public_key
        self._clock = clock
        self._http = http or HttpClient("Alipay", timeout)

    def __repr__(self) -> str:
        return f"<AlipayGateway app_id={self.app_id} seller_id={self.seller_id} gateway={self.gateway_url}>"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                      http: Any = None) -> "AlipayGateway | None":
        """The gateway the settings describe; ``None`` when Alipay is not
        configured at all; :class:`learnsail.settings.SettingError` (a
        ``ValueError``) naming the setting when it is only partly configured
        or a key is unusable.  Errors never quote a key."""
        reader = SettingsReader(settings)
        values = reader.required("Alipay", _REQUIRED)
        if values is None:
            return None
        return cls(
            app_id=values["alipay_app_id"],
            seller_id=values["alipay_seller_id"],
            app_private_key=load_private_key(values["alipay_app_private_key"], _P + "alipay_app_private_key"),
            alipay_public_key=load_public_key_setting(values["alipay_public_key"], _P + "alipay_public_key"),
            gateway_url=check_endpoint(reader.get("alipay_gateway_url", DEFAULT_GATEWAY_URL),
                                       _P + "alipay_gateway_url"),
            clock=clock,
            http=http,
        )

    # -- signing ----------------------------------------------------------

    def signed_params(self, method: str, biz_content: Mapping[str, Any], **extra: str | None) -> dict[str, str]:
        """The common parameters, ``biz_content`` and ``extra`` (notify_url,
        return_url), with their ``sign``."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": format_cst_now(self._clock),
            "version": "1.0",
            "biz_content": json.dumps(dict(biz_content), ensure_ascii=False, separators=(",", ":")),
        }
        params.update({key: value for key, value in extra.items() if value})
        params["sign"] = rsa_sign(self._private_key, sign_content(params).encode("utf-8"))
        return params

    # -- payments ---------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> dict[str, Any]:
        """``page``/``wap``: ``{"url": ...}``, the signed gateway URL to send
        the browser to (GET); ``app``: ``{"order_string": ...}`` for the
        Alipay app SDK."""
        scene = (request.scene or "page").lower()
        if scene not in _SCENES:
            raise GatewayError(f"Alipay has no {scene!r} payment (page, wap, app)", code="UNSUPPORTED_SCENE")
        if request.currency != "CNY":
            raise GatewayError(f"Alipay (domestic) takes CNY, not {request.currency!r}", code="UNSUPPORTED_CURRENCY")
        method, product_code = _SCENES[scene]
        biz = {
            "out_trade_no": request.order_no,
            "total_amount": yuan_text(request.amount),
            "subject": request.title[:256] or request.order_no,
            "product_code": product_code,
            "time_expire": format_cst(request.expires_at),
        }
        params = self.signed_params(method, biz, notify_url=request.notify_url,
                                    return_url=request.return_url if scene != "app" else None)
        query = urllib.parse.urlencode(params)
        if scene == "app":
            return {"order_string": query}
        return {"url": f"{self.gateway_url}?{query}"}

    # -- notifications ----------------------------------------------------

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        params = _parse_form(bytes(body))
        signature = params.get("sign", "")
        if not signature:
            raise VerificationFailed("bad_signature", "the notification is not signed")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise VerificationFailed("bad_signature", f"sign_type {quoted(params.get('sign_type'))} is not RSA2")
        charset = params.get("charset") or "utf-8"
        content = sign_content(params, ("sign", "sign_type"), skip_empty=False)
        if not rsa_verify(self._alipay_key, content.encode(charset), signature):
            raise VerificationFailed("bad_signature", "the notification's signature does not verify")

        # signed by Alipay: now read it
        if params.get("app_id") != self.app_id:
            raise VerificationFailed("wrong_app", f"the notification is for app {quoted(params.get('app_id'))}")
        if params.get("seller_id") != self.seller_id:
            raise VerificationFailed("wrong_merchant",
                                     f"the notification is for seller {quoted(params.get('seller_id'))}")
        for required in ("notify_id", "out_trade_no"):
            if not params.get(required):
                raise VerificationFailed("malformed", f"the notification has no {required}")
        common = dict(
            order_no=params["out_trade_no"],
            currency=params.get("trans_currency") or "CNY",
            merchant_id=params["seller_id"],
            app_id=params["app_id"],
            transaction_id=params.get("trade_no") or None,
            nonce=params["notify_id"],
            timestamp=None,
            raw={k: v for k, v in params.items() if k != "sign"},
        )
        try:
            refund_fee = params.get("refund_fee") or ""
            if params.get("out_biz_no") or params.get("gmt_refund") or (refund_fee and parse_yuan(refund_fee)):
                # Alipay's refund_fee is the order's refunded total so far
                return Notification(kind="refund", status="succeeded", amount=parse_yuan(refund_fee or "0"),
                                    refund_no=params.get("out_biz_no") or None, **common)
            status = _PAYMENT_STATES.get(params.get("trade_status", ""))
            if status is None:
                raise VerificationFailed("malformed",
                                         f"unknown trade_status {quoted(params.get('trade_status'))}")
            paid_at = parse_cst(params["gmt_payment"]) if params.get("gmt_payment") else None
            return Notification(kind="payment", status=status, amount=parse_yuan(params["total_amount"]),
                                paid_at=paid_at, **common)
        except (KeyError, ValueError, InvalidOperation):
            raise VerificationFailed("malformed", "the notification has a missing or unreadable field") from None

    def acknowledge(self, ok: bool, message: str = "") -> Acknowledgement:
        """``success`` stops Alipay's retries; anything else (``fail``) makes
        it notify again (up to 8 times over 25 hours)."""
        return Acknowledgement(200, "text/plain; charset=utf-8", b"success" if ok else b"fail")

    # -- query, close, refund ---------------------------------------------

    def query(self, order_no: str) -> QueryResult:
        """``closed`` is an unpaid trade that timed out or was closed;
        Alipay also closes a trade once it is refunded in full, which
        shows as ``refunded`` (a closed trade that has a payment date)."""
        answer = self._call("alipay.trade.query", {"out_trade_no": order_no})
        if not answer.ok:
            if answer.verified and answer.sub_code == "ACQ.TRADE_NOT_EXIST":
                return QueryResult(order_no=order_no, status="not_found", raw=answer.data)
            raise self._refused(answer)
        data = answer.data
        if str(data.get("out_trade_no")) != order_no:
            raise GatewayError("Alipay answered about another order", code="MISMATCHED_ANSWER")
        trade_status = str(data.get("trade_status") or "")
        paid_date = data.get("send_pay_date")
        status = _PAYMENT_STATES.get(trade_status, "pending")
        if trade_status == "TRADE_CLOSED" and paid_date:
            status = "refunded"
        try:
            amount = parse_yuan(data["total_amount"]) if data.get("total_amount") not in (None, "") else None
            paid_at = parse_cst(paid_date) if paid_date else None
        except (ValueError, InvalidOperation):
            raise GatewayError("Alipay's answer has an unreadable amount or date", code="BAD_RESPONSE") from None
        return QueryResult(order_no=order_no, status=status, amount=amount,
                           currency=data.get("trans_currency") or "CNY",
                           transaction_id=data.get("trade_no"), paid_at=paid_at, raw=data)

    def close(self, order_no: str) -> None:
        """Close an unpaid trade.  A trade Alipay never created (the buyer
        never opened the payment page) is fine; a paid one raises
        ``GatewayError(code="ACQ.TRADE_STATUS_ERROR")``."""
        answer = self._call("alipay.trade.close", {"out_trade_no": order_no})
        if answer.ok or (answer.verified and answer.sub_code == "ACQ.TRADE_NOT_EXIST"):
            return
        raise self._refused(answer)

    def refund(self, order_no: str, refund_no: str, amount, total, reason: str | None = None,
               notify_url: str | None = None) -> RefundResult:
        """Refund through ``alipay.trade.refund`` (``out_request_no`` =
        ``refund_no``, so a retry is idempotent).  Alipay refunds at once
        (``fund_change=Y``); ``N`` means no money moved by this call, so the
        refund is looked up to tell "already done" from "still processing".
        ``notify_url`` is not used: Alipay sends refund notifications to the
        payment's notify_url."""
        biz: dict[str, Any] = {"out_trade_no": order_no, "refund_amount": yuan_text(amount),
                               "out_request_no": refund_no}
        if reason:
            biz["refund_reason"] = reason[:256]
        answer = self._call("alipay.trade.refund", biz)
        if not answer.ok:
            raise self._refused(answer)
        data = answer.data
        if str(data.get("out_trade_no")) != order_no:
            raise GatewayError("Alipay answered about another order", code="MISMATCHED_ANSWER")
        if data.get("fund_change") == "Y":
            return RefundResult(refund_no=refund_no, status="succeeded", raw=data)
        lookup = self._call("alipay.trade.fastpay.refund.query",
                            {"out_trade_no": order_no, "out_request_no": refund_no})
        if lookup.ok and lookup.data.get("refund_status") == "REFUND_SUCCESS":
            return RefundResult(refund_no=refund_no, status="succeeded", raw={**data, "lookup": lookup.data})
        return RefundResult(refund_no=refund_no, status="processing", raw={**data, "lookup": lookup.data})

    # -- HTTP -------------------------------------------------------------

    def _call(self, method: str, biz_content: Mapping[str, Any]) -> _Answer:
        params = self.signed_params(method, biz_content)
        response = self._http.request(
            "POST", self.gateway_url,
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Accept": "application/json",
             "User-Agent": "learnsail-payments"},
            urllib.parse.urlencode(params).encode("ascii"))
        if response.status >= 500 or response.status == 429:
            raise GatewayError(f"Alipay answered HTTP {response.status}", transient=True,
                               code=f"HTTP_{response.status}")
        if response.status != 200:
            raise GatewayError(f"Alipay answered HTTP {response.status}", code=f"HTTP_{response.status}")
        try:
            text = response.body.decode("utf-8")
            document = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            raise GatewayError("Alipay's answer is not JSON", code="BAD_RESPONSE") from None
        found = None
        for key in (method.replace(".", "_") + "_response", "error_response"):
            found = _response_text(text, document, key)
            if found:
                break
        if found is None:
            raise GatewayError(f"Alipay's answer has no {method} response", code="BAD_RESPONSE")
        signed_text, data = found
        signature = document.get("sign") if isinstance(document, dict) else None
        verified = bool(signature) and rsa_verify(self._alipay_key, signed_text.encode("utf-8"), str(signature))
        if signature and not verified:
            log.warning("Alipay %s: the answer's signature does not verify", method)
            raise GatewayError("Alipay's answer is not trusted: its signature does not verify",
                               code="BAD_RESPONSE_SIGNATURE")
        answer = _Answer(data, verified)
        if answer.ok and not verified:
            raise GatewayError("Alipay's answer is not trusted: it is not signed", code="BAD_RESPONSE_SIGNATURE")
        return answer

    @staticmethod
    def _refused(answer: _Answer) -> GatewayError:
        data = answer.data
        code = str(data.get("code") or "")
        sub_code = answer.sub_code
        transient = code == "20000" or sub_code.startswith("isp.") or sub_code.endswith("SYSTEM_ERROR")
        detail = str(data.get("sub_msg") or data.get("msg") or "")[:200]
        return GatewayError(f"Alipay refused the call ({quoted(code)} {quoted(sub_code)}: {detail})",
                            transient=transient, code=sub_code or code or "ALIPAY_ERROR")


def format_cst_now(clock: Callable[[], float]) -> str:
    return format_cst(dt.datetime.fromtimestamp(clock(), dt.timezone.utc))


def _response_text(text: str, document: Any, key: str) -> tuple[str, dict[str, Any]] | None:
    """The exact JSON text of ``document[key]`` as it appears in ``text``
    (what Alipay signed), and its value."""
    if not isinstance(document, dict) or not isinstance(document.get(key), dict):
        return None
    decoder = json.JSONDecoder()
    for match in re.finditer(r'"' + re.escape(key) + r'"\s*:\s*', text):
        try:
            value, end = decoder.raw_decode(text, match.end())
        except ValueError:
            continue
        if value == document[key]:
            return text[match.end():end], value
    return None


def _parse_form(body: bytes) -> dict[str, str]:
    """The notification's parameters, decoded in the charset it declares;
    a repeated parameter is refused (which of the two would be signed?)."""
    try:
        probe = urllib.parse.parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        charset = next((v for k, v in probe if k == "charset"), "") or "utf-8"
        pairs = urllib.parse.parse_qsl(body.decode(charset), keep_blank_values=True, encoding=charset,
                                       errors="strict")
    except (LookupError, UnicodeDecodeError, ValueError):
        raise VerificationFailed("malformed", "the notification is not a readable form") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise VerificationFailed("malformed", f"the notification repeats {quoted(key)}")
        params[key] = value
    if not params:
        raise VerificationFailed("malformed", "the notification is empty")
    return params
