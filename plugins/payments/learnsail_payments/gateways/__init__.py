"""The payment platforms: one :class:`~learnsail_payments.gateways.base.Gateway`
per configured platform, built once per app by :func:`build_gateways`.

- ``sandbox`` (:mod:`.sandbox`) while ``learnsail.payments.sandbox_enabled``;
- ``wechat`` (:mod:`.wechat`, WeChat Pay v3) and ``alipay`` (:mod:`.alipay`)
  when their merchant settings are given: each module's
  ``from_settings(settings)`` answers ``None`` when the platform is not
  configured and raises a configuration error naming the missing setting
  when it is half-configured (start-up stops).  A module that cannot be
  imported (not installed yet, a missing SDK) leaves its platform
  unavailable.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Mapping

from learnsail_payments.gateways.base import Gateway

log = logging.getLogger("learnsail_payments.gateways")

#: platform -> (module, class) of the real adapters
ADAPTERS = {
    "wechat": ("learnsail_payments.gateways.wechat", "WeChatPayGateway"),
    "alipay": ("learnsail_payments.gateways.alipay", "AlipayGateway"),
}
PLATFORMS = ("wechat", "alipay", "sandbox")
REGISTRY_KEY = "learnsail.payments.gateways"


def _adapter_module(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name == module_name:
            log.debug("payment adapter %s is not installed", module_name)
        else:
            log.warning("payment adapter %s cannot be imported (%s): its platform is unavailable",
                        module_name, exc)
        return None


def adapter_settings() -> list[Any]:
    """The merchant settings the real adapters declare (their ``SETTINGS``)."""
    found: list[Any] = []
    for module_name, _cls in ADAPTERS.values():
        module = _adapter_module(module_name)
        if module is not None:
            found.extend(getattr(module, "SETTINGS", ()))
    return found


def build_gateways(settings: Mapping[str, Any]) -> dict[str, Gateway]:
    """The configured platforms by name."""
    from learnsail_payments.gateways.sandbox import SandboxGateway
    from learnsail_payments.settings import SANDBOX_ENABLED

    gateways: dict[str, Gateway] = {}
    for platform, (module_name, class_name) in ADAPTERS.items():
        module = _adapter_module(module_name)
        if module is None:
            continue
        gateway = getattr(module, class_name).from_settings(settings)
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
