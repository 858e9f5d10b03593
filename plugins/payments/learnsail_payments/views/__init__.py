"""The HTTP API, one module per area; SERVICES is what the plugin registers."""

from learnsail_payments.views import admin, callbacks, coupons, memberships, orders

SERVICES = (*orders.SERVICES, *callbacks.SERVICES, *coupons.SERVICES, *memberships.SERVICES, *admin.SERVICES)
