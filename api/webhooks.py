"""`POST /webhooks/shopify`: verify, drop duplicate deliveries, rate-limit, produce, then 200.

Shopify retries anything that is not a 2xx within 5 s, so the answer must be honest: 200 only
once the broker has acknowledged the record; 503 when it has not (Shopify will retry); 4xx
for requests that no retry can fix.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import logging
import time
import uuid

import redis
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import ApiContext
from api.producer import ProduceError
from connectors.shopify import kafka_headers, partition_key
from loyalnest.topics import SHOPIFY_ORDERS
from loyalty.orders import ORDER_TOPICS

log = logging.getLogger("loyalnest.api.webhooks")

MAX_BODY = 1024 * 1024
DEDUP_SECONDS = 24 * 3600
IN_FLIGHT_SECONDS = 30  # longer than any produce can wait (message.timeout.ms is 4 s)
REQUIRED = (
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Shopify-Webhook-Id",
)

WEBHOOKS = Counter("loyalnest_webhooks_total", "Webhook requests by outcome", ["outcome"])
RATE_LIMITED = Counter("points_rate_limit_exceeded_total", "Webhooks refused by the rate limit")


def signature_ok(body: bytes, signature: str, secrets: list[str]) -> bool:
    """Constant-time HMAC-SHA256 check over the raw bytes, against each accepted secret."""
    try:
        given = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    ok = False
    for secret in secrets:  # no early exit: the time taken does not tell which secret matched
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        ok |= hmac.compare_digest(digest, given)
    return ok


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    WEBHOOKS.labels(str(status)).inc()
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request) -> bytes | None:
    """The raw body, or None once it passes MAX_BODY (without reading the rest)."""
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and int(declared) > MAX_BODY
    ):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _over_limit(ctx: ApiContext, merchant_id: str) -> bool:
    """A fixed one-second window per shop in Redis. If Redis is down, fail open: the limit
    protects capacity, and the flow's dedup keeps the ledger exact either way."""
    key = f"{ctx.settings.redis_key_prefix}rate_limit:{merchant_id}:{int(time.time())}"
    try:
        pipe = ctx.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 2)
        count, _ = await pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit unavailable: %s", exc)
        return False
    return int(count) > ctx.settings.webhook_rate_limit


class Delivery(enum.Enum):
    NEW = "new"
    DONE = "done"  # accepted before: answer 200 again
    IN_FLIGHT = "in_flight"  # another request with this id is waiting for Kafka right now


def _delivery_key(ctx: ApiContext, merchant_id: str, webhook_id: str) -> str:
    return f"{ctx.settings.redis_key_prefix}processed:{merchant_id}:{webhook_id}"


async def _claim_delivery(ctx: ApiContext, merchant_id: str, webhook_id: str) -> Delivery:
    """Claim a delivery id as in flight. Only an acknowledged delivery becomes DONE: a copy
    arriving while the first still waits for Kafka gets 503, not a 200 that would end
    Shopify's retries for a delivery that may yet fail."""
    key = _delivery_key(ctx, merchant_id, webhook_id)
    try:
        if await ctx.redis.set(key, b"pending", nx=True, ex=IN_FLIGHT_SECONDS):
            return Delivery.NEW
        state = await ctx.redis.get(key)
    except redis.RedisError as exc:
        log.warning("delivery dedup unavailable: %s", exc)
        return Delivery.NEW  # the flow dedups by business key anyway
    return Delivery.DONE if state == b"done" else Delivery.IN_FLIGHT


async def _settle_delivery(
    ctx: ApiContext, merchant_id: str, webhook_id: str, accepted: bool
) -> None:
    key = _delivery_key(ctx, merchant_id, webhook_id)
    try:
        if accepted:
            await ctx.redis.set(key, b"done", ex=DEDUP_SECONDS)
        else:
            await ctx.redis.delete(key)
    except redis.RedisError:
        log.warning("could not record delivery %s (accepted=%s)", webhook_id, accepted)


async def shopify_webhook(request: Request) -> Response:
    ctx: ApiContext = request.app.state.ctx
    missing = [h for h in REQUIRED if not request.headers.get(h)]
    if missing:
        return _error(400, f"missing headers: {', '.join(missing)}")
    body = await _read_body(request)
    if body is None:
        return _error(413, f"body larger than {MAX_BODY} bytes")
    shop, topic = request.headers["X-Shopify-Shop-Domain"], request.headers["X-Shopify-Topic"]
    merchant = await ctx.merchants.get(shop)
    if merchant is None or not signature_ok(
        body, request.headers["X-Shopify-Hmac-Sha256"], merchant.secrets
    ):
        return _error(401, "invalid signature")
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _error(400, "body is not JSON")
    if not isinstance(parsed, dict):
        return _error(400, "body is not a JSON object")
    if await _over_limit(ctx, merchant.merchant_id):
        RATE_LIMITED.inc()
        return _error(429, "rate limit exceeded", {"Retry-After": "1"})
    if topic not in ORDER_TOPICS:
        WEBHOOKS.labels("ignored").inc()
        return JSONResponse({"status": "ignored", "topic": topic})
    webhook_id = request.headers["X-Shopify-Webhook-Id"]
    delivery = await _claim_delivery(ctx, merchant.merchant_id, webhook_id)
    if delivery is Delivery.DONE:
        WEBHOOKS.labels("duplicate").inc()
        return JSONResponse({"status": "duplicate"})
    if delivery is Delivery.IN_FLIGHT:
        return _error(
            503, "the same delivery is being processed, retry later", {"Retry-After": "5"}
        )
    correlation_id = request.headers.get("X-Correlation-Id") or str(uuid.uuid4())
    headers = kafka_headers(
        dict(request.headers),
        correlation_id,
        points_per_unit=str(merchant.points_per_unit),
        locale=merchant.locale,
    )
    try:
        await ctx.producer.send(
            ctx.settings.topic(SHOPIFY_ORDERS),
            key=partition_key(shop, topic, parsed),
            value=body,
            headers=headers,
        )
    except ProduceError as exc:
        await _settle_delivery(ctx, merchant.merchant_id, webhook_id, accepted=False)
        log.error("webhook %s not accepted by Kafka: %s", webhook_id, exc)
        return _error(503, "event store unavailable, retry later", {"Retry-After": "5"})
    await _settle_delivery(ctx, merchant.merchant_id, webhook_id, accepted=True)
    WEBHOOKS.labels("accepted").inc()
    return JSONResponse({"status": "accepted", "correlation_id": correlation_id})
