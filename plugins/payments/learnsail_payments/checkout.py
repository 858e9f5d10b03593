"""Starting a payment: ``POST /api/v1/orders/{id}/pay`` asks the chosen
gateway for what the client needs (the ``pay_params``), and the sandbox's
confirmation, which becomes a signed notification handled like any
platform's."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail.errors import Conflict, ValidationFailed
from learnsail_payments.gateways.base import GatewayError, PaymentRequest, VerificationFailed
from learnsail_payments.models import EXPIRED, PENDING, Order, PaymentAttempt
from learnsail_payments.refunds import GatewayUnavailable

log = logging.getLogger("learnsail_payments")

CALLBACK_PATH = "/api/v1/pay/callback/{platform}"


def notify_url(base: str, platform: str) -> str:
    return base.rstrip("/") + CALLBACK_PATH.format(platform=platform)


def payable(order: Order) -> None:
    """409 unless the order waits for its payment."""
    status = order.effective_status
    if status == EXPIRED:
        raise Conflict(f"Order {order.order_no} has expired; order again.", {"status": EXPIRED})
    if status != PENDING:
        raise Conflict(f"Order {order.order_no} is {status}: only a pending order can be paid.", {"status": status})


def start_payment(session: Session, hook: Any, gateways: Mapping[str, Any], order: Order, user: Any, *,
                  platform: str, callback_base: str, scene: str | None = None, payer_openid: str | None = None,
                  return_url: str | None = None, client_ip: str | None = None) -> dict:
    """The ``pay_params`` of ``platform`` for the (locked) order."""
    payable(order)
    gateway = gateways.get(platform)
    if gateway is None:
        offered = sorted(gateways)
        raise ValidationFailed({"platform": [f"{platform} is not configured here; use one of {offered}."
                                             if offered else f"{platform} is not configured here; no payment "
                                             f"platform is."]})
    if order.product_type and not _still_purchasable(session, hook, order, user):
        raise Conflict("This product can no longer be bought by you; the order was not paid.",
                       {"order_id": order.id})
    now = utcnow()
    attempt = session.scalar(sa.select(PaymentAttempt).where(PaymentAttempt.order_id == order.id,
                                                             PaymentAttempt.platform == platform))
    if attempt is None:
        session.add(PaymentAttempt(order_id=order.id, platform=platform, amount=order.amount, client_ip=client_ip,
                                   created_at=now, last_started_at=now))
    else:
        attempt.last_started_at, attempt.client_ip = now, client_ip
    if platform == "wechat" and payer_openid is None and (scene or "jsapi") == "jsapi":
        payer_openid = wechat_openid(session, order.user_id)
    request = PaymentRequest(order_no=order.order_no, amount=order.amount, currency=order.currency,
                             title=order.title, expires_at=order.expires_at,
                             notify_url=notify_url(callback_base, platform), return_url=return_url, scene=scene,
                             payer_openid=payer_openid, client_ip=client_ip)
    try:
        params = gateway.create_payment(request)
    except GatewayError as exc:
        log.warning("%s refused to start the payment of %s: %s", platform, order.order_no, exc)
        raise GatewayUnavailable(f"{platform} could not start the payment: {exc}",
                                 {"platform": platform, "code": exc.code, "transient": exc.transient}) from None
    session.flush()
    return {"order_id": order.id, "order_no": order.order_no, "platform": platform, "pay_params": params}


def _still_purchasable(session: Session, hook: Any, order: Order, user: Any) -> bool:
    answer = hook.learnsail_product_quote(kind=order.product_type, ref_id=int(order.product_id), user=user,
                                          session=session)
    return bool(answer and answer.get("found", True) and answer.get("purchasable"))


def wechat_openid(session: Session, user_id: int) -> str | None:
    """The payer's WeChat openid, from their bound WeChat sign-in (JSAPI needs it)."""
    from learnsail.identity.models import OAuthAccount

    return session.scalar(sa.select(OAuthAccount.openid).where(OAuthAccount.user_id == user_id,
                                                                OAuthAccount.platform == "wechat").limit(1))


def sandbox_confirm(session: Session, hook: Any, gateway: Any, order: Order, terms: Mapping[str, str]) -> Any:
    """The buyer confirmed a sandbox payment: the sandbox books it and signs
    the notification, which takes the callback path
    (:func:`~learnsail_payments.callbacks.handle_notification`)."""
    from learnsail_payments.callbacks import NotificationRejected, handle_notification

    payable(order)
    try:
        headers, body = gateway.confirm(order.order_no, terms.get("amount", ""), terms.get("currency", ""),
                                        terms.get("expires", ""), terms.get("sig", ""))
    except VerificationFailed as exc:
        raise ValidationFailed({"sig": [str(exc)]}, "This confirmation URL cannot be used.") from None
    try:
        return handle_notification(session, hook, gateway, headers, body)
    except NotificationRejected as exc:
        raise Conflict(f"The sandbox payment was refused ({exc.reason}): {exc.message}",
                       {"reason": exc.reason}) from None

