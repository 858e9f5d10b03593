"""Builders and probes the payments tests share."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from learnsail import hookimpl

_n = itertools.count(1)


class Gadgets:
    """A seller of ``gadget`` products: ``prices[id]`` (Decimal), all
    purchasable unless in ``refused``; records what it was told."""

    def __init__(self) -> None:
        self.prices: dict[int, Decimal] = {}
        self.refused: dict[int, str] = {}
        self.paid: list[tuple[str, int]] = []
        self.refunded: list[tuple[str, str]] = []
        self.fail_on_paid = False
        self.fail_for: set[int] = set()

    def add(self, price: str, product_id: int | None = None) -> int:
        product_id = product_id or next(_n)
        self.prices[product_id] = Decimal(price)
        return product_id

    @hookimpl
    def learnsail_product_quote(self, kind, ref_id, user, session):
        if kind != "gadget":
            return None
        if ref_id not in self.prices:
            return {"title": "", "price": Decimal("0"), "currency": "CNY", "purchasable": False,
                    "reason": "No such gadget.", "found": False}
        reason = self.refused.get(ref_id)
        return {"title": f"Gadget {ref_id}", "price": self.prices[ref_id], "currency": "CNY",
                "image_url": f"https://img.example/{ref_id}.png", "purchasable": reason is None, "reason": reason,
                "found": True}

    @hookimpl
    def learnsail_order_paid(self, order, session):
        if order.product_type == "gadget":
            if self.fail_on_paid or order.product_id in self.fail_for:
                raise RuntimeError("the warehouse is on fire")
            self.paid.append((order.order_no, order.user_id))

    @hookimpl
    def learnsail_order_refunded(self, order, session):
        if order.product_type == "gadget":
            self.refunded.append((order.order_no, order.status))


def make_plan(admin: Any, price: str = "30.00", days: int = 30, **body: Any) -> dict:
    return admin.post_json("/api/v1/admin/membership/plans",
                           {"name": body.pop("name", f"Plan {next(_n)}"), "duration_days": days, "price": price,
                            **body}, status=201).json


def order_plan(client: Any, plan_id: int, coupon_id: int | None = None, status: int = 201) -> dict:
    body: dict = {"product_type": "membership", "product_id": plan_id}
    if coupon_id is not None:
        body["coupon_id"] = coupon_id
    return client.post_json("/api/v1/orders", body, status=status).json


def window(days_before: int = 1, days_after: int = 30) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"start_time": (now - dt.timedelta(days=days_before)).isoformat(),
            "end_time": (now + dt.timedelta(days=days_after)).isoformat()}


def make_coupon(admin: Any, **body: Any) -> dict:
    data = {"name": f"Coupon {next(_n)}", "type": "fixed", "discount_amount": "5.00", "is_public": True,
            **window(), **body}
    return admin.post_json("/api/v1/admin/coupons", data, status=201).json


def sandbox(app: Any) -> Any:
    from learnsail_payments.gateways import gateways_of

    return gateways_of(app.registry)["sandbox"]


def pay_sandbox(client: Any, order_id: int) -> dict:
    """Start a sandbox payment and confirm it, as the buyer would."""
    params = client.post_json(f"/api/v1/orders/{order_id}/pay", {"platform": "sandbox"}, status=200).json
    url = params["pay_params"]["confirm_url"]
    return client.post_json(_path(url), {}, status=200).json


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def signed(app: Any, order: dict, **fields: Any) -> tuple[dict, bytes]:
    """A sandbox payment notification for ``order`` (a response dict), signed."""
    values = {"order_no": order["order_no"], "status": "paid", "amount": Decimal(str(order["amount"])).quantize(Decimal("0.01")),
              "currency": order.get("currency", "CNY"), "transaction_id": f"SBXT{next(_n)}"}
    values.update(fields)
    return sandbox(app).sign_notification(**values)


def post_callback(testapp: Any, headers: dict, body: bytes, platform: str = "sandbox", status: Any = "*") -> Any:
    return testapp.post(f"/api/v1/pay/callback/{platform}", body, headers=headers, status=status)


def snapshot(dbsession: Any) -> dict:
    """What a refused notification must not change."""
    from learnsail_payments.models import (Discrepancy, NotificationNonce, Order, OrderEvent, UserCoupon)

    dbsession.expire_all()
    count = lambda model: dbsession.scalar(sa.select(sa.func.count()).select_from(model))  # noqa: E731
    return {"orders": [(o.id, o.status, o.paid_at, o.transaction_id) for o in
                       dbsession.scalars(sa.select(Order).order_by(Order.id))],
            "events": count(OrderEvent), "nonces": count(NotificationNonce), "findings": count(Discrepancy),
            "copies": [(c.id, c.status) for c in dbsession.scalars(sa.select(UserCoupon).order_by(UserCoupon.id))]}


# --- an app that really commits (for tests with threads) ---------------------------------

def committing_app(database_url: str, data_dir: str, plugins: str = "payments", **settings: Any) -> Any:
    """A migrated app on its own database whose requests really commit
    (the ``app`` fixture's share one rolled-back connection)."""
    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app
    from learnsail.testing import isolated_environ

    values = {"learnsail.data_dir": data_dir, "learnsail.database_url": database_url,
              "learnsail.plugins": plugins, "learnsail.secret": "concurrency-tests-secret-concurrency-tests!",
              "learnsail.log_level": "CRITICAL", "learnsail.auth_cache_seconds": "0", **settings}
    config = configure(values, environ=isolated_environ())
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    return make_wsgi_app(config)


def quick_users(registry: Any, count: int, prefix: str) -> list[Any]:
    """``count`` committed students (no password hashing: they sign in by token only)."""
    from sqlalchemy.orm import Session

    from learnsail.identity import passwords
    from learnsail.identity.models import User
    from learnsail.identity.services import ensure_default_roles

    with Session(registry["learnsail.db_engine"], expire_on_commit=False) as session:
        roles = ensure_default_roles(session)
        made = [User(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com", role=roles["student"],
                     password=passwords.UNUSABLE_PASSWORD) for i in range(count)]
        session.add_all(made)
        session.commit()
        for user in made:
            user.role.name  # loaded for bearer()
    return made


def call(app: Any, method: str, path: str, *, body: bytes = b"", headers: dict | None = None) -> Any:
    """One request straight to the WSGI app (thread-safe, unlike a shared TestApp)."""
    from webob import Request

    request = Request.blank(path, method=method, body=body, headers=headers or {},
                            environ={"REMOTE_ADDR": "127.0.0.1"})
    return request.get_response(app)


def call_json(app: Any, method: str, path: str, data: Any, headers: dict) -> Any:
    import json

    return call(app, method, path, body=json.dumps(data).encode(),
                headers={**headers, "Content-Type": "application/json"})


def race(count: int, work: Any) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at once; their results in order."""
    import threading

    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # reported by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
