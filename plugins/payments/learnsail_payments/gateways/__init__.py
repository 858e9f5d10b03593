"""The payment platforms: one :class:`~learnsail_payments.gateways.base.Gateway`
per configured platform, built once per app by :func:`build_gateways`.

- ``sandbox`` (:mod:`.sandbox`) while ``learnsail.payments.sandbox_enabled``;
- ``wechat`` (:mod:`.wechat`, WeChat Pay v3) and ``alipay`` (:mod:`.alipay`)
  when their merchant settings are given: each module's
  ``from_settings(settings)`` answers ``None`` when the platform is not
  configured and raises a configuration error naming the missing setting
  when it is half-configured (start-up stops).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from learnsail_payments.gateways.base import Gateway

log = logging.getLogger("learnsail_payments.gateways")

PLATFORMS = ("wechat", "alipay", "sandbox")
REGISTRY_KEY = "learnsail.payments.gateways"


def _adapters() -> dict[str, Any]:
    """platform -> the class of its real adapter."""
    from learnsail_payments.gateways.alipay import AlipayGateway
    from learnsail_payments.gateways.wechat import WeChatPayGateway

    return {"wechat": WeChatPayGateway, "alipay": AlipayGateway}


def adapter_settings() -> list[Any]:
    """The merchant settings the real adapters declare (their ``SETTINGS``)."""
    from learnsail_payments.gateways import alipay, wechat

    return [*wechat.SETTINGS, *alipay.SETTINGS]


def build_gateways(settings: Mapping[str, Any]) -> dict[str, Gateway]:
    """The configured platforms by name."""
    from learnsail_payments.gateways.sandbox import SandboxGateway
    from learnsail_payments.settings import SANDBOX_ENABLED

    gateways: dict[str, Gateway] = {}
    for platform, adapter in _adapters().items():
        gateway = adapter.from_settings(settings)
        if gateway is not None:
            gateways[platform] = gateway
    if settings.get(SANDBOX_ENABLED):
        if gateways:
            log.warning("the payments sandbox is enabled beside %s: turn it off in production "
                        "(learnsail.payments.sandbox_enabled = false)", ", ".join(sorted(gateways)))
        gateways["sandbox"] = SandboxGateway.from_settings(settings)
    return gateways


def gateways_of(target: Any) -> dict[str, Gateway]:
    """The app's gateways, from a request, session, task context or registry."""
    from learnsail.aftercommit import registry_of

    return registry_of(target)[REGISTRY_KEY]
