"""Test kit for the WeChat Pay and Alipay adapters and for anything built on
them: merchant and platform keys generated on the spot, notifications signed
(and encrypted) exactly as the platforms sign them, and loopback fake
platforms that check our request signatures, sign their answers and
remember orders.

The kit builds every signed message itself, with ``cryptography`` directly
and without the adapters' helpers, so a test that passes is the adapter
agreeing with the published scheme, not with itself::

    from learnsail_payments.testing import WeChatKit, FakeWeChatPay

    kit = WeChatKit.create()
    with FakeWeChatPay(kit) as fake:
        gateway = fake.gateway()                      # WeChatPayGateway on the fake
        params = gateway.create_payment(request)      # prepay at the fake
        headers, body = fake.pay(request.order_no)    # the buyer pays: the signed notification
        note = gateway.parse_notification(headers, body)

    kit = AlipayKit.create()
    with FakeAlipay(kit) as fake:
        gateway = fake.gateway()
        fake.accept(gateway.create_payment(request))  # the buyer opens the cashier page
        body = fake.pay(request.order_no)             # ... and pays: the signed form
        note = gateway.parse_notification({}, body)

Keys are cached per process by name (RSA generation takes a fraction of a
second); :func:`generate_rsa_key` makes a fresh one.
"""

from __future__ import annotations

import base64
import abc
import dataclasses
import datetime as dt
import http.server
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

__all__ = [
    "generate_rsa_key", "cached_rsa_key", "private_key_pem", "public_key_pem", "public_key_base64",
    "self_signed_certificate", "certificate_pem", "certificate_serial",
    "WeChatKit", "AlipayKit", "FakeWeChatPay", "FakeAlipay", "RecordedRequest", "write_pem_files",
]

_CST = dt.timezone(dt.timedelta(hours=8))
_P = "learnsail.payments."


# -- keys and certificates ----------------------------------------------------

def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key (2048 bits, e = 65537), as both platforms use."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


_KEY_CACHE: dict[str, rsa.RSAPrivateKey] = {}
_KEY_LOCK = threading.Lock()


def cached_rsa_key(name: str) -> rsa.RSAPrivateKey:
    """The process's RSA key called ``name``, generated on first use."""
    with _KEY_LOCK:
        if name not in _KEY_CACHE:
            _KEY_CACHE[name] = generate_rsa_key()
        return _KEY_CACHE[name]


def private_key_pem(key: rsa.RSAPrivateKey, *, traditional: bool = False) -> str:
    """PKCS#8 PEM (``BEGIN PRIVATE KEY``, as apiclient_key.pem), or PKCS#1
    (``BEGIN RSA PRIVATE KEY``) with ``traditional``."""
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode("ascii")


def public_key_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def public_key_base64(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """The bare base64 DER text Alipay's console shows for a public key."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def self_signed_certificate(key: rsa.RSAPrivateKey, serial: int | None = None,
                            common_name: str = "Tenpay.com Root CA (learnsail test)",
                            days: int = 365) -> x509.Certificate:
    """A self-signed certificate for ``key`` with ``serial`` (random 159
    bits by default, like WeChat Pay's 40-hex-digit serials)."""
    serial = serial if serial is not None else (secrets.randbits(159) | (1 << 158))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "learnsail test kit")])
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_serial(cert: x509.Certificate) -> str:
    """Upper-case hexadecimal, as in ``Wechatpay-Serial``."""
    return format(cert.serial_number, "X")


def _sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def _verify(public: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def _fen(amount: Any) -> int:
    fen = Decimal(str(amount)) * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of fen")
    return int(fen)


def _yuan(amount: Any) -> str:
    return str(Decimal(str(amount)).quantize(Decimal("0.01")))


def _random_text(n: int = 32) -> str:
    return "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(n))


# -- WeChat Pay ---------------------------------------------------------------

@dataclasses.dataclass
class WeChatKit:
    """One WeChat Pay merchant and the platform that serves it, with keys.

    ``merchant_key`` signs our requests and JSAPI paySign (the merchant's
    apiclient_key.pem); ``platform_key`` signs notifications and answers and
    its certificate ``platform_cert`` (serial ``platform_serial``) is what
    the adapter is configured with.  ``clock`` gives the signed timestamps.
    """

    merchant_key: rsa.RSAPrivateKey
    platform_key: rsa.RSAPrivateKey
    platform_cert: x509.Certificate
    appid: str = "wx8888888888888888"
    mchid: str = "1900000109"
    api_v3_key: str = "0123456789abcdefghijABCDEFGHIJ01"
    merchant_serial: str = "3775B6A45ACD588826D15E583A95F5DD02AEB1F1"
    clock: Callable[[], float] = time.time

    @classmethod
    def create(cls, *, fresh: bool = False, **fields: Any) -> "WeChatKit":
        """A kit with the process's cached test keys (``fresh``: new keys)."""
        key = generate_rsa_key if fresh else cached_rsa_key
        merchant = fields.pop("merchant_key", None) or key("wechat-merchant")
        platform = fields.pop("platform_key", None) or key("wechat-platform")
        cert = fields.pop("platform_cert", None)
        if cert is None:
            cert = self_signed_certificate(platform, serial=None if fresh else 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1)
        return cls(merchant_key=merchant, platform_key=platform, platform_cert=cert, **fields)

    def rotated(self) -> "WeChatKit":
        """The same merchant after WeChat Pay switched to a new platform
        certificate (new key, new serial)."""
        key = generate_rsa_key()
        return dataclasses.replace(self, platform_key=key, platform_cert=self_signed_certificate(key))

    @property
    def platform_serial(self) -> str:
        return certificate_serial(self.platform_cert)

    def settings(self, api_base: str | None = None, *, extra_certs: Iterable[x509.Certificate] = (),
                 platform_certs: str | None = None) -> dict[str, str]:
        """The ``learnsail.payments.wechat_*`` settings of this merchant
        (keys and certificates inline; ``platform_certs`` overrides)."""
        certs = "".join(certificate_pem(c) for c in (self.platform_cert, *extra_certs))
        settings = {
            _P + "wechat_appid": self.appid,
            _P + "wechat_mchid": self.mchid,
            _P + "wechat_api_v3_key": self.api_v3_key,
            _P + "wechat_merchant_serial": self.merchant_serial,
            _P + "wechat_merchant_private_key": private_key_pem(self.merchant_key),
            _P + "wechat_platform_certs": platform_certs if platform_certs is not None else certs,
        }
        if api_base:
            settings[_P + "wechat_api_base"] = api_base
        return settings

    # signing as WeChat Pay does

    def sign_message(self, body: bytes, *, timestamp: int | None = None, nonce: str | None = None,
                     serial: str | None = None, key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
        """The ``Wechatpay-*`` headers WeChat Pay puts on ``body``:
        RSA-SHA256 over ``timestamp\\nnonce\\nbody\\n`` with the platform key."""
        timestamp = int(self.clock()) if timestamp is None else int(timestamp)
        nonce = nonce or _random_text()
        message = str(timestamp).encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
        return {
            "Wechatpay-Timestamp": str(timestamp),
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": _sign(key or self.platform_key, message),
            "Wechatpay-Serial": serial or self.platform_serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def encrypt_resource(self, data: Mapping[str, Any], *, original_type: str = "transaction",
                         associated_data: str | None = None, nonce: str | None = None,
                         api_v3_key: str | bytes | None = None) -> dict[str, str]:
        """``data`` as a notification ``resource``: AEAD_AES_256_GCM under the
        APIv3 key, base64 ciphertext with the tag appended."""
        key = api_v3_key if api_v3_key is not None else self.api_v3_key
        key = key.encode() if isinstance(key, str) else key
        nonce = nonce or _random_text(12)
        associated_data = original_type if associated_data is None else associated_data
        plain = json.dumps(dict(data), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        sealed = AESGCM(key).encrypt(nonce.encode(), plain, associated_data.encode())
        return {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(sealed).decode("ascii"),
                "associated_data": associated_data, "nonce": nonce}

    def notification(self, event_type: str, data: Mapping[str, Any], *, summary: str = "",
                     timestamp: int | None = None, nonce: str | None = None, serial: str | None = None,
                     key: rsa.RSAPrivateKey | None = None, api_v3_key: str | bytes | None = None,
                     ) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a notification of ``event_type`` whose resource
        decrypts to ``data``."""
        original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
        created = dt.datetime.fromtimestamp(self.clock(), _CST).isoformat(timespec="seconds")
        event = {
            "id": "EV-" + _random_text(24),
            "create_time": created,
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary or ("支付成功" if event_type == "TRANSACTION.SUCCESS" else "退款成功"),
            "resource": self.encrypt_resource(data, original_type=original_type, api_v3_key=api_v3_key),
        }
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = self.sign_message(body, timestamp=timestamp, nonce=nonce, serial=serial, key=key)
        headers["Content-Type"] = "application/json"
        return headers, body

    def transaction(self, order_no: str, amount: Any, *, trade_state: str = "SUCCESS",
                    transaction_id: str | None = None, success_time: dt.datetime | None = None,
                    openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", trade_type: str = "JSAPI",
                    currency: str = "CNY", appid: str | None = None, mchid: str | None = None) -> dict[str, Any]:
        """A transaction object as WeChat Pay returns and notifies it."""
        data: dict[str, Any] = {
            "appid": appid or self.appid,
            "mchid": mchid or self.mchid,
            "out_trade_no": order_no,
            "trade_state": trade_state,
            "trade_state_desc": {"SUCCESS": "支付成功", "NOTPAY": "未支付", "CLOSED": "已关闭",
                                 "REFUND": "转入退款"}.get(trade_state, trade_state),
            "amount": {"total": _fen(amount), "currency": currency},
        }
        if trade_state in ("SUCCESS", "REFUND"):
            when = success_time or dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)
            data.update({
                "transaction_id": transaction_id or "42000" + str(secrets.randbits(80)).zfill(23)[:23],
                "trade_type": trade_type,
                "bank_type": "OTHERS",
                "attach": "",
                "success_time": when.astimezone(_CST).isoformat(timespec="seconds"),
                "payer": {"openid": openid},
            })
            data["amount"].update({"payer_total": _fen(amount), "payer_currency": currency})
        return data

    def refund_resource(self, order_no: str, refund_no: str, amount: Any, total: Any, *,
                        status: str = "SUCCESS", refund_id: str | None = None,
                        transaction_id: str | None = None, mchid: str | None = None) -> dict[str, Any]:
        """A refund object as WeChat Pay notifies it (REFUND.*)."""
        now = dt.datetime.fromtimestamp(self.clock(), _CST).isoformat(timespec="seconds")
        return {
            "mchid": mchid or self.mchid,
            "out_trade_no": order_no,
            "transaction_id": transaction_id or "4200000000000000000000000001",
            "out_refund_no": refund_no,
            "refund_id": refund_id or "50300" + str(secrets.randbits(64)).zfill(20)[:24],
            "refund_status": status,
            "success_time": now,
            "user_received_account": "支付用户零钱",
            "amount": {"total": _fen(total), "refund": _fen(amount), "payer_total": _fen(total),
                       "payer_refund": _fen(amount)},
        }

    def payment_notification(self, order_no: str, amount: Any, *, timestamp: int | None = None,
                             nonce: str | None = None, serial: str | None = None,
                             key: rsa.RSAPrivateKey | None = None, api_v3_key: str | bytes | None = None,
                             **transaction: Any) -> tuple[dict[str, str], bytes]:
        """A signed TRANSACTION.SUCCESS notification for ``order_no``."""
        data = self.transaction(order_no, amount, **transaction)
        return self.notification("TRANSACTION.SUCCESS", data, timestamp=timestamp, nonce=nonce,
                                 serial=serial, key=key, api_v3_key=api_v3_key)

    def refund_notification(self, order_no: str, refund_no: str, amount: Any, total: Any, *,
                            status: str = "SUCCESS", timestamp: int | None = None, nonce: str | None = None,
                            **refund: Any) -> tuple[dict[str, str], bytes]:
        """A signed REFUND.SUCCESS (or ``REFUND.<status>``) notification."""
        data = self.refund_resource(order_no, refund_no, amount, total, status=status, **refund)
        return self.notification(f"REFUND.{status}", data, timestamp=timestamp, nonce=nonce)

    # what WeChat Pay checks

    def authorization_problem(self, method: str, path: str, body: bytes, header: str | None,
                              window: int = 300) -> str | None:
        """Why WeChat Pay would refuse this request's ``Authorization``
        (``WECHATPAY2-SHA256-RSA2048`` over
        ``METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n``), or None."""
        prefix = "WECHATPAY2-SHA256-RSA2048 "
        if not header or not header.startswith(prefix):
            return "missing or unknown Authorization scheme"
        fields = dict(re.findall(r'(\w+)="([^"]*)"', header[len(prefix):]))
        for name in ("mchid", "nonce_str", "signature", "timestamp", "serial_no"):
            if not fields.get(name):
                return f"Authorization lacks {name}"
        if fields["mchid"] != self.mchid:
            return "wrong mchid"
        if fields["serial_no"] != self.merchant_serial:
            return "unknown merchant certificate serial"
        if not fields["timestamp"].isdigit() or abs(self.clock() - int(fields["timestamp"])) > window:
            return "stale timestamp"
        message = (f"{method}\n{path}\n{fields['timestamp']}\n{fields['nonce_str']}\n").encode() + body + b"\n"
        if not _verify(self.merchant_key.public_key(), message, fields["signature"]):
            return "signature does not verify"
        return None

    def pay_sign_valid(self, params: Mapping[str, str]) -> bool:
        """Whether JSAPI pay params carry a paySign the WeChat client accepts."""
        message = "".join(f"{params[k]}\n" for k in ("appId", "timeStamp", "nonceStr", "package")).encode()
        return params.get("signType") == "RSA" and _verify(self.merchant_key.public_key(), message,
                                                             params.get("paySign", ""))


# -- Alipay -------------------------------------------------------------------

@dataclasses.dataclass
class AlipayKit:
    """One Alipay application and seller, with the app's key pair (signs
    our requests) and Alipay's (signs notifications and answers)."""

    app_key: rsa.RSAPrivateKey
    alipay_key: rsa.RSAPrivateKey
    app_id: str = "2021000117600001"
    seller_id: str = "2088102177000001"
    clock: Callable[[], float] = time.time

    @classmethod
    def create(cls, *, fresh: bool = False, **fields: Any) -> "AlipayKit":
        key = generate_rsa_key if fresh else cached_rsa_key
        return cls(app_key=fields.pop("app_key", None) or key("alipay-app"),
                   alipay_key=fields.pop("alipay_key", None) or key("alipay-platform"), **fields)

    def settings(self, gateway_url: str | None = None) -> dict[str, str]:
        """The ``learnsail.payments.alipay_*`` settings (the app key as PEM,
        Alipay's public key as the console shows it: bare base64)."""
        settings = {
            _P + "alipay_app_id": self.app_id,
            _P + "alipay_seller_id": self.seller_id,
            _P + "alipay_app_private_key": private_key_pem(self.app_key, traditional=True),
            _P + "alipay_public_key": public_key_base64(self.alipay_key),
        }
        if gateway_url:
            settings[_P + "alipay_gateway_url"] = gateway_url
        return settings

    @staticmethod
    def _content(params: Mapping[str, str], exclude: Iterable[str], skip_empty: bool) -> bytes:
        pairs = sorted((k, v) for k, v in params.items()
                       if k not in set(exclude) and not (skip_empty and v == ""))
        return "&".join(k + "=" + v for k, v in pairs).encode("utf-8")

    def sign_notification_params(self, params: Mapping[str, Any], *,
                                 key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
        """``params`` with ``sign_type=RSA2`` and the ``sign`` Alipay puts on
        a notification: over every parameter but sign and sign_type."""
        signed = {k: str(v) for k, v in params.items()}
        signed["sign_type"] = "RSA2"
        signed["sign"] = _sign(key or self.alipay_key, self._content(signed, ("sign", "sign_type"), False))
        return signed

    def notification_params(self, order_no: str, amount: Any, *, trade_status: str = "TRADE_SUCCESS",
                            trade_no: str | None = None, gmt_payment: dt.datetime | None = None,
                            notify_id: str | None = None, app_id: str | None = None,
                            seller_id: str | None = None, **extra: Any) -> dict[str, str]:
        """The (unsigned) parameters of a trade_status_sync notification."""
        now = dt.datetime.fromtimestamp(self.clock(), _CST)
        paid = (gmt_payment.astimezone(_CST) if gmt_payment else now).strftime("%Y-%m-%d %H:%M:%S")
        params = {
            "notify_time": now.strftime("%Y-%m-%d %H:%M:%S"),
            "notify_type": "trade_status_sync",
            "notify_id": notify_id or "ac05099524730693a8b330c5ecf72da" + _random_text(6).lower(),
            "charset": "utf-8",
            "version": "1.0",
            "app_id": app_id or self.app_id,
            "auth_app_id": app_id or self.app_id,
            "trade_no": trade_no or now.strftime("%Y%m%d") + "22001" + str(secrets.randbits(40)).zfill(13)[:13],
            "out_trade_no": order_no,
            "buyer_id": "2088102177846880",
            "buyer_logon_id": "csq***@sandbox.com",
            "seller_id": seller_id or self.seller_id,
            "trade_status": trade_status,
            "total_amount": _yuan(amount),
            "receipt_amount": _yuan(amount),
            "buyer_pay_amount": _yuan(amount),
            "invoice_amount": _yuan(amount),
            "point_amount": "0.00",
            "subject": "learnsail order",
            "gmt_create": now.strftime("%Y-%m-%d %H:%M:%S"),
            "fund_bill_list": json.dumps([{"amount": _yuan(amount), "fundChannel": "ALIPAYACCOUNT"}],
                                         separators=(",", ":")),
        }
        if trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            params["gmt_payment"] = paid
        params.update({k: str(v) for k, v in extra.items()})
        return params

    def payment_notification(self, order_no: str, amount: Any, *, key: rsa.RSAPrivateKey | None = None,
                             **fields: Any) -> bytes:
        """The form body of a signed payment notification."""
        params = self.sign_notification_params(self.notification_params(order_no, amount, **fields), key=key)
        return urllib.parse.urlencode(params).encode("ascii")

    def refund_notification(self, order_no: str, refund_no: str, refund_total: Any, total: Any, *,
                            full: bool | None = None, key: rsa.RSAPrivateKey | None = None,
                            **fields: Any) -> bytes:
        """A signed notification of a refund: ``refund_fee`` is the order's
        refunded total so far, as Alipay sends it; a full refund closes the
        trade."""
        full = Decimal(str(refund_total)) >= Decimal(str(total)) if full is None else full
        now = dt.datetime.fromtimestamp(self.clock(), _CST).strftime("%Y-%m-%d %H:%M:%S.000")
        params = self.notification_params(order_no, total, trade_status="TRADE_CLOSED" if full else "TRADE_SUCCESS",
                                          **fields)
        params.update({"out_biz_no": refund_no, "refund_fee": _yuan(refund_total), "gmt_refund": now})
        if full:
            params["gmt_close"] = now[:19]
        return urllib.parse.urlencode(self.sign_notification_params(params, key=key)).encode("ascii")

    def request_problem(self, params: Mapping[str, str]) -> str | None:
        """Why Alipay would refuse a request's signature (RSA2 over the
        sorted non-empty parameters except sign), or None."""
        if params.get("app_id") != self.app_id:
            return "wrong app_id"
        if params.get("sign_type") != "RSA2" or not params.get("sign"):
            return "not signed with RSA2"
        if not _verify(self.app_key.public_key(), self._content(params, ("sign",), True), params["sign"]):
            return "signature does not verify"
        return None

    def sign_response(self, method: str, response: Mapping[str, Any], *, signed: bool = True,
                      key: rsa.RSAPrivateKey | None = None) -> bytes:
        """An answer as Alipay writes it: ``{"<method>_response": {...},
        "sign": ...}`` signed over the exact text of the response object."""
        name = "error_response" if method == "error" else method.replace(".", "_") + "_response"
        text = json.dumps(dict(response), ensure_ascii=False, separators=(",", ":"))
        out = '{"' + name + '":' + text
        if signed:
            out += ',"sign":"' + _sign(key or self.alipay_key, text.encode("utf-8")) + '"'
        return (out + "}").encode("utf-8")


# -- loopback fake platforms ---------------------------------------------------

@dataclasses.dataclass
class RecordedRequest:
    """A request a fake platform received."""

    method: str
    path: str                    #: with the query string
    headers: dict[str, str]      #: lower-cased names
    body: bytes
    problem: str | None = None   #: why its signature was refused, or None
    params: dict[str, str] = dataclasses.field(default_factory=dict)  #: Alipay: the form parameters

    @property
    def authorized(self) -> bool:
        return self.problem is None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _LoopbackPlatform(abc.ABC):
    """An http.server in a daemon thread on 127.0.0.1 (a free port), with
    the request log and the failure switches both fakes share."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []
        self._failures: list[tuple[int, bytes, dict[str, str]]] = []
        self._tamper: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "_LoopbackPlatform":
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    status, out_headers, out = fake._respond(self.command, self.path, headers, body)
                except Exception as exc:  # a bug in the fake: say so loudly in the test
                    fake.errors.append(exc)
                    status, out_headers, out = 599, {"Content-Type": "text/plain"}, repr(exc).encode()
                self.send_response(status)
                for name, value in out_headers.items():
                    self.send_header(name, value)
                if status not in (204, 304):
                    self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if status not in (204, 304) and self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake platform is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, status: int = 500, count: int = 1, body: bytes | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (without
        acting on them), as a platform having a bad day."""
        self.respond_next(status, body if body is not None else self._failure_body(status), count)

    def respond_next(self, status: int, body: bytes, count: int = 1,
                     headers: Mapping[str, str] | None = None) -> None:
        """Answer the next ``count`` requests with exactly ``status``,
        ``body`` and ``headers`` (default: a JSON content type, no signature
        headers), whatever they ask: for answers a test writes itself."""
        with self.lock:
            self._failures.extend([(status, body, dict(headers or {"Content-Type": "application/json"}))] * count)

    def tamper_next(self, what: str = "body", count: int = 1) -> None:
        """Spoil the next ``count`` answers after signing them: ``body``
        changes a byte of the body, ``signature`` a byte of the signature."""
        if what not in ("body", "signature"):
            raise ValueError("tamper 'body' or 'signature'")
        with self.lock:
            self._tamper.extend([what] * count)

    def _failure_body(self, status: int) -> bytes:
        return b""

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes
                 ) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if self._failures:
                status, out, out_headers = self._failures.pop(0)
                self.requests.append(RecordedRequest(method, path, headers, body, "answered as told"))
                return status, out_headers, out
            tamper = self._tamper.pop(0) if self._tamper else None
            status, out_headers, out = self.handle(method, path, headers, body)
        if tamper:
            out_headers, out = self._spoil(tamper, out_headers, out)
        return status, out_headers, out

    @abc.abstractmethod
    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, str], bytes]:
        ...

    @abc.abstractmethod
    def _spoil(self, what: str, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        ...


def _flip_char(text: str, index: int) -> str:
    index %= max(len(text), 1)
    ch = text[index]
    return text[:index] + ("B" if ch == "A" else "A") + text[index + 1:]


class FakeWeChatPay(_LoopbackPlatform):
    """WeChat Pay API v3 on loopback for the merchant of ``kit``.

    It checks every request's ``Authorization`` (401 ``SIGN_ERROR`` when it
    does not verify, as WeChat Pay does), signs every answer with the kit's
    platform key, and keeps orders (``orders``: out_trade_no -> transaction
    dict, as the query answers it) and refunds (``refunds``: out_refund_no ->
    refund dict).  Implemented: ``POST /v3/pay/transactions/{jsapi,native,h5}``,
    ``GET /v3/pay/transactions/out-trade-no/{no}?mchid=``,
    ``POST /v3/pay/transactions/out-trade-no/{no}/close``,
    ``POST /v3/refund/domestic/refunds``.
    """

    def __init__(self, kit: WeChatKit, *, refund_status: str = "SUCCESS") -> None:
        super().__init__()
        self.kit = kit
        self.refund_status = refund_status  #: what new refunds answer: SUCCESS or PROCESSING
        self.orders: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.prepay: dict[str, dict[str, Any]] = {}  #: out_trade_no -> the prepay request body

    @property
    def url(self) -> str:
        """The ``wechat_api_base`` to configure."""
        return self.base_url

    def settings(self, **kw: Any) -> dict[str, str]:
        return self.kit.settings(self.url, **kw)

    def gateway(self, **kw: Any):
        """A :class:`WeChatPayGateway` configured for this fake."""
        from learnsail_payments.gateways.wechat import WeChatPayGateway

        return WeChatPayGateway.from_settings(self.settings(), **kw)

    def reset(self) -> None:
        with self.lock:
            self.orders.clear()
            self.refunds.clear()
            self.prepay.clear()
            self.requests.clear()

    # state a test sets up

    def add_order(self, order_no: str, amount: Any, *, trade_state: str = "NOTPAY", **fields: Any) -> dict:
        """An order WeChat Pay knows (``trade_state="SUCCESS"``: paid at the
        gateway, whatever our side thinks)."""
        with self.lock:
            self.orders[order_no] = self.kit.transaction(order_no, amount, trade_state=trade_state, **fields)
            return self.orders[order_no]

    def pay(self, order_no: str, **fields: Any) -> tuple[dict[str, str], bytes]:
        """The buyer pays ``order_no``: it turns SUCCESS here, and the signed
        TRANSACTION.SUCCESS notification WeChat Pay would send is returned
        as (headers, body)."""
        with self.lock:
            order = self.orders.get(order_no)
            if order is None:
                raise KeyError(f"the fake WeChat Pay has no order {order_no}")
            if order["trade_state"] != "SUCCESS":
                paid = self.kit.transaction(order_no, Decimal(order["amount"]["total"]) / 100,
                                            trade_state="SUCCESS", trade_type=order.get("trade_type") or "NATIVE",
                                            **fields)
                order.update(paid)
            data = json.loads(json.dumps(order))
        return self.kit.notification("TRANSACTION.SUCCESS", data)

    def notify_url(self, order_no: str) -> str | None:
        """The notify_url the prepay request gave for ``order_no``."""
        return (self.prepay.get(order_no) or {}).get("notify_url")

    def refund_notification(self, refund_no: str) -> tuple[dict[str, str], bytes]:
        """The signed REFUND.<status> notification of a refund made here."""
        with self.lock:
            refund = self.refunds[refund_no]
            data = {"mchid": self.kit.mchid, "out_trade_no": refund["out_trade_no"],
                    "transaction_id": refund["transaction_id"], "out_refund_no": refund_no,
                    "refund_id": refund["refund_id"], "refund_status": refund["status"],
                    "success_time": refund.get("success_time"), "user_received_account": "支付用户零钱",
                    "amount": {k: refund["amount"][k] for k in ("total", "refund", "payer_total", "payer_refund")}}
        return self.kit.notification(f"REFUND.{data['refund_status']}", data)

    # the API

    def _failure_body(self, status: int) -> bytes:
        return json.dumps({"code": "SYSTEM_ERROR", "message": "系统错误"}, ensure_ascii=False).encode()

    def _answer(self, status: int, data: Any = None) -> tuple[int, dict[str, str], bytes]:
        body = b"" if data is None else json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = self.kit.sign_message(body)
        headers.pop("Wechatpay-Signature-Type", None)
        headers.update({"Content-Type": "application/json; charset=utf-8", "Request-ID": _random_text(16)})
        return status, headers, body

    def _error(self, status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
        return self._answer(status, {"code": code, "message": message})

    def _spoil(self, what: str, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        if what == "signature":
            headers = dict(headers, **{"Wechatpay-Signature": _flip_char(headers["Wechatpay-Signature"], 10)})
        else:  # still the same JSON, no longer the signed bytes
            body = body + b" "
        return headers, body

    def handle(self, method, path, headers, body):
        problem = self.kit.authorization_problem(method, path, body, headers.get("authorization"))
        self.requests.append(RecordedRequest(method, path, headers, body, problem))
        if problem:
            return self._error(401, "SIGN_ERROR", f"签名错误: {problem}")
        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return self._error(400, "PARAM_ERROR", "请求体不是JSON")
        m = re.fullmatch(r"/v3/pay/transactions/(jsapi|native|h5|app)", url.path)
        if m and method == "POST":
            return self._prepay(m.group(1), data)
        m = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)", url.path)
        if m and method == "GET":
            if query.get("mchid") != self.kit.mchid:
                return self._error(400, "PARAM_ERROR", "mchid错误")
            order = self.orders.get(urllib.parse.unquote(m.group(1)))
            if order is None:
                return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
            return self._answer(200, order)
        m = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)/close", url.path)
        if m and method == "POST":
            return self._close(urllib.parse.unquote(m.group(1)), data)
        if url.path == "/v3/refund/domestic/refunds" and method == "POST":
            return self._refund(data)
        return self._error(404, "NOT_FOUND", "接口不存在")

    def _prepay(self, scene: str, data: dict[str, Any]):
        if data.get("appid") != self.kit.appid or data.get("mchid") != self.kit.mchid:
            return self._error(400, "PARAM_ERROR", "appid和mch_id不匹配")
        for name in ("description", "out_trade_no", "notify_url", "amount"):
            if not data.get(name):
                return self._error(400, "PARAM_ERROR", f"缺少参数 {name}")
        total = data["amount"].get("total")
        if not isinstance(total, int) or total <= 0:
            return self._error(400, "PARAM_ERROR", "amount.total 必须是正整数（分）")
        if scene == "jsapi" and not (data.get("payer") or {}).get("openid"):
            return self._error(400, "PARAM_ERROR", "JSAPI支付必须传openid")
        order_no = data["out_trade_no"]
        existing = self.orders.get(order_no)
        if existing and existing["trade_state"] in ("SUCCESS", "REFUND"):
            return self._error(400, "ORDERPAID", "该订单已支付")
        if existing and existing["trade_state"] == "CLOSED":
            return self._error(400, "ORDER_CLOSED", "订单已关闭")
        if existing and existing["amount"]["total"] != total:
            return self._error(400, "INVALID_REQUEST", "订单号重复，且参数不一致")
        trade_type = {"jsapi": "JSAPI", "native": "NATIVE", "h5": "MWEB", "app": "APP"}[scene]
        order = self.kit.transaction(order_no, Decimal(total) / 100, trade_state="NOTPAY", trade_type=trade_type)
        order["trade_type"] = trade_type
        self.orders[order_no] = order
        self.prepay[order_no] = data
        prepay_id = "wx" + _random_text(30).lower()
        if scene == "native":
            return self._answer(200, {"code_url": f"weixin://wxpay/bizpayurl?pr={_random_text(9)}"})
        if scene == "h5":
            return self._answer(200, {"h5_url": f"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?"
                                                f"prepay_id={prepay_id}&package=1"})
        return self._answer(200, {"prepay_id": prepay_id})

    def _close(self, order_no: str, data: dict[str, Any]):
        if data.get("mchid") != self.kit.mchid:
            return self._error(400, "PARAM_ERROR", "mchid错误")
        order = self.orders.get(order_no)
        if order is None:
            return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
        if order["trade_state"] in ("SUCCESS", "REFUND"):
            return self._error(400, "ORDERPAID", "订单已支付")
        order["trade_state"], order["trade_state_desc"] = "CLOSED", "已关闭"
        return self._answer(204)

    def _refund(self, data: dict[str, Any]):
        refund_no = data.get("out_refund_no")
        amount = data.get("amount") or {}
        if not refund_no or not isinstance(amount.get("refund"), int) or not isinstance(amount.get("total"), int):
            return self._error(400, "PARAM_ERROR", "缺少参数")
        if refund_no in self.refunds:
            return self._answer(200, self.refunds[refund_no])
        order = self.orders.get(data.get("out_trade_no") or "")
        if order is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if order["trade_state"] not in ("SUCCESS", "REFUND"):
            return self._error(400, "INVALID_REQUEST", "订单未支付")
        if amount["total"] != order["amount"]["total"]:
            return self._error(400, "PARAM_ERROR", "订单金额与实际不符")
        refunded = sum(r["amount"]["refund"] for r in self.refunds.values()
                       if r["out_trade_no"] == order["out_trade_no"] and r["status"] != "CLOSED")
        if amount["refund"] <= 0 or refunded + amount["refund"] > order["amount"]["total"]:
            return self._error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        now = dt.datetime.fromtimestamp(self.kit.clock(), _CST).isoformat(timespec="seconds")
        refund = {
            "refund_id": "50300" + str(secrets.randbits(60)).zfill(24)[:24],
            "out_refund_no": refund_no,
            "transaction_id": order.get("transaction_id"),
            "out_trade_no": order["out_trade_no"],
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": now,
            "status": self.refund_status,
            "funds_account": "AVAILABLE",
            "amount": {"total": amount["total"], "refund": amount["refund"], "payer_total": amount["total"],
                       "payer_refund": amount["refund"], "settlement_refund": amount["refund"],
                       "settlement_total": amount["total"], "discount_refund": 0, "currency": "CNY"},
        }
        if self.refund_status == "SUCCESS":
            refund["success_time"] = now
        self.refunds[refund_no] = refund
        order["trade_state"], order["trade_state_desc"] = "REFUND", "转入退款"
        return self._answer(200, refund)


class FakeAlipay(_LoopbackPlatform):
    """Alipay's ``gateway.do`` on loopback for the application of ``kit``.

    It checks every request's RSA2 signature and app_id (``error_response``
    ``isv.invalid-signature`` otherwise), answers ``alipay.trade.query``,
    ``.close``, ``.refund`` and ``.fastpay.refund.query`` signed with the
    kit's Alipay key, and opens page/WAP payments on a GET of the signed URL
    (or :meth:`accept`).  ``orders``: out_trade_no -> dict(total_amount
    (Decimal), subject, trade_status, trade_no, send_pay_date, notify_url,
    refunded (Decimal)); ``refunds``: (out_trade_no, out_request_no) ->
    refund_amount (Decimal).
    """

    def __init__(self, kit: AlipayKit) -> None:
        super().__init__()
        self.kit = kit
        self.orders: dict[str, dict[str, Any]] = {}
        self.refunds: dict[tuple[str, str], Decimal] = {}

    @property
    def url(self) -> str:
        """The ``alipay_gateway_url`` to configure."""
        return self.base_url + "/gateway.do"

    def settings(self) -> dict[str, str]:
        return self.kit.settings(self.url)

    def gateway(self, **kw: Any):
        """An :class:`AlipayGateway` configured for this fake."""
        from learnsail_payments.gateways.alipay import AlipayGateway

        return AlipayGateway.from_settings(self.settings(), **kw)

    def reset(self) -> None:
        with self.lock:
            self.orders.clear()
            self.refunds.clear()
            self.requests.clear()

    # state a test sets up

    def add_order(self, order_no: str, amount: Any, *, trade_status: str = "WAIT_BUYER_PAY",
                  subject: str = "learnsail order", notify_url: str | None = None) -> dict[str, Any]:
        """A trade Alipay knows (``trade_status="TRADE_SUCCESS"``: paid at the
        gateway, whatever our side thinks)."""
        with self.lock:
            order = {"out_trade_no": order_no, "total_amount": Decimal(_yuan(amount)), "subject": subject,
                     "trade_status": "WAIT_BUYER_PAY", "trade_no": None, "send_pay_date": None,
                     "notify_url": notify_url, "refunded": Decimal("0.00")}
            self.orders[order_no] = order
            if trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
                self._mark_paid(order)
            order["trade_status"] = trade_status
            return order

    def accept(self, pay_params: Mapping[str, str] | str) -> dict[str, Any]:
        """The buyer opens what ``create_payment`` returned (``{"url": ...}``,
        ``{"order_string": ...}`` or either string): its signature is checked
        and the trade is created here, unpaid.  Raises ``ValueError`` if
        Alipay would refuse it."""
        if isinstance(pay_params, Mapping):
            pay_params = pay_params.get("url") or pay_params.get("order_string") or ""
        query = pay_params.split("?", 1)[1] if "?" in pay_params else pay_params
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        problem = self.kit.request_problem(params)
        if problem:
            raise ValueError(f"Alipay refuses the payment request: {problem}")
        with self.lock:
            return self._open(params)

    def pay(self, order_no: str, **fields: Any) -> bytes:
        """The buyer pays ``order_no``: it turns TRADE_SUCCESS here, and the
        signed form body of the notification Alipay would send is returned."""
        with self.lock:
            order = self.orders.get(order_no)
            if order is None:
                raise KeyError(f"the fake Alipay has no trade {order_no}")
            if order["trade_status"] == "WAIT_BUYER_PAY":
                self._mark_paid(order, fields.get("trade_no"))
            fields.setdefault("trade_no", order["trade_no"])
            amount, trade_no = order["total_amount"], fields.pop("trade_no")
        return self.kit.payment_notification(order_no, amount, trade_no=trade_no, **fields)

    def notify_url(self, order_no: str) -> str | None:
        return (self.orders.get(order_no) or {}).get("notify_url")

    def refund_notification(self, order_no: str, refund_no: str) -> bytes:
        """The signed notification of a refund made here (``refund_fee`` =
        the order's refunded total, as Alipay sends it)."""
        with self.lock:
            order = self.orders[order_no]
            if (order_no, refund_no) not in self.refunds:
                raise KeyError(f"the fake Alipay has no refund {refund_no} of {order_no}")
            return self.kit.refund_notification(order_no, refund_no, order["refunded"], order["total_amount"],
                                                trade_no=order["trade_no"])

    def _mark_paid(self, order: dict[str, Any], trade_no: str | None = None) -> None:
        now = dt.datetime.fromtimestamp(self.kit.clock(), _CST)
        order["trade_status"] = "TRADE_SUCCESS"
        order["trade_no"] = trade_no or now.strftime("%Y%m%d") + "22001" + str(secrets.randbits(40)).zfill(13)[:13]
        order["send_pay_date"] = now.strftime("%Y-%m-%d %H:%M:%S")

    # the API

    def _failure_body(self, status: int) -> bytes:
        return b"<html><body>502 Bad Gateway</body></html>" if status >= 500 else b""

    def _spoil(self, what: str, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        text = body.decode("utf-8")
        if what == "signature":
            m = re.search(r'"sign":"([^"]+)"', text)
            if m:
                text = text[:m.start(1)] + _flip_char(m.group(1), 10) + text[m.end(1):]
        else:
            text = re.sub(r'"msg":"([^"]*)"', lambda m: '"msg":"' + m.group(1) + 'x"', text, count=1)
        return headers, text.encode("utf-8")

    def handle(self, method, path, headers, body):
        url = urllib.parse.urlsplit(path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if body:
            params.update(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        problem = None if url.path == "/gateway.do" else "unknown path"
        problem = problem or self.kit.request_problem(params)
        self.requests.append(RecordedRequest(method, path, headers, body, problem, params))
        api = params.get("method", "")
        if problem:
            if url.path != "/gateway.do":
                return 404, {"Content-Type": "text/plain"}, b"not found"
            return self._json(self.kit.sign_response("error", {
                "code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                "sub_msg": f"验签出错: {problem}"}, signed=False))
        try:
            biz = json.loads(params.get("biz_content") or "{}")
        except ValueError:
            return self._business(api, "40002", "isv.invalid-parameter", "biz_content不是JSON")
        if method == "GET" and api in ("alipay.trade.page.pay", "alipay.trade.wap.pay"):
            self._open(params)
            return 200, {"Content-Type": "text/html; charset=utf-8"}, "<html><body>收银台 (fake)</body></html>".encode()
        handler = {
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
        }.get(api)
        if handler is None:
            return self._business(api or "error", "40004", "isv.invalid-method", "不存在的方法名")
        return handler(api, biz)

    @staticmethod
    def _json(body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/html;charset=utf-8"}, body

    def _business(self, api: str, code: str, sub_code: str, sub_msg: str, **fields: Any):
        msg = {"40004": "Business Failed", "40002": "Invalid Arguments", "20000": "Service Currently Unavailable"}
        response = {"code": code, "msg": msg.get(code, "Failed"), "sub_code": sub_code, "sub_msg": sub_msg, **fields}
        return self._json(self.kit.sign_response(api, response))

    def _success(self, api: str, **fields: Any):
        return self._json(self.kit.sign_response(api, {"code": "10000", "msg": "Success", **fields}))

    def _open(self, params: Mapping[str, str]) -> dict[str, Any]:
        biz = json.loads(params.get("biz_content") or "{}")
        order_no = biz["out_trade_no"]
        order = self.orders.get(order_no)
        if order is None:
            order = self.add_order(order_no, biz["total_amount"], subject=biz.get("subject") or "",
                                   notify_url=params.get("notify_url"))
        order["biz_content"] = biz
        return order

    def _query(self, api: str, biz: dict[str, Any]):
        order = self.orders.get(biz.get("out_trade_no") or "")
        if order is None:
            return self._business(api, "40004", "ACQ.TRADE_NOT_EXIST", "交易不存在",
                                  out_trade_no=biz.get("out_trade_no"))
        fields = {"trade_no": order["trade_no"], "out_trade_no": order["out_trade_no"],
                  "buyer_logon_id": "csq***@sandbox.com", "trade_status": order["trade_status"],
                  "total_amount": _yuan(order["total_amount"]), "buyer_pay_amount": "0.00",
                  "point_amount": "0.00", "invoice_amount": "0.00", "receipt_amount": "0.00"}
        if order["send_pay_date"]:
            fields.update(send_pay_date=order["send_pay_date"], buyer_pay_amount=_yuan(order["total_amount"]),
                          receipt_amount=_yuan(order["total_amount"]), buyer_user_id="2088102177846880")
        if not order["trade_no"]:
            fields.pop("trade_no")
        return self._success(api, **fields)

    def _close(self, api: str, biz: dict[str, Any]):
        order = self.orders.get(biz.get("out_trade_no") or "")
        if order is None:
            return self._business(api, "40004", "ACQ.TRADE_NOT_EXIST", "交易不存在")
        if order["trade_status"] != "WAIT_BUYER_PAY":
            return self._business(api, "40004", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        order["trade_status"] = "TRADE_CLOSED"
        return self._success(api, out_trade_no=order["out_trade_no"], **({"trade_no": order["trade_no"]}
                                                                           if order["trade_no"] else {}))

    def _refund(self, api: str, biz: dict[str, Any]):
        order = self.orders.get(biz.get("out_trade_no") or "")
        if order is None:
            return self._business(api, "40004", "ACQ.TRADE_NOT_EXIST", "交易不存在")
        try:
            amount = Decimal(str(biz.get("refund_amount")))
        except ArithmeticError:
            return self._business(api, "40002", "isv.invalid-parameter", "refund_amount格式错误")
        request_no = biz.get("out_request_no") or order["out_trade_no"]
        common = {"trade_no": order["trade_no"], "out_trade_no": order["out_trade_no"],
                  "buyer_logon_id": "csq***@sandbox.com", "buyer_user_id": "2088102177846880"}
        known = self.refunds.get((order["out_trade_no"], request_no))
        if known is not None:
            if known != amount:
                return self._business(api, "40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额与原请求不一致")
            return self._success(api, fund_change="N", refund_fee=_yuan(order["refunded"]), **common)
        if order["trade_status"] not in ("TRADE_SUCCESS",):
            return self._business(api, "40004", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if amount <= 0 or order["refunded"] + amount > order["total_amount"]:
            return self._business(api, "40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        self.refunds[(order["out_trade_no"], request_no)] = amount
        order["refunded"] += amount
        if order["refunded"] == order["total_amount"]:
            order["trade_status"] = "TRADE_CLOSED"
        now = dt.datetime.fromtimestamp(self.kit.clock(), _CST).strftime("%Y-%m-%d %H:%M:%S")
        return self._success(api, fund_change="Y", refund_fee=_yuan(order["refunded"]), gmt_refund_pay=now,
                             **common)

    def _refund_query(self, api: str, biz: dict[str, Any]):
        order = self.orders.get(biz.get("out_trade_no") or "")
        request_no = biz.get("out_request_no") or ""
        amount = self.refunds.get((biz.get("out_trade_no") or "", request_no))
        if order is None or amount is None:  # Alipay answers success without refund_status
            return self._success(api, out_trade_no=biz.get("out_trade_no"), out_request_no=request_no)
        return self._success(api, trade_no=order["trade_no"], out_trade_no=order["out_trade_no"],
                             out_request_no=request_no, total_amount=_yuan(order["total_amount"]),
                             refund_amount=_yuan(amount), refund_status="REFUND_SUCCESS")


def write_pem_files(directory: str | os.PathLike[str], **files: str) -> dict[str, str]:
    """Write ``name=pem_text`` files into ``directory``; their paths by name
    (for settings that take key or certificate files)."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name, text in files.items():
        path = os.path.join(directory, name)
        with open(path, "w", encoding="ascii") as handle:
            handle.write(text)
        paths[name] = path
    return paths
