"""The plugin's wiring: settings (its own and the adapters'), gateways
built from settings, permissions, demo data, the sandbox switch, and
paying: the 000 answer, 409 for orders that are not pending, 400 for a
platform that is not configured."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from payments_test_helpers import _path, make_plan, order_plan, pay_sandbox, sandbox
from learnsail_payments import gateways as gateways_mod
from learnsail_payments.gateways import build_gateways
from learnsail_payments.models import Coupon, MembershipPlan, Order


def test_settings_include_the_adapters_merchant_keys(app):
    settings = app.registry.settings
    for name, default in (("sandbox_enabled", True), ("order_ttl_minutes", 30), ("refund_window_days", 7),
                          ("currency", "CNY"), ("wechat_mchid", ""), ("alipay_app_id", "")):
        assert settings[f"learnsail.payments.{name}"] == default, name


def test_gateways_are_built_from_settings():
    base = {"learnsail.secret": "x" * 40}
    assert set(build_gateways({**base, "learnsail.payments.sandbox_enabled": True})) == {"sandbox"}
    assert build_gateways({**base, "learnsail.payments.sandbox_enabled": False}) == {}
    with pytest.raises(ValueError, match="wechat"):  # half configured: start-up stops, naming the setting
        build_gateways({**base, "learnsail.payments.wechat_mchid": "1900000109"})


def test_the_adapters_declare_their_merchant_settings():
    names = {setting.name for setting in gateways_mod.adapter_settings()}
    assert {"learnsail.payments.wechat_mchid", "learnsail.payments.wechat_api_v3_key",
            "learnsail.payments.alipay_app_id", "learnsail.payments.alipay_public_key"} <= names


def test_permissions_are_declared_with_their_defaults(app):
    granted = app.registry["learnsail.permissions"]
    assert granted["payments:order:create"] >= {"student", "teacher"}
    assert granted["payments:coupon:manage"] == {"admin"} and granted["payments:refund:review"] == {"admin"}


def test_demo_data_is_loaded_once(app, dbsession):
    from learnsail_payments.demo import load

    assert "DEMO50" in load(dbsession)
    assert load(dbsession) is None
    coupon = dbsession.scalar(sa.select(Coupon).where(Coupon.code == "DEMO50"))
    assert (coupon.scope, coupon.scope_product_type, coupon.is_public) == ("product_type", "course", True)
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(MembershipPlan)) == 2


def test_pay_answers_the_000_shape(clients, app):
    order = order_plan(clients["student"], make_plan(clients["admin"], price="12.50")["id"])
    r = clients["student"].post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=200).json
    assert set(r) == {"order_id", "order_no", "platform", "pay_params"}
    assert (r["order_id"], r["order_no"], r["platform"]) == (order["id"], order["order_no"], "sandbox")
    params = r["pay_params"]
    assert params["amount"] == "12.50" and params["method"] == "POST"
    assert params["confirm_url"].startswith(f"http://localhost/api/v1/pay/sandbox/{order['order_no']}/confirm?")
    assert clients["anonymous"].get("/api/v1/pay/platforms").json == {"platforms": ["sandbox"]}


def test_paying_an_order_that_is_not_pending_is_a_409(clients, dbsession):
    plan = make_plan(clients["admin"])
    paid = order_plan(clients["student"], plan["id"])
    pay_sandbox(clients["student"], paid["id"])
    for order_id, status in ((paid["id"], "paid"),):
        r = clients["student"].post_json(f"/api/v1/orders/{order_id}/pay", {"platform": "sandbox"}, status=409)
        assert r.json["error"]["details"]["status"] == status
    cancelled = order_plan(clients["student"], make_plan(clients["admin"])["id"])
    clients["student"].post_json(f"/api/v1/orders/{cancelled['id']}/cancel", {}, status=200)
    r = clients["student"].post_json(f"/api/v1/orders/{cancelled['id']}/pay", {"platform": "sandbox"}, status=409)
    assert r.json["error"]["details"]["status"] == "cancelled"
    expired = order_plan(clients["student"], make_plan(clients["admin"])["id"])
    dbsession.execute(sa.update(Order).where(Order.id == expired["id"])
                      .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    r = clients["student"].post_json(f"/api/v1/orders/{expired['id']}/pay", {"platform": "sandbox"}, status=409)
    assert r.json["error"]["details"]["status"] == "expired"


def test_a_platform_that_is_not_configured_is_a_400(clients):
    order = order_plan(clients["student"], make_plan(clients["admin"])["id"])
    for platform in ("wechat", "alipay"):
        r = clients["student"].post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": platform}, status=400)
        assert "not configured" in r.json["error"]["details"]["platform"][0]
    clients["student"].post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "paypal"}, status=400)


def test_the_sandbox_can_be_switched_off(app, clients, monkeypatch):
    order = order_plan(clients["student"], make_plan(clients["admin"])["id"])
    started = clients["student"].post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}).json
    off = build_gateways({"learnsail.secret": "x" * 40, "learnsail.payments.sandbox_enabled": False})
    monkeypatch.setitem(app.registry, gateways_mod.REGISTRY_KEY, off)
    clients["student"].post_json(f"/api/v1/orders/{order['id']}/pay", {"platform": "sandbox"}, status=400)
    clients["student"].post_json(_path(started["pay_params"]["confirm_url"]), {}, status=404)
    clients["student"].testapp.post("/api/v1/pay/callback/sandbox", b"{}", status=404)
    assert clients["anonymous"].get("/api/v1/pay/platforms").json == {"platforms": []}


def test_a_sandbox_confirmation_url_cannot_be_forged(app, clients, dbsession):
    order = order_plan(clients["student"], make_plan(clients["admin"], price="50.00")["id"])
    url = _path(clients["student"].post_json(f"/api/v1/orders/{order['id']}/pay",
                                             {"platform": "sandbox"}).json["pay_params"]["confirm_url"])
    forged = url.replace("amount=50.00", "amount=0.01")
    r = clients["student"].post_json(forged, {}, status=400)
    assert r.json["error"]["code"] == "VALIDATION_ERROR"
    clients["other_student"].post_json(url, {}, status=404)  # only the buyer pays
    assert dbsession.get(Order, order["id"]).status == "pending"
    assert clients["student"].post_json(url, {}, status=200).json["status"] == "paid"
    assert sandbox(app).query(order["order_no"]).status == "paid"
    # confirming a paid order again: 409, nothing charged twice
    clients["student"].post_json(url, {}, status=409)


def test_payment_and_refund_events_reach_webhook_subscribers(clients, dbsession):
    from learnsail.webhooks.models import WebhookEndpoint, WebhookEvent

    declared = {e["type"] for e in clients["admin"].get("/api/v1/webhooks/events").json["results"]}
    assert {"payments.order_paid", "payments.order_refunded"} <= declared
    dbsession.add(WebhookEndpoint(url="http://127.0.0.1:9/hook", events=["payments.order_paid",
                                                                          "payments.order_refunded"],
                                  secret="s" * 32))
    dbsession.commit()
    order = order_plan(clients["student"], make_plan(clients["admin"], price="9.90")["id"])
    pay_sandbox(clients["student"], order["id"])
    clients["admin"].post_json(f"/api/v1/admin/orders/{order['id']}/refund", {}, status=201)
    events = {e.type: e.data for e in dbsession.scalars(sa.select(WebhookEvent))}
    assert events["payments.order_paid"]["order_no"] == order["order_no"]
    assert events["payments.order_paid"]["amount"] == "9.90" and events["payments.order_paid"]["platform"] == "sandbox"
    assert events["payments.order_refunded"]["status"] == "refunded"
    assert events["payments.order_refunded"]["refunded_amount"] == "9.90"
