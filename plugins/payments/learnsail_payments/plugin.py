"""learnsail-payments: the plugin's face, hook implementations only.

Registered through the entry point ``learnsail.plugins = payments =
learnsail_payments.plugin`` (see setup.cfg); enabled by naming it in
``learnsail.plugins`` (``LEARNSAIL_PLUGINS``) or with ``*``.
"""

from __future__ import annotations

from learnsail import hookimpl
from learnsail.plugins import PluginInfo

from learnsail_payments import __version__
from learnsail_payments import models  # noqa: F401  (registers the tables on learnsail.db.Base.metadata)
from learnsail_payments import states  # noqa: F401  (guards Order.status)

PLUGIN = PluginInfo(
    name="payments",
    version=__version__,
    core=">=0.1,<1",
    description="Orders for whatever plugins sell, WeChat Pay / Alipay / sandbox payments with verified "
                "callbacks, coupons, refunds, memberships, reconciliation and sales statistics.",
)


@hookimpl
def learnsail_settings():
    from learnsail_payments.gateways import adapter_settings
    from learnsail_payments.settings import SETTINGS

    return [*SETTINGS, *adapter_settings()]


@hookimpl
def learnsail_permissions():
    from learnsail_payments.permissions import DEFAULTS

    return DEFAULTS


@hookimpl
def learnsail_includeme(config):
    from learnsail_payments import tasks  # noqa: F401  (declares the plugin's tasks)
    from learnsail_payments.gateways import REGISTRY_KEY, build_gateways
    from learnsail_payments.views import SERVICES, callbacks

    config.registry[REGISTRY_KEY] = build_gateways(config.registry.settings)
    for service in SERVICES:
        config.add_learnsail_service(service)
    callbacks.includeme(config)


@hookimpl
def learnsail_periodic_tasks(settings):
    from learnsail.tasks import Periodic

    from learnsail_payments.settings import EXPIRE_INTERVAL, RECONCILE_INTERVAL

    found = [Periodic("payments.expire_orders", "payments.expire_orders", every=int(settings[EXPIRE_INTERVAL])),
             Periodic("payments.purge_nonces", "payments.purge_nonces", every=24 * 3600)]
    if int(settings[RECONCILE_INTERVAL]) > 0:
        found.append(Periodic("payments.reconcile", "payments.reconcile", every=int(settings[RECONCILE_INTERVAL])))
    return found


@hookimpl
def learnsail_notification_types():
    from learnsail_payments.notices import TYPES

    return TYPES


@hookimpl
def learnsail_webhook_events():
    from learnsail_payments.notices import EVENTS

    return EVENTS


@hookimpl
def learnsail_product_quote(kind, ref_id, user, session):
    from learnsail_payments import memberships

    return memberships.quote(session, ref_id, user) if kind == memberships.PRODUCT else None


@hookimpl
def learnsail_order_paid(order, session):
    from learnsail_payments import memberships

    memberships.fulfil(session, order)


@hookimpl
def learnsail_order_refunded(order, session):
    from learnsail_payments import memberships

    memberships.revoke(session, order)


@hookimpl
def learnsail_member_until(user_id, session):
    from learnsail_payments import memberships

    return memberships.member_until(session, user_id)


@hookimpl
def learnsail_metrics(session, since, until):
    from learnsail_payments import stats

    return stats.metrics(session, since, until)


@hookimpl
def learnsail_demo_data(session, settings):
    from learnsail_payments.demo import load

    return load(session)


@hookimpl
def learnsail_user_export(user_id, session):
    from learnsail_payments.personal import export_user

    return export_user(session, user_id)


@hookimpl
def learnsail_user_erased(user_id, session):
    from learnsail_payments.personal import erase_user

    erase_user(session, user_id)
