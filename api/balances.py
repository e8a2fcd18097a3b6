"""Balances and ledger history, read from the Redis cache with MongoDB behind it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import Histogram
from pymongo import DESCENDING
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import require
from api.context import REDIS_TIMEOUT, ApiContext
from api.request_values import int_query, requested_locale
from connectors.balance_cache import CachedBalance
from connectors.points_records import balance_id
from connectors.store import BALANCES, LEDGER
from loyalnest.tokens import SCOPE_VIEW, Principal
from loyalty import ids
from loyalty.fields import parse_id
from loyalty.i18n import describe
from loyalty.times import as_utc, iso_z

log = logging.getLogger("loyalnest.api.balances")

LATENCY = Histogram(
    "points_balance_latency_seconds",
    "Balance lookups",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1),
)
MAX_PAGE = 200


@dataclass(frozen=True)
class BalanceView:
    """A customer's balances as the cache or the balance document hold them."""

    merchant_id: str
    customer: int
    stored: CachedBalance

    def as_json(self, translations: dict[tuple[str, str], str], locale: str) -> dict[str, Any]:
        b = self.stored
        return {
            "merchant_id": self.merchant_id,
            "customer_id": self.customer,
            "balance": b.balance,
            "pending": b.pending,
            "lifetime_earned": b.lifetime_earned,
            "next_expiry": (
                {"points": b.next_expiry[0], "at": iso_z(b.next_expiry[1])}
                if b.next_expiry
                else None
            ),
            "locale": locale,
            "updated_at": iso_z(b.updated_at),
            "description": describe(translations, "points.balance", locale, balance=b.balance),
        }


def from_document(document: dict[str, Any]) -> CachedBalance:
    """A balance document; those written before pending points and expiry existed lack their
    fields, and read as nothing pending, nothing earned on record, nothing expiring."""
    expiry = document.get("next_expiry")
    return CachedBalance(
        balance=document["balance"],
        seq=document["seq"],
        updated_at=as_utc(document["updated_at"]),
        pending=document.get("pending", 0),
        lifetime_earned=document.get("lifetime_earned", 0),
        next_expiry=(expiry["points"], as_utc(expiry["at"])) if expiry else None,
    )


async def read_balance(ctx: ApiContext, merchant_id: str, customer: int) -> BalanceView | None:
    """Cache first; on a miss (or Redis down) MongoDB, then fill the cache in the background
    (the answer does not wait for a Redis that may be stalled). A cache entry written by an
    earlier version (without pending points and expiry) is a miss."""
    started = time.perf_counter()
    redis_answered = True
    try:
        cached = await ctx.balance_cache.get(ctx.redis, merchant_id, customer)
    except redis.RedisError as exc:
        log.warning("balance cache unavailable, reading MongoDB: %s", exc)
        cached, redis_answered = None, False
    if cached is not None:
        LATENCY.labels("cache").observe(time.perf_counter() - started)
        return BalanceView(merchant_id, customer, cached)
    read_at = time.monotonic()
    doc = await ctx.db[BALANCES].find_one({"_id": balance_id(merchant_id, customer)})
    LATENCY.labels("mongo").observe(time.perf_counter() - started)
    if doc is None:
        return None
    stored = from_document(doc)
    if redis_answered:  # fill it (guarded, so never over a newer value)
        ctx.background(_fill(ctx, merchant_id, customer, stored, read_at))
    return BalanceView(merchant_id, customer, stored)


def fill_ttl_ms(ttl_seconds: int, read_at: float, now: float) -> int:
    """How long a value read from MongoDB at `read_at` may stay cached: until `read_at` plus
    the TTL, less the longest the fill itself may take to land (one Redis timeout; a fill that
    takes longer is dropped with its connection). So a filled entry, too, is never more than
    BALANCE_CACHE_SECONDS older than what it shows; <= 0: too late, do not fill."""
    return int((ttl_seconds - (now - read_at) - REDIS_TIMEOUT) * 1000)


async def _fill(
    ctx: ApiContext, merchant_id: str, customer: int, value: CachedBalance, read_at: float
) -> None:
    ttl_ms = fill_ttl_ms(ctx.settings.balance_cache_seconds, read_at, time.monotonic())
    if ttl_ms <= 0:
        return
    try:
        await ctx.balance_cache.fill(ctx.redis, merchant_id, customer, value, ttl_ms)
    except redis.RedisError as exc:
        log.warning("balance cache fill failed: %s", exc)


def customer_param(request: Request) -> int:
    customer = parse_id(request.path_params["customer_id"])
    if customer is None:
        raise HTTPException(400, "customer_id must be a Shopify customer id (digits)")
    return customer


async def locale_param(request: Request, principal: Principal) -> str:
    """`?locale=` if we can serve it (else a 400), or the merchant's default locale."""
    ctx: ApiContext = request.app.state.ctx
    asked = requested_locale(request.query_params.get("locale"), ctx.locales)
    return asked or await ctx.merchant_locale(principal.shop)


async def get_balance(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_VIEW)
    ctx: ApiContext = request.app.state.ctx
    customer = customer_param(request)
    locale = await locale_param(request, principal)
    view = await read_balance(ctx, principal.merchant_id, customer)
    if view is None:
        raise HTTPException(404, "customer not found")
    return JSONResponse(view.as_json(ctx.translations, locale))


async def get_transactions(request: Request) -> JSONResponse:
    """The ledger, newest first. `before` is the seq to continue from (next_before)."""
    principal = require(request, SCOPE_VIEW)
    ctx: ApiContext = request.app.state.ctx
    customer = customer_param(request)
    limit = int_query(request.query_params, "limit", 50, 1, MAX_PAGE)
    before = int_query(request.query_params, "before", 2**62, 1, 2**62)
    if (
        await ctx.db[BALANCES].find_one(
            {"_id": balance_id(principal.merchant_id, customer)}, {"_id": 1}
        )
        is None
    ):
        raise HTTPException(404, "customer not found")
    cursor = ctx.db[LEDGER].find(
        {  # served by the ledger's idx_customer_id_merchant_id_seq
            "customer_id": ids.customer_key(principal.merchant_id, customer),
            "merchant_id": principal.merchant_id,
            "seq": {"$lt": before},
        },
        sort=[("seq", DESCENDING)],
        limit=limit,
    )
    items = [_transaction(d) async for d in cursor]
    next_before = items[-1]["seq"] if len(items) == limit else None
    return JSONResponse({"items": items, "next_before": next_before})


def _transaction(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        k: doc.get(k)
        for k in (
            "event_id",
            "type",
            "points",
            "balance_after",
            "seq",
            "description",
            "locale",
            "order_id",
            "refund_id",
            "redemption_id",
            "adjustment_id",
            "source",
            "source_id",
            "correlation_id",
        )
    } | {"created_at": iso_z(doc["created_at"]), "memo": doc.get("reason")}
