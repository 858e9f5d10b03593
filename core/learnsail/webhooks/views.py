"""The webhooks admin API: endpoints (register, change, disable, delete,
rotate the secret, ping), the declared event types, and the delivery log
with manual redelivery.  Everything needs ``core:webhooks:manage``
(admins by default): a webhook receives platform data, so only those who
may see all of it can point one somewhere."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields, validate, validates

from learnsail.api import Service, no_content, page_of
from learnsail.api.validation import Id, QuerySchema, Schema
from learnsail.db.pagination import MAX_PAGE, paginate
from learnsail.errors import NotFound, ValidationFailed
from learnsail.identity.audit import record_request
from learnsail.webhooks import PING, events_of, sender, services
from learnsail.webhooks.models import STATUSES, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

MANAGE = "core:webhooks:manage"

def _url(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=2000), metadata={
        "description": "An http:// or https:// URL. Internal addresses (loopback, private networks) are "
                       "refused unless `learnsail.webhooks_allow_private` is on.",
        "example": "https://hooks.example.edu/learnsail"}, **kwargs)


def _events(**kwargs: Any) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                       validate=validate.Length(min=1, max=200),
                       metadata={"description": "Declared event types (see `GET /api/v1/webhooks/events`).",
                                 "example": ["user.created"]}, **kwargs)


class EndpointInSchema(Schema):
    url = _url()
    events = _events()
    description = fields.String(validate=validate.Length(max=500))
    is_active = fields.Boolean(metadata={"description": "False stops deliveries to it (pending ones fail)."})

    @validates("events")
    def unique(self, value: list[str], **kwargs: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("An event type is listed twice.")


class EndpointCreateSchema(EndpointInSchema):
    url = _url(required=True)
    events = _events(required=True)


class EndpointOutSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    description = fields.String()
    events = fields.List(fields.String())
    is_active = fields.Boolean()
    secret_hint = fields.String(metadata={"description": "The first characters of the secret."})
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class EndpointWithSecretSchema(EndpointOutSchema):
    secret = fields.String(metadata={"description": "The signing secret, shown only now: keep it."})


class PathSchema(Schema):
    id = Id(required=True)


class ListQuerySchema(QuerySchema):
    page = fields.Integer(validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(validate=validate.Range(min=1), metadata={"description": "At most 100."})


class DeliveryQuerySchema(ListQuerySchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    event = fields.String(validate=validate.Length(min=1, max=100), metadata={"example": "user.created"})


class EventTypeSchema(Schema):
    type = fields.String()
    description = fields.String()


class EventTypesSchema(Schema):
    results = fields.List(fields.Nested(EventTypeSchema))


class DeliveryOutSchema(Schema):
    id = fields.Integer()
    uid = fields.String(metadata={"description": "The X-Learnsail-Delivery header."})
    endpoint_id = fields.Integer()
    event_id = fields.String(metadata={"description": "The event's id in the body (the same for every "
                                                      "endpoint and every redelivery)."})
    event_type = fields.String()
    status = fields.String(metadata={"description": "pending, retrying, succeeded or failed."})
    attempts = fields.Integer()
    response_status = fields.Integer(allow_none=True, metadata={"description": "Of the last attempt."})
    response_time_ms = fields.Integer(allow_none=True, metadata={"description": "Of the last attempt."})
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class AttemptOutSchema(Schema):
    number = fields.Integer()
    response_status = fields.Integer(allow_none=True)
    response_time_ms = fields.Integer()
    error = fields.String(allow_none=True)
    response_body = fields.String(allow_none=True, metadata={"description": "The start of the answer."})
    created_at = fields.DateTime()


class DeliveryDetailSchema(DeliveryOutSchema):
    payload = fields.Dict(metadata={"description": "The JSON body that is sent."})
    attempt_log = fields.List(fields.Nested(AttemptOutSchema))


def endpoint_out(endpoint: WebhookEndpoint, secret: bool = False) -> dict:
    out = {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description,
           "events": list(endpoint.events or ()), "is_active": endpoint.is_active,
           "secret_hint": endpoint.secret[:10] + "…", "created_by": endpoint.created_by,
           "created_at": endpoint.created_at, "updated_at": endpoint.updated_at}
    if secret:
        out["secret"] = endpoint.secret
    return out


def delivery_out(row: Any) -> dict:
    delivery, event_uid, event_type = row
    return {"id": delivery.id, "uid": delivery.uid, "endpoint_id": delivery.endpoint_id, "event_id": event_uid,
            "event_type": event_type, "status": delivery.status, "attempts": delivery.attempts,
            "response_status": delivery.response_status, "response_time_ms": delivery.response_time_ms,
            "last_error": delivery.last_error, "next_attempt_at": delivery.next_attempt_at,
            "delivered_at": delivery.delivered_at, "created_at": delivery.created_at}


def _endpoint(request: Any) -> WebhookEndpoint:
    eid = request.validated["path"]["id"]
    endpoint = request.db.get(WebhookEndpoint, eid)
    if endpoint is None:
        raise NotFound(f"No webhook endpoint with id {eid}.")
    return endpoint


def _delivery_row(request: Any) -> Any:
    did = request.validated["path"]["id"]
    row = request.db.execute(_deliveries().where(WebhookDelivery.id == did)).one_or_none()
    if row is None:
        raise NotFound(f"No webhook delivery with id {did}.")
    return row


def _deliveries() -> sa.Select:
    return (sa.select(WebhookDelivery, WebhookEvent.uid, WebhookEvent.type)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id))


def _check(request: Any, body: dict) -> None:
    """The URL's rules and the SSRF guard, and declared event types: 400
    naming the field, before anything changes."""
    problems: dict[str, list[str]] = {}
    if "url" in body:
        try:
            sender.resolve(body["url"], bool(request.registry.settings["learnsail.webhooks_allow_private"]))
        except sender.Refused as exc:
            problems["url"] = [str(exc)[:1].upper() + str(exc)[1:] + "."]
    if "events" in body:
        declared = events_of(request)
        unknown = [name for name in body["events"] if name not in declared]
        if unknown:
            problems["events"] = [f"Not a declared event type: {', '.join(unknown[:10])}."]
    if problems:
        message = problems["url"][0] if "url" in problems else problems["events"][0]
        raise ValidationFailed(problems, message)


# the literal paths are registered before {id} so that they are never taken for an id
event_types = Service(name="core.webhook_events", path="/api/v1/webhooks/events",
                      description="The event types endpoints can subscribe to.")
delivery = Service(name="core.webhook_delivery", path="/api/v1/webhooks/deliveries/{id}",
                   description="One delivery with its payload and attempt log.")
redeliver = Service(name="core.webhook_redeliver", path="/api/v1/webhooks/deliveries/{id}/redeliver",
                    description="Send a delivery again now.")
endpoints = Service(name="core.webhooks", path="/api/v1/webhooks",
                    description="Webhook endpoints (admins).")
endpoint = Service(name="core.webhook", path="/api/v1/webhooks/{id}", description="One webhook endpoint.")
rotate = Service(name="core.webhook_rotate", path="/api/v1/webhooks/{id}/rotate-secret",
                 description="Replace an endpoint's signing secret.")
ping = Service(name="core.webhook_ping", path="/api/v1/webhooks/{id}/ping",
               description="Send a test event to one endpoint.")
deliveries = Service(name="core.webhook_deliveries", path="/api/v1/webhooks/{id}/deliveries",
                     description="An endpoint's deliveries, newest first.")


@event_types.get(permission=MANAGE, responses={200: EventTypesSchema})
def list_event_types(request: Any) -> dict:
    """Every event type the core and the enabled plugins declare."""
    return {"results": [{"type": name, "description": text} for name, text in sorted(events_of(request).items())]}


@endpoints.get(permission=MANAGE, schema={"querystring": ListQuerySchema},
               responses={200: page_of(EndpointOutSchema)})
def list_endpoints(request: Any) -> dict:
    """The registered endpoints, newest first (secrets are never listed)."""
    stmt = sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id.desc())
    return paginate(request, request.db, stmt, endpoint_out)


@endpoints.post(permission=MANAGE, schema=EndpointCreateSchema, responses={201: EndpointWithSecretSchema})
def create_endpoint(request: Any) -> dict:
    """Register an endpoint for some event types.  The answer holds its
    signing ``secret``, shown this once.  A URL that is not http(s), does
    not resolve, or (unless allowed) points inside the platform's network
    is a 400; so is an undeclared event type."""
    body = request.validated["body"]
    _check(request, body)
    item = WebhookEndpoint(url=body["url"], events=body["events"], description=body.get("description", ""),
                           is_active=body.get("is_active", True), secret=services.new_secret(),
                           created_by=request.authenticated_userid)
    request.db.add(item)
    request.db.flush()
    record_request(request, action="core:webhook:create", target_type="webhook", target_id=item.id,
                   after={"url": item.url, "events": item.events, "is_active": item.is_active})
    request.response.status = 201
    return endpoint_out(item, secret=True)


@endpoint.get(permission=MANAGE, schema={"path": PathSchema}, responses={200: EndpointOutSchema}, errors=(404,))
def get_endpoint(request: Any) -> dict:
    """One endpoint (without its secret)."""
    return endpoint_out(_endpoint(request))


@endpoint.put(permission=MANAGE, schema={"path": PathSchema, "body": EndpointInSchema},
              responses={200: EndpointOutSchema}, errors=(404,))
def update_endpoint(request: Any) -> dict:
    """Change the URL, event types, description or active flag (the
    fields given; the others keep their value)."""
    item = _endpoint(request)
    body = request.validated["body"]
    _check(request, body)
    before = {"url": item.url, "events": item.events, "description": item.description, "is_active": item.is_active}
    for name in ("url", "events", "description", "is_active"):
        if name in body:
            setattr(item, name, body[name])
    request.db.flush()
    after = {"url": item.url, "events": item.events, "description": item.description, "is_active": item.is_active}
    if after != before:
        record_request(request, action="core:webhook:update", target_type="webhook", target_id=item.id,
                       before=before, after=after)
    return endpoint_out(item)


@endpoint.delete(permission=MANAGE, schema={"path": PathSchema}, responses={204: None}, errors=(404,))
def delete_endpoint(request: Any) -> Any:
    """Delete an endpoint with its delivery log."""
    item = _endpoint(request)
    record_request(request, action="core:webhook:delete", target_type="webhook", target_id=item.id,
                   before={"url": item.url, "events": item.events})
    ids = sa.select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == item.id)
    request.db.execute(sa.delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
    request.db.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == item.id))
    request.db.delete(item)
    request.db.flush()
    return no_content(request)


@rotate.post(permission=MANAGE, schema={"path": PathSchema}, responses={200: EndpointWithSecretSchema},
             errors=(404,))
def rotate_secret(request: Any) -> dict:
    """Replace the signing secret; the answer shows the new one, this once.
    Deliveries sent from now on (retries included) are signed with it."""
    item = _endpoint(request)
    item.secret = services.new_secret()
    request.db.flush()
    record_request(request, action="core:webhook:rotate_secret", target_type="webhook", target_id=item.id)
    return endpoint_out(item, secret=True)


@ping.post(permission=MANAGE, schema={"path": PathSchema}, responses={202: DeliveryOutSchema}, errors=(404,))
def ping_endpoint(request: Any) -> dict:
    """Send a ``webhooks.ping`` event to this endpoint only (even when
    disabled), to check the URL and the signature check of the receiver.
    The answer is the delivery; follow it in the delivery log."""
    item = _endpoint(request)
    services.emit(request, PING, {"endpoint_id": item.id, "message": "A test event from learnsail."},
                  endpoint_ids=[item.id])
    did = request.db.scalar(sa.select(sa.func.max(WebhookDelivery.id)).where(WebhookDelivery.endpoint_id == item.id))
    request.response.status = 202
    return delivery_out(request.db.execute(_deliveries().where(WebhookDelivery.id == did)).one())


@deliveries.get(permission=MANAGE, schema={"path": PathSchema, "querystring": DeliveryQuerySchema},
                responses={200: page_of(DeliveryOutSchema)}, errors=(404,))
def list_deliveries(request: Any) -> dict:
    """The endpoint's deliveries, newest first: status, attempts, the last
    answer's status and time; filter by ``status`` or ``event`` type."""
    item = _endpoint(request)
    query = request.validated["querystring"]
    stmt = _deliveries().where(WebhookDelivery.endpoint_id == item.id)
    if "status" in query:
        stmt = stmt.where(WebhookDelivery.status == query["status"])
    if "event" in query:
        stmt = stmt.where(WebhookEvent.type == query["event"])
    return paginate(request, request.db, stmt.order_by(WebhookDelivery.id.desc()), delivery_out, scalars=False)


@delivery.get(permission=MANAGE, schema={"path": PathSchema}, responses={200: DeliveryDetailSchema},
              errors=(404,))
def get_delivery(request: Any) -> dict:
    """One delivery: its state, the body that is sent, and every attempt."""
    row = _delivery_row(request)
    item = row[0]
    event = request.db.get(WebhookEvent, item.event_id)
    attempts = request.db.scalars(sa.select(WebhookAttempt).where(WebhookAttempt.delivery_id == item.id)
                             .order_by(WebhookAttempt.number, WebhookAttempt.id))
    return {**delivery_out(row), "payload": json.loads(services.body_of(event)),
            "attempt_log": [{"number": a.number, "response_status": a.response_status,
                             "response_time_ms": a.response_time_ms, "error": a.error,
                             "response_body": a.response_body, "created_at": a.created_at} for a in attempts]}


@redeliver.post(permission=MANAGE, schema={"path": PathSchema}, responses={202: DeliveryOutSchema},
                errors=(404,))
def redeliver_delivery(request: Any) -> dict:
    """Send the delivery again now (same event id, so receivers can tell a
    repeat).  The attempt goes to the log like the others."""
    row = _delivery_row(request)
    services.redeliver(request, row[0])
    record_request(request, action="core:webhook:redeliver", target_type="webhook",
                   target_id=row[0].endpoint_id, after={"delivery": row[0].uid})
    request.response.status = 202
    return delivery_out(row)


def includeme(config: Any) -> None:
    for service in (event_types, delivery, redeliver, endpoints, endpoint, rotate, ping, deliveries):
        config.add_learnsail_service(service)
