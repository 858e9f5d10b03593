"""Sales statistics (004 §2.6.2) and the metrics hook."""

from __future__ import annotations

import datetime as dt

from payments_test_helpers import make_plan, order_plan, pay_sandbox


def test_sales_figures_by_day_product_and_platform(app, clients, gadgets, dbsession):
    student, admin = clients["student"], clients["admin"]
    plan = make_plan(admin, price="30.00", name="Monthly")
    for _ in range(2):
        pay_sandbox(student, order_plan(student, plan["id"])["id"])
    gadget = gadgets.add("40.00")
    bought = student.post_json("/api/v1/orders", {"product_type": "gadget", "product_id": gadget}).json
    pay_sandbox(student, bought["id"])
    order_plan(clients["other_student"], plan["id"])  # pending: not a sale
    admin.post_json(f"/api/v1/admin/orders/{bought['id']}/refund", {"amount": "10.00", "reason": "scratched"},
                    status=201)
    report = admin.get("/api/v1/admin/payments/stats").json
    assert report["totals"] == {"orders": 3, "sales": 100.0, "refunds": 10.0, "net_sales": 90.0,
                                "refunded_orders": 1, "refund_rate": 0.3333, "average_order_value": 33.33}
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert [(d["date"], d["orders"], d["sales"]) for d in report["by_day"]] == [(today, 3, 100.0)]
    assert [(p["product_type"], p["product_id"], p["title"], p["orders"], p["sales"]) for p in report["by_product"]] \
        == [("membership", plan["id"], "Monthly", 2, 60.0), ("gadget", gadget, f"Gadget {gadget}", 1, 40.0)]
    assert [(p["platform"], p["orders"]) for p in report["by_platform"]] == [("sandbox", 3)]
    assert report["refund_reasons"] == [{"reason": "scratched", "count": 1}]
    # an empty period, a bad one, and who may look
    past = admin.get("/api/v1/admin/payments/stats", params={"until": "2020-01-01T00:00:00Z"}).json
    assert past["totals"]["orders"] == 0 and past["totals"]["average_order_value"] == 0
    admin.get("/api/v1/admin/payments/stats", params={"since": "2020-01-01T00:00:00Z"}, status=400)
    clients["student"].get("/api/v1/admin/payments/stats", status=403)

    now = dt.datetime.now(dt.timezone.utc)
    (figures,) = app.registry["learnsail.pm"].hook.learnsail_metrics(
        session=dbsession, since=now - dt.timedelta(days=1), until=now + dt.timedelta(minutes=1))
    assert figures["payments.orders_paid"] == 3 and figures["payments.sales"] == 100.0
    assert figures["payments.refunds"] == 10.0 and figures["payments.average_order_value"] == 33.33
