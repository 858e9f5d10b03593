"""WeChat Pay API v3 (direct merchant): JSAPI, Native and H5 payments,
verified notifications, query, close and refund.

The published algorithms, implemented here on ``cryptography``:

- every request carries ``Authorization: WECHATPAY2-SHA256-RSA2048
  mchid="..",nonce_str="..",signature="..",timestamp="..",serial_no=".."``
  where the signature is RSA-SHA256 (PKCS#1 v1.5) with the merchant's key
  over ``METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n``;
- every answer and every notification is signed by WeChat Pay over
  ``timestamp\\nnonce\\nbody\\n`` (headers ``Wechatpay-Timestamp``,
  ``-Nonce``, ``-Signature``, ``-Serial``) with the platform key named by the
  serial: a platform certificate, or a "WeChat Pay public key" whose id
  (``PUB_KEY_ID_...``) stands in for the serial.  Both are verified, and
  the timestamp must be within 300 s of our clock;
- a notification's ``resource`` is AES-256-GCM encrypted with the APIv3 key
  (``nonce``, ``associated_data``, base64 ``ciphertext`` with the tag).

Amounts are fen (integers) at WeChat and yuan Decimals on our side; times
are RFC 3339 in +08:00 at WeChat and aware UTC on our side.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Mapping

from learnsail.settings import Setting, SettingError

from ._crypto import (
    DecryptionFailed,
    PrivateKey,
    PublicKey,
    aes_gcm_decrypt,
    as_secret,
    certificate_serial,
    load_certificates,
    load_private_key,
    load_public_key,
    nonce_str,
    rsa_sign,
    rsa_verify,
    unescape_newlines,
)
from ._formats import CST, SettingsReader, aware_utc, check_endpoint, fen_to_yuan, quoted, yuan_to_fen
from ._http import HttpClient, Response
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

log = logging.getLogger("learnsail.payments.wechat")

DEFAULT_API_BASE = "https://api.mch.weixin.qq.com"
#: seconds a signed timestamp (notification or answer) may be off our clock
TIMESTAMP_WINDOW = 300

_P = "learnsail.payments."

SETTINGS: list[Setting] = [
    Setting(_P + "wechat_appid", "",
            "WeChat Pay: the AppID (official account, mini program or open-platform app) the "
            "merchant account is bound to. WeChat Pay is off while every wechat_* key setting is empty."),
    Setting(_P + "wechat_mchid", "", "WeChat Pay: the merchant id (mchid)."),
    Setting(_P + "wechat_api_v3_key", "",
            "WeChat Pay: the 32-character APIv3 key set in the merchant platform; it decrypts "
            "notifications. Secret: prefer the LEARNSAIL_PAYMENTS_WECHAT_API_V3_KEY variable.",
            as_secret),
    Setting(_P + "wechat_merchant_serial", "",
            "WeChat Pay: the serial number of the merchant API certificate whose private key signs "
            "our requests."),
    Setting(_P + "wechat_merchant_private_key", "",
            "WeChat Pay: the merchant API private key (apiclient_key.pem): PEM text or the path of "
            "the PEM file. Secret.",
            as_secret),
    Setting(_P + "wechat_platform_certs", "",
            "WeChat Pay: the platform certificates or WeChat Pay public keys that verify WeChat's "
            "notifications and answers, chosen by the Wechatpay-Serial header. A directory (every "
            "*.pem in it: certificates are known by their own serial, a public key by its file name, "
            "e.g. PUB_KEY_ID_0114...pem), PEM files, or SERIAL=path entries, separated by `;`; or "
            "certificates as inline PEM. List the old and the new while WeChat rotates them."),
    Setting(_P + "wechat_api_base", DEFAULT_API_BASE,
            "WeChat Pay: base URL of the API (https; tests point it at the test kit's loopback fake)."),
]

_REQUIRED = ["wechat_appid", "wechat_mchid", "wechat_api_v3_key", "wechat_merchant_serial",
             "wechat_merchant_private_key", "wechat_platform_certs"]

_NOTIFICATION_HEADERS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")

#: trade_state -> our QueryResult/Notification status
_TRADE_STATES = {
    "SUCCESS": "paid",
    "REFUND": "refunded",   # paid, then (partly) refunded
    "NOTPAY": "pending",
    "USERPAYING": "pending",
    "PAYERROR": "pending",  # this attempt failed; the order may still be paid
    "CLOSED": "closed",
    "REVOKED": "closed",
}
_REFUND_STATES = {"SUCCESS": "succeeded", "PROCESSING": "processing", "ABNORMAL": "failed", "CLOSED": "failed"}
_SCENES = ("jsapi", "native", "h5")


def _normal_serial(serial: str) -> str:
    """Serials compare case-insensitively, and a hexadecimal one without its
    leading zeros (a certificate's serial is a number)."""
    serial = serial.strip().upper()
    if re.fullmatch(r"[0-9A-F]+", serial):
        return serial.lstrip("0") or "0"
    return serial


def load_platform_keys(value: str, setting: str = _P + "wechat_platform_certs") -> dict[str, PublicKey]:
    """The platform keys by serial, from the ``wechat_platform_certs`` value
    (see :data:`SETTINGS`)."""
    text = unescape_newlines(str(value or "").strip())
    if not text:
        raise SettingError(f"{setting} is empty")
    keys: dict[str, PublicKey] = {}
    if "-----BEGIN" in text:
        certs = load_certificates(text.encode("ascii", "replace"))
        if not certs:
            raise SettingError(f"{setting}: the inline PEM holds no certificate (a WeChat Pay public key "
                               "needs a SERIAL=path entry or a file named after its id)")
        for cert in certs:
            keys[_normal_serial(certificate_serial(cert))] = cert.public_key()
        return keys
    for entry in re.split(r"[;\n]+", text):
        entry = entry.strip()
        if not entry:
            continue
        serial, sep, path_text = entry.partition("=")
        if not sep:
            serial, path_text = "", entry
        path = Path(path_text.strip()).expanduser()
        if path.is_dir():
            if serial:
                raise SettingError(f"{setting}: {serial.strip()}= names a directory; name a file")
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".pem", ".crt") and p.is_file())
            if not files:
                raise SettingError(f"{setting}: the directory {path} holds no .pem file")
            for file in files:
                _add_key_file(keys, file, "", setting)
        else:
            _add_key_file(keys, path, serial.strip(), setting)
    if not keys:
        raise SettingError(f"{setting} names no certificate or public key")
    return keys


def _add_key_file(keys: dict[str, PublicKey], path: Path, serial: str, setting: str) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingError(f"{setting}: cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    certs = load_certificates(data)
    if certs:
        for cert in certs:
            own = _normal_serial(certificate_serial(cert))
            if serial and len(certs) == 1 and _normal_serial(serial) != own:
                raise SettingError(f"{setting}: {path} is the certificate {certificate_serial(cert)}, "
                                   f"not {serial}")
            keys[own] = cert.public_key()
        return
    # a WeChat Pay public key: its id comes from the entry or the file name
    keys[_normal_serial(serial or path.stem)] = load_public_key(data, f"{setting} ({path})")


def _rfc3339(moment: dt.datetime) -> str:
    return aware_utc(moment).astimezone(CST).isoformat(timespec="seconds")


def _parse_time(text: Any) -> dt.datetime | None:
    if not text:
        return None
    try:
        return aware_utc(dt.datetime.fromisoformat(str(text)))
    except ValueError:
        return None



class _Answer:
    __slots__ = ("status", "data", "verified")

    def __init__(self, status: int, data: dict[str, Any], verified: bool) -> None:
        self.status, self.data, self.verified = status, data, verified

    @property
    def code(self) -> str:
        return str(self.data.get("code") or "")


class WeChatPayGateway(Gateway):
    """WeChat Pay API v3 for one direct merchant (``mchid``) and one AppID.

    Build it with :meth:`from_settings` or directly (keys as
    ``cryptography`` objects).  ``clock`` returns seconds since the epoch
    (tests move it); ``http`` is anything with the
    :class:`~learnsail_payments.gateways._http.HttpClient` ``request``
    method.  Immutable after construction, hence thread-safe.
    """

    name = "wechat"

    def __init__(self, *, appid: str, mchid: str, api_v3_key: str | bytes, merchant_serial: str,
                 merchant_private_key: PrivateKey, platform_keys: Mapping[str, PublicKey],
                 api_base: str = DEFAULT_API_BASE, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time, http: Any = None,
                 timestamp_window: int = TIMESTAMP_WINDOW) -> None:
        key = api_v3_key.encode("utf-8") if isinstance(api_v3_key, str) else bytes(api_v3_key)
        if len(key) != 32:
            raise ValueError("the WeChat Pay APIv3 key must be 32 bytes")
        if not platform_keys:
            raise ValueError("WeChat Pay needs at least one platform certificate or public key")
        self.appid = self.app_id = appid
        self.mchid = self.merchant_id = mchid
        self.merchant_serial = merchant_serial
        self.api_base = api_base.rstrip("/")
        self._api_v3_key = key
        self._private_key = merchant_private_key
        self._platform_keys = {_normal_serial(s): k for s, k in platform_keys.items()}
        self._clock = clock
        self._http = http or HttpClient("WeChat Pay", timeout)
        self.timestamp_window = timestamp_window

    def __repr__(self) -> str:
        return f"<WeChatPayGateway mchid={self.mchid} appid={self.appid} api={self.api_base}>"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                      http: Any = None) -> "WeChatPayGateway | None":
        """The gateway the settings describe; ``None`` when WeChat Pay is not
        configured at all; :class:`learnsail.settings.SettingError` (a
        ``ValueError``) naming the setting when it is only partly configured
        or a value is unusable.  Errors never quote a key."""
        reader = SettingsReader(settings)
        values = reader.required("WeChat Pay", _REQUIRED)
        if values is None:
            return None
        api_v3_key = values["wechat_api_v3_key"].encode("utf-8")
        if len(api_v3_key) != 32:
            raise SettingError(f"{_P}wechat_api_v3_key must be the 32-character APIv3 key "
                               f"(the value has {len(api_v3_key)} bytes)")
        return cls(
            appid=values["wechat_appid"],
            mchid=values["wechat_mchid"],
            api_v3_key=api_v3_key,
            merchant_serial=values["wechat_merchant_serial"],
            merchant_private_key=load_private_key(values["wechat_merchant_private_key"],
                                                  _P + "wechat_merchant_private_key"),
            platform_keys=load_platform_keys(values["wechat_platform_certs"]),
            api_base=check_endpoint(reader.get("wechat_api_base", DEFAULT_API_BASE), _P + "wechat_api_base"),
            clock=clock,
            http=http,
        )

    @property
    def platform_serials(self) -> list[str]:
        """The serials of the configured platform keys (for operators)."""
        return sorted(self._platform_keys)

    # -- payments ---------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> dict[str, Any]:
        scene = (request.scene or ("jsapi" if request.payer_openid else "native")).lower()
        if scene not in _SCENES:
            raise GatewayError(f"WeChat Pay has no {scene!r} payment (jsapi, native, h5)", code="UNSUPPORTED_SCENE")
        if request.currency != "CNY":
            raise GatewayError(f"WeChat Pay (domestic) takes CNY, not {request.currency!r}",
                               code="UNSUPPORTED_CURRENCY")
        payload: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "description": request.title[:127] or request.order_no,
            "out_trade_no": request.order_no,
            "time_expire": _rfc3339(request.expires_at),
            "notify_url": request.notify_url,
            "amount": {"total": yuan_to_fen(request.amount), "currency": request.currency},
        }
        if scene == "jsapi":
            if not request.payer_openid:
                raise GatewayError("a JSAPI payment needs the payer's openid", code="PAYER_OPENID_REQUIRED")
            payload["payer"] = {"openid": request.payer_openid}
        if scene == "h5":
            if not request.client_ip:
                raise GatewayError("an H5 payment needs the payer's IP address", code="CLIENT_IP_REQUIRED")
            payload["scene_info"] = {"payer_client_ip": request.client_ip, "h5_info": {"type": "Wap"}}
        elif request.client_ip:
            payload["scene_info"] = {"payer_client_ip": request.client_ip}
        answer = self._call("POST", f"/v3/pay/transactions/{scene}", payload)
        if answer.status != 200:
            raise self._refused(answer)
        data = answer.data
        if scene == "native":
            return {"code_url": self._field(data, "code_url")}
        if scene == "h5":
            return {"h5_url": self._field(data, "h5_url")}
        return self.jsapi_params(self._field(data, "prepay_id"))

    def jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """What ``wx.requestPayment`` / ``WeixinJSBridge`` take: paySign is
        RSA-SHA256 with the merchant key over
        ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``."""
        params = {
            "appId": self.appid,
            "timeStamp": str(int(self._clock())),
            "nonceStr": nonce_str(),
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
        }
        message = "".join(params[k] + "\n" for k in ("appId", "timeStamp", "nonceStr", "package"))
        params["paySign"] = rsa_sign(self._private_key, message.encode("utf-8"))
        return params

    # -- notifications ----------------------------------------------------

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        h = {str(k).lower(): str(v) for k, v in headers.items()}
        missing = [name for name in _NOTIFICATION_HEADERS if not h.get(name.lower(), "").strip()]
        if missing:
            raise VerificationFailed("bad_signature", f"the notification lacks the {', '.join(missing)} header(s)")
        serial = h["wechatpay-serial"].strip()
        key = self._platform_keys.get(_normal_serial(serial))
        if key is None:
            raise VerificationFailed("unknown_serial",
                                     f"the notification is signed with platform certificate {quoted(serial)}, "
                                     "which is not configured (learnsail.payments.wechat_platform_certs)")
        timestamp_text = h["wechatpay-timestamp"].strip()
        if not timestamp_text.isdigit():
            raise VerificationFailed("malformed", "Wechatpay-Timestamp is not a number of seconds")
        timestamp = int(timestamp_text)
        skew = self._clock() - timestamp
        if abs(skew) > self.timestamp_window:
            raise VerificationFailed("stale_timestamp", f"the notification's timestamp is {int(skew)} s off our "
                                                        f"clock (at most {self.timestamp_window} s)")
        nonce = h["wechatpay-nonce"].strip()
        message = f"{timestamp_text}\n{nonce}\n".encode("utf-8") + bytes(body) + b"\n"
        if not rsa_verify(key, message, h["wechatpay-signature"]):
            raise VerificationFailed("bad_signature", "the Wechatpay-Signature does not verify")

        # signed by WeChat Pay: now read it
        try:
            event = json.loads(body)
            resource = event["resource"]
            event_type = str(event["event_type"])
            if not isinstance(resource, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise VerificationFailed("malformed", "the notification is not a WeChat Pay event") from None
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise VerificationFailed("decrypt_failed",
                                     f"unknown resource algorithm {quoted(resource.get('algorithm'))}")
        try:
            plain = aes_gcm_decrypt(self._api_v3_key, str(resource.get("nonce", "")),
                                    str(resource.get("associated_data") or ""), str(resource.get("ciphertext", "")))
        except DecryptionFailed:
            raise VerificationFailed("decrypt_failed", "the resource does not decrypt with the APIv3 key") from None
        try:
            data = json.loads(plain)
            if not isinstance(data, dict):
                raise TypeError
        except (ValueError, TypeError):
            raise VerificationFailed("malformed", "the decrypted resource is not a JSON object") from None
        raw = {**data, "event_id": event.get("id"), "event_type": event_type,
               "event_create_time": event.get("create_time"), "summary": event.get("summary")}
        try:
            if event_type.startswith("TRANSACTION."):
                return self._payment_notification(data, nonce, timestamp, raw)
            if event_type.startswith("REFUND."):
                return self._refund_notification(data, nonce, timestamp, raw)
        except (KeyError, TypeError, ValueError):
            raise VerificationFailed("malformed", f"the {quoted(event_type)} resource lacks a field") from None
        raise VerificationFailed("malformed", f"unsupported event type {quoted(event_type)}")

    def _check_merchant(self, data: Mapping[str, Any], check_app: bool) -> None:
        if str(data.get("mchid")) != self.mchid:
            raise VerificationFailed("wrong_merchant", f"the notification is for merchant {quoted(data.get('mchid'))}")
        if check_app and str(data.get("appid")) != self.appid:
            raise VerificationFailed("wrong_app", f"the notification is for app {quoted(data.get('appid'))}")

    def _payment_notification(self, data: dict, nonce: str, timestamp: int, raw: dict) -> Notification:
        self._check_merchant(data, check_app=True)
        amount = data["amount"]
        return Notification(
            kind="payment",
            order_no=str(data["out_trade_no"]),
            status=_TRADE_STATES.get(str(data["trade_state"]), "pending"),
            amount=fen_to_yuan(amount["total"]),
            currency=str(amount.get("currency") or "CNY"),
            merchant_id=str(data["mchid"]),
            app_id=str(data["appid"]),
            transaction_id=data.get("transaction_id"),
            paid_at=_parse_time(data.get("success_time")),
            nonce=nonce,
            timestamp=timestamp,
            raw=raw,
        )

    def _refund_notification(self, data: dict, nonce: str, timestamp: int, raw: dict) -> Notification:
        # refund resources carry no appid: the merchant id is what is checked
        self._check_merchant(data, check_app=False)
        amount = data["amount"]
        return Notification(
            kind="refund",
            order_no=str(data["out_trade_no"]),
            status=_REFUND_STATES.get(str(data["refund_status"]), "processing"),
            amount=fen_to_yuan(amount["refund"]),
            currency=str(amount.get("currency") or "CNY"),
            merchant_id=str(data["mchid"]),
            app_id=self.appid,
            transaction_id=data.get("transaction_id"),
            refund_no=str(data["out_refund_no"]),
            refund_id=data.get("refund_id"),
            nonce=nonce,
            timestamp=timestamp,
            raw=raw,
        )

    def acknowledge(self, ok: bool, message: str = "") -> Acknowledgement:
        """200 with ``SUCCESS``; otherwise 500 with ``FAIL``, which makes
        WeChat Pay send the notification again later."""
        if ok:
            body = {"code": "SUCCESS", "message": "成功"}
            status = 200
        else:
            body = {"code": "FAIL", "message": (message or "失败")[:200]}
            status = 500
        return Acknowledgement(status, "application/json; charset=utf-8",
                               json.dumps(body, ensure_ascii=False).encode("utf-8"))

    # -- query, close, refund ---------------------------------------------

    def query(self, order_no: str) -> QueryResult:
        path = (f"/v3/pay/transactions/out-trade-no/{urllib.parse.quote(order_no, safe='')}"
                f"?mchid={urllib.parse.quote(self.mchid, safe='')}")
        answer = self._call("GET", path)
        if answer.status == 404 and answer.code == "ORDER_NOT_EXIST" and answer.verified:
            return QueryResult(order_no=order_no, status="not_found", raw=answer.data)
        if answer.status != 200:
            raise self._refused(answer)
        data = answer.data
        if str(data.get("out_trade_no")) != order_no or str(data.get("mchid")) != self.mchid:
            raise GatewayError("WeChat Pay answered about another order or merchant", code="MISMATCHED_ANSWER")
        state = str(self._field(data, "trade_state"))
        amount = data.get("amount") or {}
        return QueryResult(
            order_no=order_no,
            status=_TRADE_STATES.get(state, "pending"),
            amount=fen_to_yuan(amount["total"]) if "total" in amount else None,
            currency=amount.get("currency"),
            transaction_id=data.get("transaction_id"),
            paid_at=_parse_time(data.get("success_time")),
            raw=data,
        )

    def close(self, order_no: str) -> None:
        """Close an unpaid order.  An order WeChat never saw, or already
        closed, is fine; a paid one raises ``GatewayError(code="ORDERPAID")``."""
        path = f"/v3/pay/transactions/out-trade-no/{urllib.parse.quote(order_no, safe='')}/close"
        answer = self._call("POST", path, {"mchid": self.mchid})
        if answer.status in (200, 204):
            return
        if answer.verified and answer.code in ("ORDER_NOT_EXIST", "ORDER_CLOSED", "ORDERCLOSED"):
            return
        raise self._refused(answer)

    def refund(self, order_no: str, refund_no: str, amount, total, reason: str | None = None,
               notify_url: str | None = None) -> RefundResult:
        payload: dict[str, Any] = {
            "out_trade_no": order_no,
            "out_refund_no": refund_no,
            "amount": {"refund": yuan_to_fen(amount), "total": yuan_to_fen(total), "currency": "CNY"},
        }
        if reason:
            payload["reason"] = reason[:80]
        if notify_url:
            payload["notify_url"] = notify_url
        answer = self._call("POST", "/v3/refund/domestic/refunds", payload)
        if answer.status != 200:
            raise self._refused(answer)
        data = answer.data
        if str(data.get("out_refund_no")) != refund_no:
            raise GatewayError("WeChat Pay answered about another refund", code="MISMATCHED_ANSWER")
        return RefundResult(refund_no=refund_no,
                            status=_REFUND_STATES.get(str(self._field(data, "status")), "processing"),
                            refund_id=data.get("refund_id"), raw=data)

    # -- HTTP -------------------------------------------------------------

    def authorization(self, method: str, path: str, body: bytes) -> str:
        """The ``Authorization`` header of a request to ``path`` (with its
        query string) carrying ``body``."""
        timestamp = str(int(self._clock()))
        nonce = nonce_str()
        message = f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n"
        signature = rsa_sign(self._private_key, message)
        return (f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mchid}",nonce_str="{nonce}",'
                f'signature="{signature}",timestamp="{timestamp}",serial_no="{self.merchant_serial}"')

    def _call(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> _Answer:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False,
                                                      separators=(",", ":")).encode("utf-8")
        headers = {
            "Authorization": self.authorization(method, path, body),
            "Accept": "application/json",
            "User-Agent": "learnsail-payments",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        response = self._http.request(method, self.api_base + path, headers, body if payload is not None else None)
        data = _json_object(response.body)
        if response.status >= 500 or response.status == 429:
            code = str(data.get("code") or "") or None
            raise GatewayError(f"WeChat Pay answered {response.status}" + (f" {quoted(code)}" if code else ""),
                               transient=True, code=code or f"HTTP_{response.status}")
        problem = self._response_problem(response)
        if 200 <= response.status < 300:
            if problem:
                log.warning("WeChat Pay %s %s: answer rejected: %s", method, path.split("?")[0], problem)
                raise GatewayError(f"WeChat Pay's answer is not trusted: {problem}", code="BAD_RESPONSE_SIGNATURE")
            if response.body and not data:
                raise GatewayError("WeChat Pay's answer is not a JSON object", code="BAD_RESPONSE")
        return _Answer(response.status, data, problem is None)

    def _response_problem(self, response: Response) -> str | None:
        """Why the answer's signature is not acceptable, or None."""
        h = response.headers
        timestamp = (h.get("wechatpay-timestamp") or "").strip()
        nonce = (h.get("wechatpay-nonce") or "").strip()
        signature = h.get("wechatpay-signature") or ""
        serial = (h.get("wechatpay-serial") or "").strip()
        if not (timestamp and nonce and signature and serial):
            return "it is not signed"
        key = self._platform_keys.get(_normal_serial(serial))
        if key is None:
            return (f"it is signed with platform certificate {quoted(serial)}, which is not configured "
                    "(add it to learnsail.payments.wechat_platform_certs)")
        if not timestamp.isdigit() or abs(self._clock() - int(timestamp)) > self.timestamp_window:
            return "its timestamp is stale"
        if not rsa_verify(key, f"{timestamp}\n{nonce}\n".encode("utf-8") + response.body + b"\n", signature):
            return "its signature does not verify"
        return None

    @staticmethod
    def _refused(answer: _Answer) -> GatewayError:
        code = answer.code or f"HTTP_{answer.status}"
        message = str(answer.data.get("message") or "")[:200]
        return GatewayError(f"WeChat Pay refused the call ({answer.status} {quoted(code)}"
                            + (f": {message})" if message else ")"), code=code)

    @staticmethod
    def _field(data: Mapping[str, Any], name: str) -> Any:
        value = data.get(name)
        if value in (None, ""):
            raise GatewayError(f"WeChat Pay's answer has no {name}", code="BAD_RESPONSE")
        return value


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
