"""The platforms' notifications (000 §六 ``POST /api/v1/pay/callback/{platform}``),
the sandbox's confirmation, and the list of platforms on offer.

The callback answers success only after the commit.  pyramid_tm commits
once the view has returned; should the commit fail, the exception is
rendered by :func:`callback_error_view` -- registered for this route and
any exception -- into the platform's *failure* answer, which replaces the
success the view had prepared, so the platform retries.  Refusals
(:class:`~learnsail_payments.callbacks.NotificationRejected`) take the
same view: the transaction is rolled back and the answer names the reason.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPException
from pyramid.response import Response

from learnsail.api import PUBLIC, Service
from learnsail.errors import APIError, NotFound
from learnsail_payments import callbacks, checkout
from learnsail_payments.models import Order
from learnsail_payments.permissions import ORDER_CREATE
from learnsail_payments.schemas import (CallbackAckSchema, OrderNoPath, PlatformPath, SandboxConfirmedSchema,
                                        SandboxConfirmQuery)
from learnsail_payments.views.common import gateways, hook, own_order

log = logging.getLogger("learnsail_payments.callbacks")

CALLBACK_ROUTE = "payments.callback"

callback = Service(name=CALLBACK_ROUTE, path="/api/v1/pay/callback/{platform}",
                   description="Payment and refund notifications from a platform.")
sandbox_confirm = Service(name="payments.sandbox_confirm", path="/api/v1/pay/sandbox/{order_no}/confirm",
                          description="Pay a sandbox payment (development and demo only).")
platforms = Service(name="payments.platforms", path="/api/v1/pay/platforms",
                    description="The payment platforms configured here.")

CALLBACK_BODY = {"application/json": CallbackAckSchema, "application/x-www-form-urlencoded": CallbackAckSchema}


def _gateway(request: Any) -> Any:
    platform = (request.matchdict or {}).get("platform", "")
    gateway = gateways(request).get(platform)
    if gateway is None:
        raise NotFound(f"No payment platform {platform!r} is configured here.")
    return gateway


def _answer(ack: Any, status: int | None = None) -> Response:
    response = Response(status=status or ack.status, body=ack.body)
    response.content_type = ack.content_type
    return response


@callback.post(permission=PUBLIC, schema={"path": PlatformPath}, request_body=CALLBACK_BODY,
               responses={200: (CallbackAckSchema, "Accepted (committed): the platform's success answer -- "
                                                   "WeChat Pay 204/200, Alipay the text success, the sandbox "
                                                   '{"code": 0, "message": "success"}. Alipay\'s refusal is '
                                                   "a 200 too, the text fail."),
                          400: ({"anyOf": [{"$ref": "#/components/schemas/CallbackAck"},
                                           {"$ref": "#/components/schemas/Error"}]},
                                "Refused by the sandbox: "
                                '{"code": 1, "message": "<reason>: ..."}; nothing changed. A platform name '
                                "that cannot be one: the error envelope."),
                          500: (CallbackAckSchema, 'Refused by WeChat Pay\'s rules: {"code": "FAIL", "message": '
                                                   '"<reason>: ..."}, or not saved (server_error); nothing '
                                                   "changed, the platform retries.")},
               errors=(404,))
def receive_notification(request: Any) -> Response:
    """A platform's payment or refund notification (000).  The raw body
    is verified before it is read (WeChat Pay: RSA-SHA256 over
    ``timestamp\\nnonce\\nbody\\n`` with the platform certificate of the
    serial, AES-256-GCM resource, 300 s clock window; Alipay: RSA2 over the
    sorted parameters, app_id and seller_id), its nonce is never accepted
    twice, amount, currency and merchant must be the order's, and the
    order moves pending → paid exactly once, fulfilled in the same
    transaction.  A repeat of a settled notification is answered success
    and changes nothing.  Any refusal answers the platform's failure form
    with the reason (``bad_signature``, ``stale_timestamp``,
    ``replayed_nonce``, ``wrong_amount``, ``unknown_order``...), changes
    nothing and is logged; the platform retries."""
    gateway = _gateway(request)
    callbacks.handle_notification(request.db, hook(request), gateway, dict(request.headers), request.body)
    return _answer(gateway.acknowledge(True))


def callback_error_view(exc: Exception, request: Any) -> Response:
    """Every failure on the callback route, including a failed commit: the
    platform's failure answer (it retries); the transaction is rolled back."""
    from learnsail.api.errorviews import api_error_view, http_exception_view, server_error_view

    gateway = gateways(request).get((request.matchdict or {}).get("platform", ""))
    if isinstance(exc, callbacks.NotificationRejected):
        log.warning("%s notification refused (%s): %s [request %s, from %s]", gateway.name if gateway else "?",
                    exc.reason, exc.message, getattr(request, "request_id", None), request.client_addr)
        return _answer(gateway.acknowledge(False, f"{exc.reason}: {exc.message}"))
    if isinstance(exc, APIError):
        if gateway is None:
            return api_error_view(exc, request)
        log.warning("%s notification failed (%s): %s", gateway.name, exc.code, exc.message)
        return _answer(gateway.acknowledge(False, f"{exc.code}: {exc.message}"), status=exc.status)
    if isinstance(exc, HTTPException):
        return http_exception_view(exc, request)
    fallback = server_error_view(exc, request)  # logs it; marks a transient database error for a replay
    if gateway is None:
        return fallback
    return _answer(gateway.acknowledge(False, "server_error: the notification could not be saved; retry"),
                   status=500)


@sandbox_confirm.post(permission=ORDER_CREATE, schema={"path": OrderNoPath, "querystring": SandboxConfirmQuery},
                      errors=(409,), responses={200: (SandboxConfirmedSchema, "Paid (or already paid).")})
def confirm_sandbox_payment(request: Any) -> dict:
    """Pay a sandbox payment: POST the ``confirm_url`` of the sandbox's
    ``pay_params``, as the order's buyer.  The sandbox signs a payment
    notification, which is handled exactly as a platform's callback (the
    same verification, nonce, amount checks and state machine).  404 when
    the sandbox is off (learnsail.payments.sandbox_enabled) or for someone
    else's order; 409 when the order is no longer pending or the
    notification is refused."""
    gateway = gateways(request).get("sandbox")
    if gateway is None:
        raise NotFound("The sandbox payment platform is turned off.")
    order_no = request.validated["path"]["order_no"]
    order_id = request.db.scalar(sa.select(Order.id).where(Order.order_no == order_no))
    if order_id is None:
        raise NotFound(f"No order {order_no}.")
    order = own_order(request, order_id, lock=False)
    outcome = checkout.sandbox_confirm(request.db, hook(request), gateway, order, request.validated["querystring"])
    return {"order_id": order.id, "order_no": order.order_no, "status": outcome.order.status,
            "changed": outcome.changed}


@platforms.get(permission=PUBLIC, responses={200: (None, '{"platforms": ["sandbox", ...]}')})
def list_platforms(request: Any) -> dict:
    """The payment platforms configured here (what ``POST /orders/{id}/pay`` accepts)."""
    return {"platforms": sorted(gateways(request))}


def includeme(config: Any) -> None:
    config.add_exception_view(callback_error_view, context=Exception, route_name=CALLBACK_ROUTE)


SERVICES = (callback, sandbox_confirm, platforms)
