"""The plugin's setting names (declared in plugin.learnsail_settings)."""

from __future__ import annotations

from learnsail.settings import Setting, as_bool, as_int

PREFIX = "learnsail.payments."
SANDBOX_ENABLED = PREFIX + "sandbox_enabled"
CURRENCY = PREFIX + "currency"
ORDER_TTL_MINUTES = PREFIX + "order_ttl_minutes"
EXPIRE_INTERVAL = PREFIX + "expire_interval_seconds"
REFUND_WINDOW_DAYS = PREFIX + "refund_window_days"
NOTIFY_BASE_URL = PREFIX + "notify_base_url"
RECONCILE_INTERVAL = PREFIX + "reconcile_interval_seconds"
RECONCILE_AFTER_MINUTES = PREFIX + "reconcile_after_minutes"
RECONCILE_LOOKBACK_HOURS = PREFIX + "reconcile_lookback_hours"
NONCE_RETENTION_DAYS = PREFIX + "nonce_retention_days"


def _at_least(minimum: int):
    def parse(value):
        number = as_int(value)
        if number < minimum:
            raise ValueError(f"must be {minimum} or more")
        return number
    return parse


def _currency(value):
    text = str(value).strip().upper()
    if len(text) != 3 or not text.isalpha():
        raise ValueError("must be a three-letter ISO 4217 code such as CNY")
    return text


def _base_url(value):
    text = str(value).strip().rstrip("/")
    if text and not text.startswith(("https://", "http://")):
        raise ValueError("must start with https:// (or http:// for development)")
    return text


SETTINGS = [
    Setting(SANDBOX_ENABLED, True,
            "Offer the `sandbox` platform: payments confirmed by the buyer without a merchant account, for "
            "development and the demo. **Turn it off in production** (anyone could pay with it).", as_bool),
    Setting(CURRENCY, "CNY", "Currency of orders whose product quote names none.", _currency),
    Setting(ORDER_TTL_MINUTES, 30,
            "Minutes a pending order waits for its payment; then it expires (its coupon is released).",
            _at_least(1)),
    Setting(EXPIRE_INTERVAL, 60, "Seconds between two runs of the periodic task `payments.expire_orders`.",
            _at_least(1)),
    Setting(REFUND_WINDOW_DAYS, 7,
            "Days after the payment during which the buyer may ask for a refund (0: only administrators "
            "refund).", _at_least(0)),
    Setting(NOTIFY_BASE_URL, "",
            "Public origin the platforms call back, e.g. `https://pay.example.edu` (the callback path "
            "`/api/v1/pay/callback/<platform>` is appended). Empty: the origin of the request that starts "
            "the payment.", _base_url),
    Setting(RECONCILE_INTERVAL, 300,
            "Seconds between two runs of the periodic task `payments.reconcile`, which asks the gateways "
            "about unsettled and recently paid orders; 0 turns it off.", _at_least(0)),
    Setting(RECONCILE_AFTER_MINUTES, 5,
            "Minutes after its last payment attempt before reconciliation asks the gateway about a pending "
            "order.", _at_least(0)),
    Setting(RECONCILE_LOOKBACK_HOURS, 48,
            "Hours back reconciliation looks for orders to check (paid, expired and cancelled ones).",
            _at_least(1)),
    Setting(NONCE_RETENTION_DAYS, 30,
            "Days the nonces of accepted notifications are kept (older notifications are refused by their "
            "timestamps long before).", _at_least(1)),
]
