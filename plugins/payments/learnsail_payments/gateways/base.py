"""The interface between the payments service and a payment platform.

A gateway adapter turns an order into what the client needs to pay it
(``create_payment``), verifies and reads the platform's notifications
(``parse_notification``: signature first, then the body), asks the platform
about an order (``query``) and sends refunds (``refund``).  It knows no
order table, no session and no request: the service layer
(``learnsail_payments.services``) calls it with plain values and applies the
results under its own state machine and row locks.

Money is :class:`decimal.Decimal` in yuan (two places) on this side of the
interface; an adapter converts to the platform's unit (WeChat: fen).
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any, Mapping


class GatewayError(Exception):
    """The platform could not be reached or refused a call (``create_payment``,
    ``query``, ``refund``).  ``transient`` says whether retrying may help
    (network errors, 5xx); the message never contains keys or secrets."""

    def __init__(self, message: str, *, transient: bool = False, code: str | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


class VerificationFailed(Exception):
    """A notification was not accepted: a bad or missing signature, an
    unknown platform certificate serial, a stale timestamp, an undecryptable
    resource, a wrong app id / merchant.  ``reason`` is a short, safe,
    machine-readable word (``bad_signature``, ``stale_timestamp``,
    ``unknown_serial``, ``decrypt_failed``, ``wrong_app``, ``wrong_merchant``,
    ``malformed``); the message is for logs and the response and must not
    leak secrets."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class PaymentRequest:
    """What an adapter needs to start a payment."""

    order_no: str            #: our order number (WeChat out_trade_no, Alipay out_trade_no)
    amount: Decimal          #: yuan, two places
    currency: str            #: "CNY"
    title: str               #: shown by the platform (WeChat description, Alipay subject)
    expires_at: dt.datetime  #: aware UTC; the platform closes the payment then
    notify_url: str          #: our callback URL for this platform
    return_url: str | None = None   #: Alipay page pay: where the browser returns
    scene: str | None = None        #: "jsapi" | "native" | "h5" (WeChat); "page" | "app" | "wap" (Alipay)
    payer_openid: str | None = None  #: WeChat JSAPI needs the payer's openid
    client_ip: str | None = None


@dataclasses.dataclass(frozen=True)
class Notification:
    """A verified notification from the platform (payment or refund)."""

    kind: str                  #: "payment" | "refund"
    order_no: str              #: our order number
    status: str                #: payment: "paid" | "closed" | "pending"; refund: "succeeded" | "failed" | "processing"
    amount: Decimal            #: payment: total paid; refund: the refund's amount (yuan)
    currency: str
    merchant_id: str           #: WeChat mchid / Alipay seller_id
    app_id: str                #: WeChat appid / Alipay app_id
    transaction_id: str | None = None   #: the platform's payment id
    refund_no: str | None = None        #: our refund number (refund notifications)
    refund_id: str | None = None        #: the platform's refund id
    paid_at: dt.datetime | None = None  #: aware UTC
    nonce: str | None = None            #: WeChat: the Wechatpay-Nonce header; Alipay: notify_id
    timestamp: int | None = None        #: seconds, as signed (WeChat); None where the platform signs none
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict)  #: the decrypted/parsed fields, for the log


@dataclasses.dataclass(frozen=True)
class Acknowledgement:
    """The HTTP answer the platform expects to a notification."""

    status: int
    content_type: str
    body: bytes


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """The platform's view of one order (reconciliation)."""

    order_no: str
    status: str                         #: "paid" | "pending" | "closed" | "refunded" | "not_found"
    amount: Decimal | None = None
    currency: str | None = None
    transaction_id: str | None = None
    paid_at: dt.datetime | None = None
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RefundResult:
    refund_no: str
    status: str                         #: "succeeded" | "processing" | "failed"
    refund_id: str | None = None
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Gateway(abc.ABC):
    """One payment platform.  Built once per app from settings by
    :func:`learnsail_payments.gateways.build_gateways`; thread-safe."""

    #: the ``{platform}`` of ``POST /api/v1/pay/{platform}`` bodies and
    #: ``/api/v1/pay/callback/{platform}``
    name: str = ""

    #: the merchant (WeChat mchid / Alipay seller_id) and app (appid /
    #: app_id) this adapter is configured for.  When set, the service
    #: refuses a verified notification naming another one
    #: (``wrong_merchant`` / ``wrong_app``), whether or not the adapter
    #: checked it itself; empty means "not checked by the service".
    merchant_id: str = ""
    app_id: str = ""
    #: the platform resends a notification unchanged, with the same nonce,
    #: until it is acknowledged (Alipay's notify_id): a repeat of a nonce
    #: already recorded -- recorded only when its notification was applied
    #: and committed -- is acknowledged and changes nothing, instead of
    #: being refused as a replay (WeChat Pay signs each resend anew)
    resends_same_nonce: bool = False

    @abc.abstractmethod
    def create_payment(self, request: PaymentRequest) -> dict[str, Any]:
        """The ``pay_params`` the client needs (WeChat JSAPI: appId,
        timeStamp, nonceStr, package, signType, paySign; Native: code_url;
        Alipay: the signed page/app request).  May call the platform
        (WeChat prepay); raises :class:`GatewayError`."""

    @abc.abstractmethod
    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify, then read, a payment or refund notification.  ``headers``
        are case-insensitive in practice (lower-case them); ``body`` is the
        raw request body.  Raises :class:`VerificationFailed`.  Clock checks
        (WeChat's 300 s window) are done here; nonce uniqueness is the
        service's (it keeps the seen nonces in the database)."""

    @abc.abstractmethod
    def acknowledge(self, ok: bool, message: str = "") -> Acknowledgement:
        """The answer to a notification: success only after our commit;
        failure makes the platform retry."""

    @abc.abstractmethod
    def query(self, order_no: str) -> QueryResult:
        """Ask the platform about ``order_no``; raises :class:`GatewayError`."""

    @abc.abstractmethod
    def refund(self, order_no: str, refund_no: str, amount: Decimal, total: Decimal,
               reason: str | None = None, notify_url: str | None = None) -> RefundResult:
        """Refund ``amount`` of the order's ``total``; raises :class:`GatewayError`."""

    @abc.abstractmethod
    def close(self, order_no: str) -> None:
        """Close an unpaid order at the platform (expiry, cancel); best effort."""
