"""Cache administration (004 §2.10.1, admins): statistics, the keys under a
prefix, and clearing a prefix or everything."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from learnsail.api import Service
from learnsail.api.validation import QuerySchema, Schema
from learnsail.identity.audit import record_request

CACHE_VIEW = "core:cache:view"
CACHE_MANAGE = "core:cache:manage"

_PREFIX = fields.String(validate=validate.Length(min=1, max=200), metadata={
    "description": "Keys starting with this text, e.g. `courses:`.", "example": "courses:"})


class CacheStatsSchema(Schema):
    backend = fields.String(metadata={"description": "`memory` or `redis`."})
    available = fields.Boolean(metadata={"description": "False while the cache server is failing "
                                                        "(requests are then served from the database)."})
    hits = fields.Integer(metadata={"description": "Lookups answered by the cache (this process)."})
    misses = fields.Integer()
    hit_rate = fields.Float(allow_none=True)
    sets = fields.Integer()
    deletes = fields.Integer()
    errors = fields.Integer(metadata={"description": "Cache operations that failed (this process)."})
    server = fields.Dict(allow_none=True, metadata={"description": "What the backend reports: entries "
                                                                   "(memory) or memory and hit counters (Redis)."})
    keys = fields.Integer(metadata={"description": "Keys under `prefix` (all keys without one)."})


class CacheQuerySchema(QuerySchema):
    prefix = _PREFIX


class CacheKeysQuerySchema(QuerySchema):
    prefix = _PREFIX
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class CacheKeySchema(Schema):
    key = fields.String()
    ttl = fields.Float(allow_none=True, metadata={"description": "Seconds left; null when it never expires."})


class CacheKeysSchema(Schema):
    results = fields.List(fields.Nested(CacheKeySchema))


class CacheClearQuerySchema(QuerySchema):
    prefix = _PREFIX
    all = fields.Boolean(load_default=False, metadata={"description": "Clear every key (instead of a prefix)."})

    @validates_schema
    def one_of(self, data: dict, **kwargs: Any) -> None:
        if bool(data.get("prefix")) == bool(data.get("all")):
            raise ValidationError("Give either prefix or all=true.", "prefix")


class CacheClearedSchema(Schema):
    deleted = fields.Integer(metadata={"description": "Keys removed."})


cache_stats = Service(name="core.cache", path="/api/v1/admin/cache",
                      description="Cache statistics and clearing (admins).")
cache_keys = Service(name="core.cache_keys", path="/api/v1/admin/cache/keys",
                     description="The keys held in the cache (admins).")


@cache_stats.get(permission=CACHE_VIEW, schema={"querystring": CacheQuerySchema},
                 responses={200: CacheStatsSchema})
def get_cache_stats(request: Any) -> dict:
    """Cache statistics: backend, availability, this process's hit and miss
    counters, the server's figures, and how many keys there are (under
    ``prefix`` when given)."""
    cache = request.cache
    prefix = request.validated["querystring"].get("prefix", "")
    return {**cache.stats(), "keys": cache.count(prefix)}


@cache_stats.delete(permission=CACHE_MANAGE, schema={"querystring": CacheClearQuerySchema},
                    responses={200: CacheClearedSchema})
def clear_cache(request: Any) -> dict:
    """Remove every key under ``prefix``, or every key with ``all=true``.
    Cached values are rebuilt from the database on the next read."""
    query = request.validated["querystring"]
    cache = request.cache
    deleted = cache.clear() if query.get("all") else cache.delete_prefix(query["prefix"])
    record_request(request, action="core:cache:clear", target_type="cache",
                   target_id=query.get("prefix") or "*", after={"deleted": deleted})
    return {"deleted": deleted}


@cache_keys.get(permission=CACHE_VIEW, schema={"querystring": CacheKeysQuerySchema},
                responses={200: CacheKeysSchema})
def list_cache_keys(request: Any) -> dict:
    """Up to ``limit`` keys (under ``prefix``) with the seconds they have
    left to live."""
    query = request.validated["querystring"]
    return {"results": request.cache.keys(query.get("prefix", ""), limit=query["limit"])}


def includeme(config: Any) -> None:
    config.add_learnsail_service(cache_stats)
    config.add_learnsail_service(cache_keys)
