"""learnsail-payments: orders for whatever other plugins sell, payment
gateways with verified callbacks, coupons, refunds, memberships,
reconciliation and sales statistics."""

__version__ = "0.1.0"
