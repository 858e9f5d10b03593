"""A plugin used only by the core's tests to exercise the API conventions
(validation, errors, pagination, transactions) through real Cornice services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from marshmallow import fields, validate
from sqlalchemy.orm import Mapped, mapped_column

from learnsail import hookimpl
from learnsail.api import PUBLIC, Schema, Service
from learnsail.api.validation import QuerySchema
from learnsail.db import Base, utcnow
from learnsail.db.pagination import keyset_paginate, paginate
from learnsail.errors import Conflict, NotFound
from learnsail.plugins import PluginInfo

PLUGIN = PluginInfo(name="conventions", version="1.0", migrations=None)


class Item(Base):
    __tablename__ = "conventions_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2), default=Decimal("0"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ItemSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=50))
    price = fields.Decimal(load_default=Decimal("0"), validate=validate.Range(min=0), as_string=True)
    tags = fields.List(fields.String(), load_default=list)


class ItemOut(Schema):
    id = fields.Integer()
    name = fields.String()
    price = fields.Decimal(as_string=True)
    created_at = fields.DateTime()


class ItemQuery(QuerySchema):
    name = fields.String()
    tags = fields.List(fields.String())


class ItemPath(Schema):
    id = fields.Integer(required=True, strict=False)


def serialize(item: Item) -> dict:
    return {"id": item.id, "name": item.name, "price": item.price, "created_at": item.created_at}


items = Service(name="conventions.items", path="/api/v1/items", description="Test items")
item = Service(name="conventions.item", path="/api/v1/items/{id}", description="One item")
keyset = Service(name="conventions.keyset", path="/api/v1/items-keyset", description="Keyset")
boom = Service(name="conventions.boom", path="/api/v1/boom", description="Always fails")
conflict = Service(name="conventions.conflict", path="/api/v1/items-conflict", description="Writes then conflicts")
secret = Service(name="conventions.secret", path="/api/v1/secret", description="Needs a permission")
counted = Service(name="conventions.counted", path="/api/v1/items-counted",
                  description="Items, paged with a count and a page fetch of the caller's")


@items.get(permission=PUBLIC, schema={"querystring": ItemQuery})
def list_items(request):
    """List items, paginated."""
    stmt = sa.select(Item).order_by(Item.id)
    if request.validated["querystring"].get("name"):
        stmt = stmt.where(Item.name == request.validated["querystring"]["name"])
    return paginate(request, request.db, stmt, serialize)


@counted.get(permission=PUBLIC)
def list_counted(request):
    """Paged with a known count (as from a cache) and ids fetched, then rows."""
    def fetch(page_stmt):
        ids = page_stmt.with_only_columns(Item.id).subquery()
        return request.db.scalars(sa.select(Item).join(ids, ids.c.id == Item.id).order_by(Item.id)).all()

    return paginate(request, request.db, sa.select(Item).order_by(Item.id), serialize,
                    count=lambda stmt: int(request.GET.get("known_count", 0)), fetch=fetch)


@items.post(permission=PUBLIC, schema=ItemSchema, responses={201: ItemOut})
def create_item(request):
    """Create an item."""
    body = request.validated["body"]
    obj = Item(name=body["name"], price=body["price"])
    request.db.add(obj)
    request.db.flush()
    request.response.status = 201
    return serialize(obj)


@item.get(permission=PUBLIC, schema={"path": ItemPath}, responses={200: ItemOut})
def get_item(request):
    obj = request.db.get(Item, request.validated["path"]["id"])
    if obj is None:
        raise NotFound()
    return serialize(obj)


@keyset.get(permission=PUBLIC)
def list_keyset(request):
    return keyset_paginate(request, request.db, sa.select(Item), Item.id, serialize)


@boom.get(permission=PUBLIC)
def explode(request):
    raise RuntimeError("secret internal detail")


@conflict.post(permission=PUBLIC, schema=ItemSchema)
def write_then_conflict(request):
    request.db.add(Item(name=request.validated["body"]["name"]))
    request.db.flush()
    raise Conflict("That name is taken.", {"name": ["Already used."]})


@secret.get(permission="conventions:secret:view")
def read_secret(request):
    return {"secret": 42}


@hookimpl
def learnsail_permissions():
    return {"conventions:secret:view": ["teacher"]}


@hookimpl
def learnsail_includeme(config):
    for service in (items, item, keyset, boom, conflict, secret, counted):
        config.add_learnsail_service(service)
