"""WeChat Pay API v3 adapter: notifications signed and encrypted as WeChat
Pay does (by the test kit, with keys made here), verified before they are
read; prepay, query, close and refund against the kit's loopback fake,
which checks our request signatures and signs its answers.  Two signatures
are recomputed with the openssl command line and the AES-GCM resource is
opened with pycryptodome, so the adapter and the kit are checked against
independent implementations, not only against each other."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
import re
import shutil
import socket
import subprocess
import time
from decimal import Decimal

import pytest
from learnsail.settings import SettingError, collect
from learnsail_payments.gateways import wechat
from learnsail_payments.gateways.base import GatewayError, PaymentRequest, VerificationFailed
from learnsail_payments.gateways.wechat import WeChatPayGateway
from learnsail_payments.testing import (
    FakeWeChatPay,
    WeChatKit,
    certificate_pem,
    generate_rsa_key,
    private_key_pem,
    public_key_pem,
    self_signed_certificate,
)

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def kit() -> WeChatKit:
    return WeChatKit.create()


@pytest.fixture(scope="module")
def _server(kit):
    with FakeWeChatPay(kit) as fake:
        yield fake


@pytest.fixture
def fake(_server):
    _server.reset()
    _server.refund_status = "SUCCESS"
    yield _server
    assert not _server.errors, _server.errors


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(kit, clock) -> WeChatPayGateway:
    """A gateway with a clock the test moves (notifications only: the fake
    checks request timestamps against the real clock)."""
    return WeChatPayGateway.from_settings(kit.settings(), clock=clock)


def _request(order_no="LS2024000001", amount="199.90", **fields) -> PaymentRequest:
    values = dict(order_no=order_no, amount=Decimal(amount), currency="CNY", title="Python 入门",
                  expires_at=dt.datetime(2030, 5, 1, 2, 30, tzinfo=dt.timezone.utc),
                  notify_url="https://learn.example.edu/api/v1/pay/callback/wechat")
    values.update(fields)
    return PaymentRequest(**values)


def _reason(call) -> str:
    with pytest.raises(VerificationFailed) as caught:
        call()
    return caught.value.reason


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


# -- notifications ------------------------------------------------------------

def test_a_payment_notification_verifies_and_reads_as_the_order_paid(kit, gateway):
    paid = dt.datetime(2030, 4, 30, 10, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    headers, body = kit.payment_notification("LS2024000001", Decimal("199.90"),
                                             transaction_id="4200001234202404301234567890", success_time=paid)
    note = gateway.parse_notification({k.lower(): v for k, v in headers.items()}, body)
    assert note.kind == "payment" and note.status == "paid"
    assert note.order_no == "LS2024000001"
    assert note.amount == Decimal("199.90") and note.currency == "CNY"
    assert note.merchant_id == kit.mchid and note.app_id == kit.appid
    assert note.transaction_id == "4200001234202404301234567890"
    assert note.paid_at == dt.datetime(2030, 4, 30, 2, 34, 56, tzinfo=dt.timezone.utc)
    assert note.paid_at.utcoffset() == dt.timedelta(0)
    assert note.nonce == headers["Wechatpay-Nonce"]
    assert note.timestamp == int(headers["Wechatpay-Timestamp"])
    assert note.raw["event_type"] == "TRANSACTION.SUCCESS" and note.raw["amount"]["total"] == 19990


@pytest.mark.parametrize("amount, fen", [("0.01", 1), ("199.90", 19990), ("1", 100), ("99999.99", 9999999)])
def test_notification_amounts_are_exact_yuan(kit, gateway, amount, fen):
    data = kit.transaction("LS2024000002", Decimal(amount))
    assert data["amount"]["total"] == fen
    note = gateway.parse_notification(*kit.notification("TRANSACTION.SUCCESS", data))
    assert note.amount == Decimal(amount) and str(note.amount) == str(Decimal(fen).scaleb(-2))


def test_header_names_are_case_insensitive(kit, gateway):
    headers, body = kit.payment_notification("LS2024000003", "5.00")
    assert gateway.parse_notification({k.upper(): v for k, v in headers.items()}, body).amount == Decimal("5.00")


def test_a_flipped_byte_of_the_body_is_a_bad_signature(kit, gateway):
    headers, body = kit.payment_notification("LS2024000004", "10.00")
    for index in (0, len(body) // 2, len(body) - 1):
        flipped = _flip(body, index)
        assert _reason(lambda b=flipped: gateway.parse_notification(headers, b)) == "bad_signature"


def test_a_flipped_byte_of_the_signature_is_a_bad_signature(kit, gateway):
    headers, body = kit.payment_notification("LS2024000005", "10.00")
    signature = bytearray(base64.b64decode(headers["Wechatpay-Signature"]))
    signature[17] ^= 0x80
    forged = dict(headers, **{"Wechatpay-Signature": base64.b64encode(bytes(signature)).decode()})
    assert _reason(lambda: gateway.parse_notification(forged, body)) == "bad_signature"
    assert _reason(lambda: gateway.parse_notification(dict(headers, **{"Wechatpay-Signature": "***"}), body)) \
        == "bad_signature"


def test_a_signature_by_another_key_under_a_known_serial_is_a_bad_signature(kit, gateway):
    headers, body = kit.payment_notification("LS2024000006", "10.00", key=generate_rsa_key())
    assert headers["Wechatpay-Serial"] == kit.platform_serial
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "bad_signature"


def test_the_nonce_and_timestamp_are_part_of_what_is_signed(kit, gateway):
    headers, body = kit.payment_notification("LS2024000007", "10.00")
    assert _reason(lambda: gateway.parse_notification(dict(headers, **{"Wechatpay-Nonce": "X" * 32}), body)) \
        == "bad_signature"
    moved = str(int(headers["Wechatpay-Timestamp"]) - 1)
    assert _reason(lambda: gateway.parse_notification(dict(headers, **{"Wechatpay-Timestamp": moved}), body)) \
        == "bad_signature"


@pytest.mark.parametrize("header", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature",
                                    "Wechatpay-Serial"])
def test_a_missing_header_is_refused(kit, gateway, header):
    headers, body = kit.payment_notification("LS2024000008", "10.00")
    del headers[header]
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "bad_signature"


def test_a_timestamp_more_than_300_seconds_off_is_stale(kit, gateway, clock):
    headers, body = kit.payment_notification("LS2024000009", "10.00", timestamp=int(clock.now) - 301)
    with pytest.raises(VerificationFailed) as caught:
        gateway.parse_notification(headers, body)
    assert caught.value.reason == "stale_timestamp" and "301" in str(caught.value)
    headers, body = kit.payment_notification("LS2024000009", "10.00", timestamp=int(clock.now) + 301)
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "stale_timestamp"
    clock.now = int(clock.now)
    headers, body = kit.payment_notification("LS2024000009", "10.00", timestamp=int(clock.now) - 300)
    assert gateway.parse_notification(headers, body).status == "paid"


def test_the_window_follows_the_gateway_clock(kit, gateway, clock):
    headers, body = kit.payment_notification("LS2024000010", "10.00")
    assert gateway.parse_notification(headers, body).status == "paid"
    clock.now += 301
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "stale_timestamp"


def test_an_unknown_serial_is_refused_before_anything_else(kit, gateway):
    other = generate_rsa_key()
    headers, body = kit.payment_notification("LS2024000011", "10.00", key=other, serial="6B3D1E1F0A")
    with pytest.raises(VerificationFailed) as caught:
        gateway.parse_notification(headers, body)
    assert caught.value.reason == "unknown_serial" and "6B3D1E1F0A" in str(caught.value)


def test_a_resource_under_another_aes_key_does_not_decrypt(kit, gateway):
    headers, body = kit.payment_notification("LS2024000012", "10.00", api_v3_key="Z" * 32)
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "decrypt_failed"


def test_a_changed_associated_data_does_not_decrypt(kit, gateway):
    event = {"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
             "resource": kit.encrypt_resource(kit.transaction("LS2024000013", "10.00"))}
    event["resource"]["associated_data"] = "refund"
    body = json.dumps(event).encode()
    assert _reason(lambda: gateway.parse_notification(kit.sign_message(body), body)) == "decrypt_failed"


def test_verification_comes_before_parsing(kit, gateway):
    body = b"not json at all"
    headers = kit.sign_message(body)
    assert _reason(lambda: gateway.parse_notification(dict(headers, **{"Wechatpay-Signature": "AAAA"}), body)) \
        == "bad_signature"
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "malformed"


def test_another_merchant_or_app_is_refused(kit, gateway):
    headers, body = kit.payment_notification("LS2024000014", "10.00", mchid="1900000999")
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "wrong_merchant"
    headers, body = kit.payment_notification("LS2024000014", "10.00", appid="wx0000000000000000")
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "wrong_app"


def test_refund_notifications(kit, gateway):
    headers, body = kit.refund_notification("LS2024000015", "RF2024000015", Decimal("50.01"), Decimal("199.90"),
                                            refund_id="50300001112024043000000000001")
    note = gateway.parse_notification(headers, body)
    assert (note.kind, note.status, note.order_no) == ("refund", "succeeded", "LS2024000015")
    assert note.refund_no == "RF2024000015" and note.refund_id == "50300001112024043000000000001"
    assert note.amount == Decimal("50.01") and note.merchant_id == kit.mchid
    assert note.nonce == headers["Wechatpay-Nonce"]
    for status, expected in (("ABNORMAL", "failed"), ("CLOSED", "failed")):
        note = gateway.parse_notification(*kit.refund_notification("LS2024000015", "RF2", "1.00", "199.90",
                                                                   status=status))
        assert (note.kind, note.status) == ("refund", expected)


def test_an_unknown_event_type_is_malformed(kit, gateway):
    headers, body = kit.notification("MCHTRANSFER.BILL.FINISHED", {"mchid": kit.mchid})
    assert _reason(lambda: gateway.parse_notification(headers, body)) == "malformed"


def test_a_rotated_platform_certificate_verifies_while_both_are_configured(kit, clock):
    new = kit.rotated()
    both = WeChatPayGateway.from_settings(kit.settings(extra_certs=[new.platform_cert]), clock=clock)
    for signer in (kit, new):
        assert both.parse_notification(*signer.payment_notification("LS2024000016", "1.00")).status == "paid"
    only_old = WeChatPayGateway.from_settings(kit.settings(), clock=clock)
    assert _reason(lambda: only_old.parse_notification(*new.payment_notification("LS2024000016", "1.00"))) \
        == "unknown_serial"


def test_a_wechat_pay_public_key_verifies_by_its_id(kit, clock, tmp_path):
    """The public-key mode: the serial is the key's id, the file its name."""
    key = generate_rsa_key()
    (tmp_path / "PUB_KEY_ID_0114232134912410000000000001.pem").write_text(public_key_pem(key))
    gateway = WeChatPayGateway.from_settings(kit.settings(platform_certs=str(tmp_path)), clock=clock)
    headers, body = kit.payment_notification("LS2024000017", "1.00", key=key,
                                             serial="PUB_KEY_ID_0114232134912410000000000001")
    assert gateway.parse_notification(headers, body).status == "paid"


def test_acknowledgements():
    gateway = WeChatPayGateway.__new__(WeChatPayGateway)
    ok = gateway.acknowledge(True)
    assert ok.status == 200 and json.loads(ok.body) == {"code": "SUCCESS", "message": "成功"}
    failed = gateway.acknowledge(False, "订单金额不符")
    assert failed.status == 500 and failed.content_type.startswith("application/json")
    assert json.loads(failed.body) == {"code": "FAIL", "message": "订单金额不符"}


# -- independent checks ---------------------------------------------------------

@needs_openssl
def test_the_notification_signature_verifies_with_openssl(kit, tmp_path):
    headers, body = kit.payment_notification("LS2024000018", "199.90")
    (tmp_path / "platform.pem").write_text(certificate_pem(kit.platform_cert))
    subprocess.run(["openssl", "x509", "-in", "platform.pem", "-pubkey", "-noout", "-out", "pub.pem"],
                   cwd=tmp_path, check=True)
    (tmp_path / "message").write_bytes(
        f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode() + body + b"\n")
    (tmp_path / "sig").write_bytes(base64.b64decode(headers["Wechatpay-Signature"]))
    result = subprocess.run(["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "message"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "Verified OK" in result.stdout


def test_the_resource_opens_with_an_independent_aes_gcm(kit):
    AES = pytest.importorskip("Crypto.Cipher.AES")
    resource = kit.encrypt_resource({"out_trade_no": "LS1", "amount": {"total": 1}})
    sealed = base64.b64decode(resource["ciphertext"])
    cipher = AES.new(kit.api_v3_key.encode(), AES.MODE_GCM, nonce=resource["nonce"].encode())
    cipher.update(resource["associated_data"].encode())
    plain = cipher.decrypt_and_verify(sealed[:-16], sealed[-16:])
    assert json.loads(plain) == {"out_trade_no": "LS1", "amount": {"total": 1}}


@needs_openssl
def test_pay_sign_and_request_signature_match_openssl(kit, fake, tmp_path):
    gateway = fake.gateway()
    params = gateway.create_payment(_request(payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))
    (tmp_path / "merchant.pem").write_text(private_key_pem(kit.merchant_key))

    def openssl_sign(message: bytes) -> str:
        (tmp_path / "message").write_bytes(message)
        out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", "merchant.pem", "message"],
                             cwd=tmp_path, capture_output=True, check=True).stdout
        return base64.b64encode(out).decode()

    pay_message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    assert params["paySign"] == openssl_sign(pay_message.encode())

    sent = fake.requests[-1]
    fields = dict(re.findall(r'(\w+)="([^"]*)"', sent.headers["authorization"]))
    request_message = (f"POST\n/v3/pay/transactions/jsapi\n{fields['timestamp']}\n{fields['nonce_str']}\n"
                       .encode() + sent.body + b"\n")
    assert fields["signature"] == openssl_sign(request_message)


# -- create_payment -------------------------------------------------------------

def test_jsapi_payment_prepays_with_a_signed_request_and_answers_signed_pay_params(kit, fake):
    gateway = fake.gateway()
    params = gateway.create_payment(_request(payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", client_ip="203.0.113.9"))
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["appId"] == kit.appid and params["signType"] == "RSA"
    assert re.fullmatch(r"prepay_id=wx\w+", params["package"])
    assert kit.pay_sign_valid(params)
    assert not kit.pay_sign_valid(dict(params, nonceStr=params["nonceStr"][::-1]))

    sent = fake.requests[-1]
    assert (sent.method, sent.path, sent.authorized) == ("POST", "/v3/pay/transactions/jsapi", True)
    assert sent.headers["authorization"].startswith("WECHATPAY2-SHA256-RSA2048 ")
    assert f'serial_no="{kit.merchant_serial}"' in sent.headers["authorization"]
    body = sent.json()
    assert body["amount"] == {"total": 19990, "currency": "CNY"}
    assert body["time_expire"] == "2030-05-01T10:30:00+08:00"
    assert body["payer"] == {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}
    assert body["out_trade_no"] == "LS2024000001" and body["description"] == "Python 入门"
    assert body["notify_url"] == "https://learn.example.edu/api/v1/pay/callback/wechat"
    assert body["scene_info"] == {"payer_client_ip": "203.0.113.9"}
    assert (body["appid"], body["mchid"]) == (kit.appid, kit.mchid)


@pytest.mark.parametrize("amount, fen", [("0.01", 1), ("199.90", 19990), ("0.29", 29), ("1.13", 113)])
def test_prepay_amounts_are_exact_fen(fake, amount, fen):
    fake.gateway().create_payment(_request(amount=amount))
    assert fake.requests[-1].json()["amount"]["total"] == fen


def test_an_amount_finer_than_a_fen_is_refused_not_rounded(fake):
    with pytest.raises(GatewayError) as caught:
        fake.gateway().create_payment(_request(amount="0.015"))
    assert caught.value.code == "INVALID_AMOUNT" and not fake.requests


def test_native_is_the_default_without_an_openid(fake):
    params = fake.gateway().create_payment(_request())
    assert list(params) == ["code_url"] and params["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert fake.requests[-1].path == "/v3/pay/transactions/native" and "payer" not in fake.requests[-1].json()


def test_h5_needs_the_client_ip(fake):
    params = fake.gateway().create_payment(_request(scene="h5", client_ip="203.0.113.9"))
    assert params["h5_url"].startswith("https://wx.tenpay.com/")
    assert fake.requests[-1].json()["scene_info"]["h5_info"] == {"type": "Wap"}
    with pytest.raises(GatewayError):
        fake.gateway().create_payment(_request(order_no="LS2", scene="h5"))


def test_jsapi_without_an_openid_is_refused_before_calling(fake):
    with pytest.raises(GatewayError) as caught:
        fake.gateway().create_payment(_request(scene="jsapi"))
    assert caught.value.code == "PAYER_OPENID_REQUIRED" and not fake.requests


def test_a_request_signed_with_another_key_is_refused_by_the_platform(kit, fake):
    wrong = dataclasses.replace(kit, merchant_key=generate_rsa_key())
    gateway = WeChatPayGateway.from_settings(wrong.settings(fake.url))
    with pytest.raises(GatewayError) as caught:
        gateway.create_payment(_request())
    assert caught.value.code == "SIGN_ERROR" and not caught.value.transient
    assert fake.requests[-1].problem == "signature does not verify"


def test_a_paid_order_cannot_be_prepaid_again(fake):
    gateway = fake.gateway()
    gateway.create_payment(_request())
    fake.pay("LS2024000001")
    with pytest.raises(GatewayError) as caught:
        gateway.create_payment(_request())
    assert caught.value.code == "ORDERPAID"


# -- query, close, refund -------------------------------------------------------

def test_query_follows_the_order_at_the_platform(fake):
    gateway = fake.gateway()
    assert gateway.query("LS2024000001").status == "not_found"
    gateway.create_payment(_request())
    pending = gateway.query("LS2024000001")
    assert (pending.status, pending.amount, pending.transaction_id) == ("pending", Decimal("199.90"), None)
    fake.pay("LS2024000001", transaction_id="4200000000000000000000000042")
    paid = gateway.query("LS2024000001")
    assert (paid.status, paid.amount, paid.currency) == ("paid", Decimal("199.90"), "CNY")
    assert paid.transaction_id == "4200000000000000000000000042" and paid.paid_at.tzinfo is not None
    sent = fake.requests[-1]
    assert sent.method == "GET" and sent.path == "/v3/pay/transactions/out-trade-no/LS2024000001?mchid=1900000109"
    assert sent.authorized and sent.body == b""


def test_query_sees_an_order_paid_at_the_gateway_only(fake):
    fake.add_order("LS2024000099", "0.01", trade_state="SUCCESS")
    result = fake.gateway().query("LS2024000099")
    assert (result.status, result.amount) == ("paid", Decimal("0.01"))


def test_the_fake_notifies_what_the_buyer_paid(fake):
    gateway = fake.gateway()
    gateway.create_payment(_request(amount="0.01"))
    assert fake.notify_url("LS2024000001") == "https://learn.example.edu/api/v1/pay/callback/wechat"
    note = gateway.parse_notification(*fake.pay("LS2024000001"))
    assert (note.order_no, note.status, note.amount) == ("LS2024000001", "paid", Decimal("0.01"))
    assert note.transaction_id == gateway.query("LS2024000001").transaction_id


def test_close(fake):
    gateway = fake.gateway()
    gateway.close("LS2024000404")  # never prepaid: nothing to close
    gateway.create_payment(_request())
    gateway.close("LS2024000001")
    assert fake.orders["LS2024000001"]["trade_state"] == "CLOSED"
    assert fake.requests[-1].json() == {"mchid": "1900000109"} and fake.requests[-1].authorized
    assert gateway.query("LS2024000001").status == "closed"
    fake.add_order("LS2024000002", "1.00", trade_state="SUCCESS")
    with pytest.raises(GatewayError) as caught:
        gateway.close("LS2024000002")
    assert caught.value.code == "ORDERPAID" and not caught.value.transient


def test_refund(fake):
    gateway = fake.gateway()
    fake.add_order("LS2024000001", "199.90", trade_state="SUCCESS")
    result = gateway.refund("LS2024000001", "RF2024000001", Decimal("50.01"), Decimal("199.90"), reason="不想学了",
                            notify_url="https://learn.example.edu/api/v1/pay/callback/wechat")
    assert (result.refund_no, result.status) == ("RF2024000001", "succeeded") and result.refund_id
    body = fake.requests[-1].json()
    assert body["amount"] == {"refund": 5001, "total": 19990, "currency": "CNY"}
    assert body["out_refund_no"] == "RF2024000001" and body["reason"] == "不想学了"
    assert body["notify_url"] == "https://learn.example.edu/api/v1/pay/callback/wechat"
    assert gateway.query("LS2024000001").status == "refunded"
    note = gateway.parse_notification(*fake.refund_notification("RF2024000001"))
    assert (note.kind, note.refund_no, note.amount, note.refund_id) == ("refund", "RF2024000001",
                                                                        Decimal("50.01"), result.refund_id)
    with pytest.raises(GatewayError) as caught:  # more than what is left
        gateway.refund("LS2024000001", "RF2024000002", Decimal("150.00"), Decimal("199.90"))
    assert caught.value.code == "INVALID_REQUEST" and not caught.value.transient


def test_a_refund_in_progress_is_processing(fake):
    fake.refund_status = "PROCESSING"
    fake.add_order("LS2024000001", "10.00", trade_state="SUCCESS")
    assert fake.gateway().refund("LS2024000001", "RF1", Decimal("10.00"), Decimal("10.00")).status == "processing"


@pytest.mark.parametrize("call", [
    lambda g: g.query("LS2024000001"),
    lambda g: g.close("LS2024000001"),
    lambda g: g.refund("LS2024000001", "RF1", Decimal("1.00"), Decimal("10.00")),
    lambda g: g.create_payment(_request()),
])
def test_a_5xx_is_a_transient_error(fake, call):
    fake.fail_next(500)
    with pytest.raises(GatewayError) as caught:
        call(fake.gateway())
    assert caught.value.transient and caught.value.code == "SYSTEM_ERROR"
    fake.fail_next(503, body=b"<html>busy</html>")
    with pytest.raises(GatewayError) as caught:
        call(fake.gateway())
    assert caught.value.transient


@pytest.mark.parametrize("what", ["body", "signature"])
def test_a_tampered_answer_is_not_trusted(fake, what):
    gateway = fake.gateway()
    fake.add_order("LS2024000001", "10.00", trade_state="SUCCESS")
    fake.tamper_next(what)
    with pytest.raises(GatewayError) as caught:
        gateway.query("LS2024000001")
    assert caught.value.code == "BAD_RESPONSE_SIGNATURE" and not caught.value.transient
    fake.tamper_next(what)
    with pytest.raises(GatewayError):
        gateway.close("LS2024000404")  # a 404 "not exist" is only believed when signed
    fake.tamper_next(what)
    with pytest.raises(GatewayError) as caught:
        gateway.create_payment(_request(order_no="LS2024000002"))
    assert caught.value.code == "BAD_RESPONSE_SIGNATURE"
    assert gateway.query("LS2024000001").status == "paid"  # the next answer is fine again


def test_an_answer_signed_by_an_unconfigured_certificate_is_not_trusted(kit, fake):
    gateway = fake.gateway()  # knows the current certificate only
    fake.add_order("LS2024000001", "1.00", trade_state="SUCCESS")
    fake.kit = kit.rotated()
    try:
        with pytest.raises(GatewayError) as caught:
            gateway.query("LS2024000001")
    finally:
        fake.kit = kit
    assert caught.value.code == "BAD_RESPONSE_SIGNATURE" and "wechat_platform_certs" in str(caught.value)


def test_a_network_error_is_transient(kit):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = WeChatPayGateway.from_settings(kit.settings(f"http://127.0.0.1:{port}"))
    with pytest.raises(GatewayError) as caught:
        gateway.query("LS2024000001")
    assert caught.value.transient and caught.value.code == "NETWORK_ERROR"


# -- settings -------------------------------------------------------------------

def test_not_configured_is_none_and_half_configured_names_what_is_missing(kit):
    assert WeChatPayGateway.from_settings({}) is None
    assert WeChatPayGateway.from_settings({"learnsail.payments.wechat_api_base": "https://x.example"}) is None
    partial = kit.settings()
    del partial["learnsail.payments.wechat_platform_certs"]
    with pytest.raises(SettingError) as caught:
        WeChatPayGateway.from_settings(partial)
    assert "learnsail.payments.wechat_platform_certs" in str(caught.value)
    assert "LEARNSAIL_PAYMENTS_WECHAT_PLATFORM_CERTS" in str(caught.value)
    assert "learnsail.payments.wechat_appid" not in str(caught.value)


def test_settings_errors_never_quote_a_key(kit):
    settings = dict(kit.settings(), **{"learnsail.payments.wechat_api_v3_key": "short-secret-key"})
    with pytest.raises(SettingError) as caught:
        WeChatPayGateway.from_settings(settings)
    assert "wechat_api_v3_key" in str(caught.value) and "short-secret-key" not in str(caught.value)
    pem = private_key_pem(kit.merchant_key)
    broken = pem.replace(pem.splitlines()[3], "A" * 64)
    with pytest.raises(SettingError) as caught:
        WeChatPayGateway.from_settings(dict(kit.settings(), **{"learnsail.payments.wechat_merchant_private_key": broken}))
    assert "wechat_merchant_private_key" in str(caught.value)
    assert not any(line in str(caught.value) for line in broken.splitlines()[1:-1])


def test_secret_settings_are_hidden_from_repr(kit):
    resolved = collect(wechat.SETTINGS, kit.settings(), environ={})
    text = repr(resolved)
    assert kit.api_v3_key not in text and "PRIVATE KEY" not in text
    assert resolved["learnsail.payments.wechat_api_v3_key"] == kit.api_v3_key  # still the value
    assert WeChatPayGateway.from_settings(resolved).mchid == kit.mchid
    assert kit.api_v3_key not in repr(WeChatPayGateway.from_settings(resolved))


def test_no_key_material_reaches_the_logs(kit, fake, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = fake.gateway()
    gateway.create_payment(_request(payer_openid="o1"))
    fake.tamper_next()
    with pytest.raises(GatewayError):
        gateway.query("LS2024000001")
    fake.fail_next()
    with pytest.raises(GatewayError):
        gateway.refund("LS2024000001", "RF1", Decimal("1.00"), Decimal("199.90"))
    logged = caplog.text
    assert "LS2024000001" in logged or "/v3/pay" in logged  # the calls are logged ...
    assert kit.api_v3_key not in logged and "PRIVATE KEY" not in logged  # ... the keys are not
    assert "signature=" not in logged and fake.requests[0].headers["authorization"] not in logged


def test_key_files_certificate_directories_and_serial_lists(kit, tmp_path, clock):
    (tmp_path / "apiclient_key.pem").write_text(private_key_pem(kit.merchant_key))
    certs = tmp_path / "platform"
    certs.mkdir()
    (certs / "wechatpay_old.pem").write_text(certificate_pem(kit.platform_cert))
    new = kit.rotated()
    (certs / "wechatpay_new.pem").write_text(certificate_pem(new.platform_cert))
    base = dict(kit.settings(), **{"learnsail.payments.wechat_merchant_private_key": str(tmp_path / "apiclient_key.pem")})
    by_directory = WeChatPayGateway.from_settings(dict(base, **{"learnsail.payments.wechat_platform_certs": str(certs)}),
                                                  clock=clock)
    assert set(by_directory.platform_serials) == {kit.platform_serial, new.platform_serial}
    listed = f"{new.platform_serial}={certs / 'wechatpay_new.pem'}; {certs / 'wechatpay_old.pem'}"
    by_list = WeChatPayGateway.from_settings(dict(base, **{"learnsail.payments.wechat_platform_certs": listed}),
                                             clock=clock)
    assert by_list.parse_notification(*new.payment_notification("LS1", "1.00")).status == "paid"
    mismatch = f"ABCDEF={certs / 'wechatpay_new.pem'}"
    with pytest.raises(SettingError) as caught:
        WeChatPayGateway.from_settings(dict(base, **{"learnsail.payments.wechat_platform_certs": mismatch}))
    assert "not ABCDEF" in str(caught.value)
    with pytest.raises(SettingError) as caught:
        WeChatPayGateway.from_settings(dict(base, **{"learnsail.payments.wechat_platform_certs": str(tmp_path / "none")}))
    assert "wechat_platform_certs" in str(caught.value)


def test_the_api_base_must_be_https_except_on_loopback(kit):
    with pytest.raises(SettingError) as caught:
        WeChatPayGateway.from_settings(kit.settings("http://api.mch.weixin.qq.com"))
    assert "wechat_api_base" in str(caught.value)
    assert WeChatPayGateway.from_settings(kit.settings()).api_base == "https://api.mch.weixin.qq.com"


def test_a_certificate_serial_with_a_leading_zero_matches(kit, clock):
    key = generate_rsa_key()
    cert = self_signed_certificate(key, serial=0x0ABCDEF0123456789)
    gateway = WeChatPayGateway.from_settings(kit.settings(platform_certs=certificate_pem(cert)), clock=clock)
    signer = dataclasses.replace(kit, platform_key=key, platform_cert=cert)
    headers, body = signer.payment_notification("LS1", "1.00", serial="0ABCDEF0123456789")
    assert gateway.parse_notification(headers, body).status == "paid"


def test_pem_from_an_environment_variable_may_have_escaped_newlines(kit, clock):
    resolved = collect(wechat.SETTINGS, {}, environ={
        "LEARNSAIL_PAYMENTS_WECHAT_" + name.upper(): value.replace("\n", "\\n")
        for name, value in {key.rsplit(".wechat_", 1)[1]: v for key, v in kit.settings().items()}.items()})
    gateway = WeChatPayGateway.from_settings(resolved, clock=clock)
    assert gateway.parse_notification(*kit.payment_notification("LS1", "1.00")).status == "paid"
    assert kit.pay_sign_valid(gateway.jsapi_params("wx123"))
