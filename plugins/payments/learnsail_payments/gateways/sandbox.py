"""The ``sandbox`` platform: payments without a merchant account, for
development, tests and the demo.

It behaves like a real platform seen from the service:

- ``create_payment`` answers ``pay_params`` with a ``confirm_url`` (and its
  terms, signed): the buyer POSTs it to "pay" (``POST
  /api/v1/pay/sandbox/{order_no}/confirm``).
- The confirmation is turned into a **signed notification**, HMAC-SHA256
  with a key derived from ``learnsail.secret`` over
  ``timestamp\\nnonce\\nbody\\n`` (WeChat Pay's layout), and handed to the
  same ``learnsail_payments.callbacks.handle_notification`` that
  ``POST /api/v1/pay/callback/{platform}`` runs for WeChat Pay and
  Alipay.  Anyone holding the key can also POST such notifications to
  ``/api/v1/pay/callback/sandbox`` -- which is why production turns the
  sandbox off (``learnsail.payments.sandbox_enabled = false``).
- It keeps its own books (process memory): what was started, paid, closed
  and refunded, so ``query`` answers reconciliation as a platform would.
  They are lost when the process restarts.

``refund_outcome`` (``succeeded`` by default, ``processing`` or ``failed``)
lets tests and demos choose how refunds end; a ``processing`` refund is
completed by a signed refund notification (:meth:`sign_notification`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from learnsail_payments.gateways.base import (Acknowledgement, Gateway, GatewayError, Notification,
                                              PaymentRequest, QueryResult, RefundResult, VerificationFailed)

#: notifications signed more than this many seconds away from our clock are refused (as WeChat's)
MAX_SKEW = 300
CONFIRM_PATH = "/api/v1/pay/sandbox/{order_no}/confirm"


class SandboxGateway(Gateway):
    name = "sandbox"
    merchant_id = "sandbox-merchant"
    app_id = "sandbox-app"

    def __init__(self, secret: str | bytes, *, clock: Callable[[], float] = time.time) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self._key = hmac.new(raw, b"learnsail.payments.sandbox", hashlib.sha256).digest()
        self._clock = clock
        self._books: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.refund_outcome = "succeeded"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "SandboxGateway":
        from learnsail.settings import secret_key

        return cls(secret_key(settings))

    # --- signing ---------------------------------------------------------------

    def _mac(self, *parts: bytes) -> str:
        return hmac.new(self._key, b"\n".join(parts) + b"\n", hashlib.sha256).hexdigest()

    def _confirm_signature(self, order_no: str, amount: str, currency: str, expires: str) -> str:
        return self._mac(b"confirm", order_no.encode(), amount.encode(), currency.encode(), expires.encode())

    def sign_notification(self, *, order_no: str, status: str, amount: Decimal, currency: str = "CNY",
                          kind: str = "payment", transaction_id: str | None = None, refund_no: str | None = None,
                          refund_id: str | None = None, paid_at: dt.datetime | None = None,
                          merchant_id: str | None = None, app_id: str | None = None,
                          timestamp: int | None = None, nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        """The headers and body of a notification, signed as the platform
        signs them (``timestamp``/``nonce`` may be forced, for tests)."""
        data = {"kind": kind, "order_no": order_no, "status": status, "amount": str(amount), "currency": currency,
                "merchant_id": self.merchant_id if merchant_id is None else merchant_id,
                "app_id": self.app_id if app_id is None else app_id, "transaction_id": transaction_id,
                "refund_no": refund_no, "refund_id": refund_id,
                "paid_at": paid_at.astimezone(dt.timezone.utc).isoformat() if paid_at else None}
        body = json.dumps(data, sort_keys=True).encode()
        stamp = str(int(self._clock()) if timestamp is None else timestamp)
        once = nonce or secrets.token_hex(16)
        signature = self._mac(stamp.encode(), once.encode(), body)
        return ({"X-Sandbox-Timestamp": stamp, "X-Sandbox-Nonce": once, "X-Sandbox-Signature": signature,
                 "Content-Type": "application/json"}, body)

    # --- the Gateway interface ----------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> dict[str, Any]:
        parts = urllib.parse.urlsplit(request.notify_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        amount, expires = str(request.amount), str(int(request.expires_at.timestamp()))
        query = urllib.parse.urlencode({
            "amount": amount, "currency": request.currency, "expires": expires,
            "sig": self._confirm_signature(request.order_no, amount, request.currency, expires)})
        with self._lock:
            book = self._books.setdefault(request.order_no, {"status": "pending"})
            book.update(amount=request.amount, currency=request.currency)
        return {"confirm_url": origin + CONFIRM_PATH.format(order_no=request.order_no) + "?" + query,
                "method": "POST", "order_no": request.order_no, "amount": amount, "currency": request.currency,
                "expires_at": request.expires_at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
                "title": request.title}

    def confirm(self, order_no: str, amount: str, currency: str, expires: str, sig: str) -> tuple[dict[str, str], bytes]:
        """The buyer confirmed ``confirm_url``: check its terms, take the
        money into the books and return the signed payment notification."""
        expected = self._confirm_signature(order_no, amount, currency, expires)
        if not hmac.compare_digest(expected, sig or ""):
            raise VerificationFailed("bad_signature", "The confirmation URL is not one this sandbox issued.")
        try:
            if int(expires) < self._clock():
                raise VerificationFailed("expired", "The payment's time to pay is over.")
            value = Decimal(amount)
        except (ValueError, InvalidOperation):
            raise VerificationFailed("malformed", "The confirmation URL is malformed.") from None
        now = dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc)
        with self._lock:
            book = self._books.setdefault(order_no, {"status": "pending"})
            if book.get("status") == "closed":
                raise VerificationFailed("closed", "This payment was closed.")
            if book.get("status") != "paid":
                book.update(status="paid", amount=value, currency=currency, paid_at=now,
                            transaction_id="SBX" + secrets.token_hex(10))
            transaction_id, paid_at = book["transaction_id"], book["paid_at"]
        return self.sign_notification(order_no=order_no, status="paid", amount=value, currency=currency,
                                      transaction_id=transaction_id, paid_at=paid_at)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        lower = {str(k).lower(): str(v) for k, v in headers.items()}
        stamp, nonce, signature = (lower.get("x-sandbox-timestamp"), lower.get("x-sandbox-nonce"),
                                   lower.get("x-sandbox-signature"))
        if not (stamp and nonce and signature):
            raise VerificationFailed("bad_signature", "The notification is not signed.")
        if not hmac.compare_digest(self._mac(stamp.encode(), nonce.encode(), body), signature):
            raise VerificationFailed("bad_signature", "The notification's signature does not verify.")
        try:
            timestamp = int(stamp)
        except ValueError:
            raise VerificationFailed("malformed", "The timestamp is not a number.") from None
        if abs(self._clock() - timestamp) > MAX_SKEW:
            raise VerificationFailed("stale_timestamp", f"The notification was signed more than {MAX_SKEW} s "
                                                        f"away from our clock.")
        try:
            data = json.loads(body)
            paid_at = dt.datetime.fromisoformat(data["paid_at"]) if data.get("paid_at") else None
            return Notification(
                kind=data["kind"], order_no=data["order_no"], status=data["status"],
                amount=Decimal(data["amount"]), currency=data["currency"], merchant_id=data["merchant_id"],
                app_id=data["app_id"], transaction_id=data.get("transaction_id"), refund_no=data.get("refund_no"),
                refund_id=data.get("refund_id"), paid_at=paid_at, nonce=nonce, timestamp=timestamp, raw=data)
        except (ValueError, KeyError, TypeError, InvalidOperation):
            raise VerificationFailed("malformed", "The notification's body cannot be read.") from None

    def acknowledge(self, ok: bool, message: str = "") -> Acknowledgement:
        body = {"code": 0, "message": "success"} if ok else {"code": 1, "message": message or "fail"}
        return Acknowledgement(200 if ok else 400, "application/json", json.dumps(body).encode())

    def query(self, order_no: str) -> QueryResult:
        with self._lock:
            book = dict(self._books.get(order_no) or {})
        if not book:
            return QueryResult(order_no=order_no, status="not_found")
        return QueryResult(order_no=order_no, status=book["status"], amount=book.get("amount"),
                           currency=book.get("currency"), transaction_id=book.get("transaction_id"),
                           paid_at=book.get("paid_at"), raw={"sandbox": True})

    def refund(self, order_no: str, refund_no: str, amount: Decimal, total: Decimal,
               reason: str | None = None, notify_url: str | None = None) -> RefundResult:
        outcome = self.refund_outcome
        with self._lock:
            book = self._books.get(order_no)
            if book is None or book.get("status") not in ("paid", "refunded"):
                raise GatewayError(f"The sandbox holds no payment for {order_no}.", code="ORDER_NOT_PAID")
            refunds = book.setdefault("refunds", {})
            if refund_no not in refunds:  # a refund number is idempotent, as at the platforms
                refunds[refund_no] = {"amount": amount, "status": outcome, "refund_id": "SBR" + secrets.token_hex(8)}
                if outcome != "failed" and sum(r["amount"] for r in refunds.values()
                                               if r["status"] != "failed") >= total:
                    book["status"] = "refunded"
            entry = refunds[refund_no]
        return RefundResult(refund_no=refund_no, status=entry["status"], refund_id=entry["refund_id"],
                            raw={"sandbox": True})

    def close(self, order_no: str) -> None:
        with self._lock:
            book = self._books.get(order_no)
            if book is not None and book.get("status") == "pending":
                book["status"] = "closed"
