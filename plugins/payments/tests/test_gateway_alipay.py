"""Alipay (open API, RSA2) adapter: notifications signed as Alipay signs
them (by the test kit, with keys made here), verified before any field is
trusted; page/app/WAP requests signed as Alipay verifies them; query,
refund and close against the kit's loopback ``gateway.do``, which checks
our signatures and signs its answers over the exact response text.  The
request signature is recomputed with the openssl command line from a
signing string built here, independently of the adapter."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import shutil
import socket
import subprocess
import urllib.parse
from decimal import Decimal

import pytest
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from learnsail.settings import SettingError, collect
from learnsail_payments.gateways import alipay
from learnsail_payments.gateways.alipay import AlipayGateway
from learnsail_payments.gateways.base import GatewayError, PaymentRequest, VerificationFailed
from learnsail_payments.testing import (
    AlipayKit,
    FakeAlipay,
    generate_rsa_key,
    private_key_pem,
    public_key_base64,
    public_key_pem,
)

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def kit() -> AlipayKit:
    return AlipayKit.create()


@pytest.fixture(scope="module")
def _server(kit):
    with FakeAlipay(kit) as fake:
        yield fake


@pytest.fixture
def fake(_server):
    _server.reset()
    yield _server
    assert not _server.errors, _server.errors


@pytest.fixture
def gateway(kit) -> AlipayGateway:
    return AlipayGateway.from_settings(kit.settings())


def _request(order_no="LS2024000001", amount="199.90", **fields) -> PaymentRequest:
    values = dict(order_no=order_no, amount=Decimal(amount), currency="CNY", title="Python 入门",
                  expires_at=dt.datetime(2030, 5, 1, 2, 30, tzinfo=dt.timezone.utc),
                  notify_url="https://learn.example.edu/api/v1/pay/callback/alipay",
                  return_url="https://learn.example.edu/orders/1")
    values.update(fields)
    return PaymentRequest(**values)


def _reason(call) -> str:
    with pytest.raises(VerificationFailed) as caught:
        call()
    return caught.value.reason


def _form(body: bytes) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))


def _encode(params: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(params).encode()


# -- notifications ------------------------------------------------------------

def test_a_payment_notification_verifies_and_reads_as_the_order_paid(kit, gateway):
    body = kit.payment_notification("LS2024000001", Decimal("199.90"), trade_no="2024043022001400000000000001",
                                    gmt_payment=dt.datetime(2030, 4, 30, 10, 34, 56, tzinfo=CST),
                                    notify_id="2024043000222103456000001234567890")
    note = gateway.parse_notification({"content-type": "application/x-www-form-urlencoded"}, body)
    assert (note.kind, note.status, note.order_no) == ("payment", "paid", "LS2024000001")
    assert note.amount == Decimal("199.90") and note.currency == "CNY"
    assert (note.merchant_id, note.app_id) == (kit.seller_id, kit.app_id)
    assert note.transaction_id == "2024043022001400000000000001"
    assert note.paid_at == dt.datetime(2030, 4, 30, 2, 34, 56, tzinfo=dt.timezone.utc)
    assert note.nonce == "2024043000222103456000001234567890" and note.timestamp is None
    assert note.raw["trade_status"] == "TRADE_SUCCESS" and "sign" not in note.raw


@pytest.mark.parametrize("amount", ["0.01", "199.90", "1.00", "99999.99"])
def test_notification_amounts_are_exact(kit, gateway, amount):
    body = kit.payment_notification("LS2024000002", Decimal(amount))
    assert _form(body)["total_amount"] == amount
    note = gateway.parse_notification({}, body)
    assert note.amount == Decimal(amount) and str(note.amount) == amount


@pytest.mark.parametrize("status, expected", [("TRADE_SUCCESS", "paid"), ("TRADE_FINISHED", "paid"),
                                              ("TRADE_CLOSED", "closed"), ("WAIT_BUYER_PAY", "pending")])
def test_trade_statuses(kit, gateway, status, expected):
    note = gateway.parse_notification({}, kit.payment_notification("LS1", "1.00", trade_status=status))
    assert (note.kind, note.status) == ("payment", expected)


def test_a_changed_field_is_a_bad_signature(kit, gateway):
    params = _form(kit.payment_notification("LS2024000003", "0.01"))
    for name, value in (("total_amount", "0.02"), ("out_trade_no", "LS2024000004"), ("trade_status", "TRADE_SUCCESS "),
                        ("seller_id", "2088000000000000")):
        changed = _encode(dict(params, **{name: value}))
        assert _reason(lambda b=changed: gateway.parse_notification({}, b)) == "bad_signature"


def test_an_added_or_removed_field_is_a_bad_signature(kit, gateway):
    params = _form(kit.payment_notification("LS2024000005", "0.01"))
    assert _reason(lambda: gateway.parse_notification({}, _encode(dict(params, extra="1")))) == "bad_signature"
    trimmed = {k: v for k, v in params.items() if k != "buyer_id"}
    assert _reason(lambda: gateway.parse_notification({}, _encode(trimmed))) == "bad_signature"


def test_a_flipped_byte_of_the_signature_is_a_bad_signature(kit, gateway):
    params = _form(kit.payment_notification("LS2024000006", "0.01"))
    raw = bytearray(base64.b64decode(params["sign"]))
    raw[0] ^= 0x01
    forged = dict(params, sign=base64.b64encode(bytes(raw)).decode())
    assert _reason(lambda: gateway.parse_notification({}, _encode(forged))) == "bad_signature"
    assert _reason(lambda: gateway.parse_notification({}, _encode(dict(params, sign="not base64!")))) \
        == "bad_signature"


def test_an_unsigned_or_non_rsa2_notification_is_refused(kit, gateway):
    params = _form(kit.payment_notification("LS2024000007", "0.01"))
    assert _reason(lambda: gateway.parse_notification({}, _encode({k: v for k, v in params.items() if k != "sign"}))) \
        == "bad_signature"
    assert _reason(lambda: gateway.parse_notification({}, _encode(dict(params, sign_type="RSA")))) == "bad_signature"


def test_a_notification_signed_by_another_key_is_a_bad_signature(kit, gateway):
    body = kit.payment_notification("LS2024000008", "0.01", key=generate_rsa_key())
    assert _reason(lambda: gateway.parse_notification({}, body)) == "bad_signature"
    # the app's own key (which we hold) is not Alipay's either
    body = kit.payment_notification("LS2024000008", "0.01", key=kit.app_key)
    assert _reason(lambda: gateway.parse_notification({}, body)) == "bad_signature"


def test_verification_comes_before_reading_any_field(kit, gateway):
    params = _form(kit.payment_notification("LS2024000009", "0.01", app_id="2021999999999999"))
    assert _reason(lambda: gateway.parse_notification({}, _encode(dict(params, sign=params["sign"][::-1])))) \
        == "bad_signature"  # not wrong_app: an unsigned claim is not read
    assert _reason(lambda: gateway.parse_notification({}, b"")) == "malformed"


def test_another_app_or_seller_is_refused(kit, gateway):
    body = kit.payment_notification("LS2024000010", "0.01", app_id="2021999999999999")
    assert _reason(lambda: gateway.parse_notification({}, body)) == "wrong_app"
    body = kit.payment_notification("LS2024000010", "0.01", seller_id="2088999999999999")
    assert _reason(lambda: gateway.parse_notification({}, body)) == "wrong_merchant"


def test_a_repeated_parameter_is_malformed(kit, gateway):
    body = kit.payment_notification("LS2024000011", "0.01") + b"&total_amount=0.02"
    assert _reason(lambda: gateway.parse_notification({}, body)) == "malformed"


def test_a_gbk_notification_verifies_over_its_gbk_bytes(kit, gateway):
    params = kit.notification_params("LS2024000012", "8.80", subject="数据结构", charset="gbk")
    params["sign_type"] = "RSA2"
    content = "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))
    signature = kit.alipay_key.sign(content.encode("gbk"), padding.PKCS1v15(), hashes.SHA256())
    params["sign"] = base64.b64encode(signature).decode()
    body = urllib.parse.urlencode(params, encoding="gbk").encode()
    note = gateway.parse_notification({}, body)
    assert note.raw["subject"] == "数据结构" and note.amount == Decimal("8.80")


def test_refund_notifications(kit, gateway):
    body = kit.refund_notification("LS2024000013", "RF2024000013", Decimal("50.00"), Decimal("199.90"))
    note = gateway.parse_notification({}, body)
    assert (note.kind, note.status, note.order_no, note.refund_no) == ("refund", "succeeded", "LS2024000013",
                                                                        "RF2024000013")
    assert note.amount == Decimal("50.00") and note.nonce == _form(body)["notify_id"]
    full = gateway.parse_notification({}, kit.refund_notification("LS2024000013", "RF2", "199.90", "199.90"))
    assert (full.kind, full.amount, full.raw["trade_status"]) == ("refund", Decimal("199.90"), "TRADE_CLOSED")


def test_acknowledgements(gateway):
    ok, failed = gateway.acknowledge(True), gateway.acknowledge(False, "amount mismatch")
    assert (ok.status, ok.body) == (200, b"success") and ok.content_type.startswith("text/plain")
    assert (failed.status, failed.body) == (200, b"fail")


@needs_openssl
def test_the_notification_signature_verifies_with_openssl(kit, tmp_path):
    params = _form(kit.payment_notification("LS2024000014", "199.90"))
    (tmp_path / "alipay.pem").write_text(public_key_pem(kit.alipay_key))
    content = "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))
    (tmp_path / "message").write_bytes(content.encode())
    (tmp_path / "sig").write_bytes(base64.b64decode(params["sign"]))
    result = subprocess.run(["openssl", "dgst", "-sha256", "-verify", "alipay.pem", "-signature", "sig", "message"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "Verified OK" in result.stdout


# -- create_payment -------------------------------------------------------------

def _url_params(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def test_page_payment_is_a_signed_gateway_url(kit, fake):
    gateway = fake.gateway(clock=lambda: dt.datetime(2030, 5, 1, 2, 0, 5, tzinfo=dt.timezone.utc).timestamp())
    params = gateway.create_payment(_request())
    assert list(params) == ["url"] and params["url"].startswith(fake.url + "?")
    query = _url_params(params["url"])
    assert kit.request_problem(query) is None
    assert query["app_id"] == kit.app_id and query["method"] == "alipay.trade.page.pay"
    assert (query["charset"], query["sign_type"], query["version"], query["format"]) == ("utf-8", "RSA2", "1.0", "JSON")
    assert query["timestamp"] == "2030-05-01 10:00:05"
    assert query["notify_url"] == "https://learn.example.edu/api/v1/pay/callback/alipay"
    assert query["return_url"] == "https://learn.example.edu/orders/1"
    assert json.loads(query["biz_content"]) == {
        "out_trade_no": "LS2024000001", "total_amount": "199.90", "subject": "Python 入门",
        "product_code": "FAST_INSTANT_TRADE_PAY", "time_expire": "2030-05-01 10:30:00"}
    tampered = dict(query, biz_content=query["biz_content"].replace("199.90", "0.01"))
    assert kit.request_problem(tampered) == "signature does not verify"


@pytest.mark.parametrize("amount, text", [("0.01", "0.01"), ("199.9", "199.90"), ("5", "5.00")])
def test_request_amounts_have_two_places(kit, gateway, amount, text):
    query = _url_params(gateway.create_payment(_request(amount=amount))["url"])
    assert json.loads(query["biz_content"])["total_amount"] == text


def test_an_amount_finer_than_a_fen_is_refused(gateway):
    with pytest.raises(GatewayError) as caught:
        gateway.create_payment(_request(amount="0.001"))
    assert caught.value.code == "INVALID_AMOUNT"


@needs_openssl
def test_the_request_signature_matches_openssl(kit, gateway, tmp_path):
    query = _url_params(gateway.create_payment(_request())["url"])
    content = "&".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "sign" and v != "")
    (tmp_path / "app.pem").write_text(private_key_pem(kit.app_key))
    (tmp_path / "message").write_bytes(content.encode("utf-8"))
    out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", "app.pem", "message"], cwd=tmp_path,
                         capture_output=True, check=True).stdout
    assert query["sign"] == base64.b64encode(out).decode()


def test_app_and_wap_payments(kit, fake):
    gateway = fake.gateway()
    app = gateway.create_payment(_request(scene="app"))
    assert list(app) == ["order_string"]
    fields = dict(urllib.parse.parse_qsl(app["order_string"]))
    assert fields["method"] == "alipay.trade.app.pay" and "return_url" not in fields
    assert json.loads(fields["biz_content"])["product_code"] == "QUICK_MSECURITY_PAY"
    assert fake.accept(app)["total_amount"] == Decimal("199.90")
    wap = gateway.create_payment(_request(order_no="LS2024000002", scene="wap"))
    fields = _url_params(wap["url"])
    assert fields["method"] == "alipay.trade.wap.pay" and kit.request_problem(fields) is None
    assert json.loads(fields["biz_content"])["product_code"] == "QUICK_WAP_WAY"
    with pytest.raises(GatewayError):
        gateway.create_payment(_request(scene="jsapi"))


# -- query, refund, close -------------------------------------------------------

def test_query_follows_the_trade_at_alipay(fake):
    gateway = fake.gateway()
    params = gateway.create_payment(_request(amount="0.01"))
    assert gateway.query("LS2024000001").status == "not_found"  # the buyer has not opened the page
    assert urllib3.request("GET", params["url"]).status == 200  # ... now they have
    pending = gateway.query("LS2024000001")
    assert (pending.status, pending.amount, pending.transaction_id) == ("pending", Decimal("0.01"), None)
    note = gateway.parse_notification({}, fake.pay("LS2024000001"))
    paid = gateway.query("LS2024000001")
    assert (paid.status, paid.amount, paid.currency) == ("paid", Decimal("0.01"), "CNY")
    assert paid.transaction_id == note.transaction_id and paid.paid_at.utcoffset() == dt.timedelta(0)
    sent = fake.requests[-1]
    assert sent.method == "POST" and sent.authorized and sent.params["method"] == "alipay.trade.query"
    assert json.loads(sent.params["biz_content"]) == {"out_trade_no": "LS2024000001"}
    assert fake.notify_url("LS2024000001") == "https://learn.example.edu/api/v1/pay/callback/alipay"


def test_query_sees_a_trade_paid_at_alipay_only(fake):
    fake.add_order("LS2024000099", "199.90", trade_status="TRADE_SUCCESS")
    result = fake.gateway().query("LS2024000099")
    assert (result.status, result.amount) == ("paid", Decimal("199.90")) and result.transaction_id


def test_refunds(fake):
    gateway = fake.gateway()
    fake.add_order("LS2024000001", "199.90", trade_status="TRADE_SUCCESS")
    first = gateway.refund("LS2024000001", "RF1", Decimal("50.00"), Decimal("199.90"), reason="换课")
    assert (first.refund_no, first.status) == ("RF1", "succeeded")
    sent = fake.requests[-1]
    assert sent.authorized and json.loads(sent.params["biz_content"]) == {
        "out_trade_no": "LS2024000001", "refund_amount": "50.00", "out_request_no": "RF1", "refund_reason": "换课"}
    again = gateway.refund("LS2024000001", "RF1", Decimal("50.00"), Decimal("199.90"))  # a retry moves no money
    assert again.status == "succeeded" and again.raw["fund_change"] == "N"
    assert fake.requests[-1].params["method"] == "alipay.trade.fastpay.refund.query"
    assert fake.orders["LS2024000001"]["refunded"] == Decimal("50.00")
    assert gateway.query("LS2024000001").status == "paid"
    note = gateway.parse_notification({}, fake.refund_notification("LS2024000001", "RF1"))
    assert (note.kind, note.refund_no, note.amount) == ("refund", "RF1", Decimal("50.00"))
    with pytest.raises(GatewayError) as caught:
        gateway.refund("LS2024000001", "RF2", Decimal("150.00"), Decimal("199.90"))
    assert not caught.value.transient and caught.value.code.startswith("ACQ.")
    assert gateway.refund("LS2024000001", "RF3", Decimal("149.90"), Decimal("199.90")).status == "succeeded"
    assert gateway.query("LS2024000001").status == "refunded"  # closed after a full refund


def test_close(fake):
    gateway = fake.gateway()
    gateway.close("LS2024000404")  # never opened: nothing to close
    fake.accept(gateway.create_payment(_request()))
    gateway.close("LS2024000001")
    assert fake.orders["LS2024000001"]["trade_status"] == "TRADE_CLOSED"
    assert gateway.query("LS2024000001").status == "closed"
    fake.add_order("LS2024000002", "1.00", trade_status="TRADE_SUCCESS")
    with pytest.raises(GatewayError) as caught:
        gateway.close("LS2024000002")
    assert caught.value.code == "ACQ.TRADE_STATUS_ERROR" and not caught.value.transient


@pytest.mark.parametrize("call", [
    lambda g: g.query("LS2024000001"),
    lambda g: g.close("LS2024000001"),
    lambda g: g.refund("LS2024000001", "RF1", Decimal("1.00"), Decimal("10.00")),
])
def test_a_5xx_or_a_busy_platform_is_a_transient_error(kit, fake, call):
    fake.fail_next(502)
    with pytest.raises(GatewayError) as caught:
        call(fake.gateway())
    assert caught.value.transient
    fake.respond_next(200, kit.sign_response("alipay.trade.query", {
        "code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error", "sub_msg": "系统繁忙"}))
    with pytest.raises(GatewayError) as caught:
        fake.gateway().query("LS2024000001")
    assert caught.value.transient and caught.value.code == "isp.unknow-error"


@pytest.mark.parametrize("what", ["body", "signature"])
def test_a_tampered_answer_is_not_trusted(fake, what):
    gateway = fake.gateway()
    fake.add_order("LS2024000001", "1.00", trade_status="TRADE_SUCCESS")
    for call in (lambda: gateway.query("LS2024000001"),
                 lambda: gateway.refund("LS2024000001", "RF1", Decimal("1.00"), Decimal("1.00")),
                 lambda: gateway.close("LS2024000404")):
        fake.tamper_next(what)
        with pytest.raises(GatewayError) as caught:
            call()
        assert caught.value.code == "BAD_RESPONSE_SIGNATURE" and not caught.value.transient
    assert fake.orders["LS2024000001"]["refunded"] == Decimal("1.00")  # the refund did happen: a retry is safe
    assert gateway.refund("LS2024000001", "RF1", Decimal("1.00"), Decimal("1.00")).status == "succeeded"


def test_unsigned_or_foreign_answers_are_not_trusted(kit, fake):
    gateway = fake.gateway()
    success = {"code": "10000", "msg": "Success", "out_trade_no": "LS2024000001", "trade_status": "TRADE_SUCCESS",
               "total_amount": "1.00", "trade_no": "2024"}
    fake.respond_next(200, kit.sign_response("alipay.trade.query", success, signed=False))
    with pytest.raises(GatewayError) as caught:
        gateway.query("LS2024000001")
    assert caught.value.code == "BAD_RESPONSE_SIGNATURE"
    fake.respond_next(200, kit.sign_response("alipay.trade.query", success, key=generate_rsa_key()))
    with pytest.raises(GatewayError) as caught:
        gateway.query("LS2024000001")
    assert caught.value.code == "BAD_RESPONSE_SIGNATURE"
    missing = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"}
    fake.respond_next(200, kit.sign_response("alipay.trade.query", missing, signed=False))
    with pytest.raises(GatewayError):  # "not found" is believed only when signed
        gateway.query("LS2024000001")
    fake.respond_next(200, kit.sign_response("alipay.trade.query", dict(success, out_trade_no="LS2024000002")))
    with pytest.raises(GatewayError) as caught:
        gateway.query("LS2024000001")
    assert caught.value.code == "MISMATCHED_ANSWER"


def test_the_signature_covers_the_exact_response_text(kit, fake):
    """Alipay signs the response object as it wrote it: spacing and escapes
    included, so the adapter must not re-serialise it."""
    text = ('{\n  "code": "10000", "msg": "Success", "out_trade_no": "LS2024000001",\n'
            '  "trade_status": "TRADE_SUCCESS", "total_amount": "0.01", "trade_no": "2024\\u0031",'
            ' "send_pay_date": "2030-04-30 10:34:56", "subject": "入门"\n}')
    sign = base64.b64encode(kit.alipay_key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    body = ('{"alipay_trade_query_response" : ' + text + ' , "sign":"' + sign + '"}').encode()
    fake.respond_next(200, body)
    result = fake.gateway().query("LS2024000001")
    assert (result.status, result.transaction_id) == ("paid", "20241")
    assert result.paid_at == dt.datetime(2030, 4, 30, 2, 34, 56, tzinfo=dt.timezone.utc)
    fake.respond_next(200, body.replace(b'"code": "10000"', b'"code":"10000"'))
    with pytest.raises(GatewayError):
        fake.gateway().query("LS2024000001")


def test_a_request_signed_with_another_key_is_refused_by_alipay(kit, fake):
    wrong = AlipayGateway.from_settings(dict(fake.settings(), **{
        "learnsail.payments.alipay_app_private_key": private_key_pem(generate_rsa_key())}))
    with pytest.raises(GatewayError) as caught:
        wrong.query("LS2024000001")
    assert caught.value.code == "isv.invalid-signature" and not caught.value.transient
    assert fake.requests[-1].problem == "signature does not verify"


def test_a_network_error_is_transient(kit):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = AlipayGateway.from_settings(kit.settings(f"http://127.0.0.1:{port}/gateway.do"))
    with pytest.raises(GatewayError) as caught:
        gateway.close("LS2024000001")
    assert caught.value.transient and caught.value.code == "NETWORK_ERROR"


# -- settings -------------------------------------------------------------------

def test_not_configured_is_none_and_half_configured_names_what_is_missing(kit):
    assert AlipayGateway.from_settings({}) is None
    partial = {k: v for k, v in kit.settings().items() if not k.endswith("alipay_seller_id")}
    with pytest.raises(SettingError) as caught:
        AlipayGateway.from_settings(partial)
    assert "learnsail.payments.alipay_seller_id" in str(caught.value)
    assert "LEARNSAIL_PAYMENTS_ALIPAY_SELLER_ID" in str(caught.value)


def test_keys_as_pem_bare_base64_or_files(kit, tmp_path):
    der = kit.app_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    (tmp_path / "alipay_public.pem").write_text(public_key_pem(kit.alipay_key))
    variants = [
        {"learnsail.payments.alipay_app_private_key": base64.b64encode(der).decode(),
         "learnsail.payments.alipay_public_key": public_key_pem(kit.alipay_key)},
        {"learnsail.payments.alipay_public_key": str(tmp_path / "alipay_public.pem")},
        {"learnsail.payments.alipay_public_key": public_key_base64(kit.alipay_key)},
    ]
    body = kit.payment_notification("LS1", "1.00")
    for variant in variants:
        gateway = AlipayGateway.from_settings(dict(kit.settings(), **variant))
        assert gateway.parse_notification({}, body).status == "paid"
        assert kit.request_problem(_url_params(gateway.create_payment(_request())["url"])) is None


def test_settings_errors_never_quote_a_key(kit):
    secret = base64.b64encode(b"x" * 300).decode()
    with pytest.raises(SettingError) as caught:
        AlipayGateway.from_settings(dict(kit.settings(), **{"learnsail.payments.alipay_app_private_key": secret}))
    assert "alipay_app_private_key" in str(caught.value) and secret[:40] not in str(caught.value)
    with pytest.raises(SettingError) as caught:
        AlipayGateway.from_settings(dict(kit.settings(), **{"learnsail.payments.alipay_public_key": "MIIB" + "A" * 300}))
    assert "alipay_public_key" in str(caught.value) and "AAAAAAAA" not in str(caught.value)
    with pytest.raises(SettingError) as caught:
        AlipayGateway.from_settings(kit.settings("http://openapi.alipay.com/gateway.do"))
    assert "alipay_gateway_url" in str(caught.value)


def test_secret_settings_are_hidden_from_repr(kit):
    resolved = collect(alipay.SETTINGS, kit.settings(), environ={})
    assert "PRIVATE KEY" not in repr(resolved)
    gateway = AlipayGateway.from_settings(resolved)
    assert gateway.gateway_url == "https://openapi.alipay.com/gateway.do" and "KEY" not in repr(gateway)


def test_no_key_material_reaches_the_logs(kit, fake, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = fake.gateway()
    fake.add_order("LS2024000001", "1.00", trade_status="TRADE_SUCCESS")
    gateway.query("LS2024000001")
    fake.tamper_next("signature")
    with pytest.raises(GatewayError):
        gateway.query("LS2024000001")
    logged = caplog.text
    assert "alipay.trade.query" in logged or "gateway.do" in logged
    assert "PRIVATE KEY" not in logged and fake.requests[0].params["sign"] not in logged
    assert "sign=" not in logged
