"""`POST /webhooks/shopify`: verify, drop duplicate deliveries, rate-limit, produce, then 200.

Shopify retries anything that is not a 2xx within 5 s, so the answer must be honest: 200 only
once the broker has acknowledged the record; 503 when it has not (Shopify will retry); 4xx
for requests that no retry can fix. The checks run cheapest and least revealing first:

    headers (400) -> shop domain's form (400, before any lookup) -> body size (413, RequestLimits)
    -> merchant (503 if PostgreSQL is down) -> signature (401, same cost for every shop)
    -> strict JSON (400) -> rate limit and delivery dedup, one Redis round trip (429)
    -> other topics (200 ignored) -> the customer's personal data to PostgreSQL, the body's
    replaced by keyed hashes -> order facts: valid -> shopify.orders; never valid -> points.dlq

A signed order webhook that parses as JSON but can never be a valid order (an id of 0, money
in Arabic-Indic digits, `"test": "true"`, ...) is dead-lettered at once with its reason and
answered 200: a retry would send the same bytes, and fail the same way.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import ApiContext
from api.producer import Headers, ProduceError
from api.request_values import BadValueError, correlation_id
from api.signatures import SignatureCheck
from connectors.dead_letters import DEAD_LETTERS, edge_dead_letter, reason_class
from connectors.kafka import CORRELATION_HEADER
from connectors.merchants import Merchant
from connectors.shopify import (
    HMAC_HEADER,
    SHOP_HEADER,
    TOPIC_HEADER,
    WEBHOOK_ID_HEADER,
    encode_body,
    kafka_headers,
    partition_key,
)
from loyalnest.logs import correlated
from loyalnest.topics import POINTS_DLQ, SHOPIFY_ORDERS
from loyalty import fields, json_input
from loyalty.errors import InvalidEventError
from loyalty.orders import ORDER_TOPICS, read_facts
from loyalty.pii import Hasher, merchant_key, personal_data, redact_order

log = logging.getLogger("loyalnest.api.webhooks")
INGEST_STEP = "ingest"  # the step named in the dead letters the API writes

DEDUP_SECONDS = 24 * 3600
IN_FLIGHT_SECONDS = 30  # longer than any produce can wait (message.timeout.ms is 4 s)
REQUIRED = (HMAC_HEADER, TOPIC_HEADER, SHOP_HEADER, WEBHOOK_ID_HEADER)
RETRY_LATER = {"Retry-After": "5"}

WEBHOOKS = Counter("loyalnest_webhooks_total", "Webhook requests by outcome", ["outcome"])
RATE_LIMITED = Counter("points_rate_limit_exceeded_total", "Webhooks refused by the rate limit")
SIGNATURES = SignatureCheck()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    WEBHOOKS.labels(str(status)).inc()
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Delivery(enum.Enum):
    NEW = "new"
    DONE = "done"  # accepted before: answer 200 again
    IN_FLIGHT = "in_flight"  # another request with this id is waiting for Kafka right now
    LIMITED = "limited"  # over the shop's rate limit: nothing claimed


# One round trip for the two checks every order webhook needs (Redis round trips were about a
# third of the API's CPU per webhook). KEYS[1]: the shop's one-second rate window; KEYS[2],
# for order topics only: the delivery id. ARGV: the limit, the in-flight claim's seconds.
# A delivery is claimed as in flight; only an acknowledged one becomes done (_settle_delivery).
ADMIT = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 2)
if count > tonumber(ARGV[1]) then return 'limited' end
if #KEYS < 2 then return 'new' end
if redis.call('SET', KEYS[2], 'pending', 'NX', 'EX', ARGV[2]) then return 'new' end
if redis.call('GET', KEYS[2]) == 'done' then return 'done' end
return 'in_flight'
"""


def _delivery_key(ctx: ApiContext, merchant_id: str, webhook_id: str) -> str:
    return f"{ctx.settings.redis_key_prefix}processed:{merchant_id}:{webhook_id}"


async def _admit(ctx: ApiContext, merchant_id: str, webhook_id: str | None) -> Delivery:
    """The rate limit (a fixed one-second window per shop) and, for an order webhook, the claim
    of its delivery id. A copy arriving while the first still waits for Kafka is IN_FLIGHT
    (503), not a 200 that would end Shopify's retries for a delivery that may yet fail.
    If Redis is down, fail open: the limit protects capacity, and the flow's business-key
    dedup keeps the ledger exact either way."""
    window = f"{ctx.settings.redis_key_prefix}rate_limit:{merchant_id}:{int(time.time())}"
    keys = [window]
    if webhook_id is not None:
        keys.append(_delivery_key(ctx, merchant_id, webhook_id))
    try:
        answer = await ctx.redis.eval(
            ADMIT, len(keys), *keys, ctx.settings.webhook_rate_limit, IN_FLIGHT_SECONDS
        )
    except redis.RedisError as exc:
        log.warning("rate limit and delivery dedup unavailable: %s", exc)
        return Delivery.NEW
    return Delivery(answer.decode() if isinstance(answer, bytes) else answer)


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
    try:
        shop = fields.shop_domain(request.headers[SHOP_HEADER])
        correlation = correlation_id(request.headers.get(CORRELATION_HEADER))
    except (InvalidEventError, BadValueError) as exc:
        return _error(400, str(exc))
    with correlated(correlation):  # every line logged for this webhook carries its id
        return await _receive(request, ctx, shop, correlation)


async def _receive(request: Request, ctx: ApiContext, shop: str, correlation: str) -> Response:
    body = await request.body()  # RequestLimits answers 413 past 1 MiB
    merchant = await ctx.merchants.get(shop)  # PostgreSQL down: 503 (api.errors)
    signature = request.headers[HMAC_HEADER]
    if not SIGNATURES.valid(body, signature, merchant.secrets if merchant else []):
        return _error(401, "invalid signature")
    assert merchant is not None  # only a merchant's secret can sign
    try:
        parsed = json_input.loads(body)
    except json_input.NotJsonError as exc:
        return _error(400, f"body is {exc}")  # "body is not JSON: <why>"
    topic = request.headers[TOPIC_HEADER]
    webhook_id = request.headers[WEBHOOK_ID_HEADER]
    order = topic in ORDER_TOPICS
    delivery = await _admit(ctx, merchant.merchant_id, webhook_id if order else None)
    if delivery is Delivery.LIMITED:
        RATE_LIMITED.inc()
        return _error(429, "rate limit exceeded", {"Retry-After": "1"})
    if not order:
        WEBHOOKS.labels("ignored").inc()
        return JSONResponse({"status": "ignored", "topic": topic})
    if delivery is Delivery.DONE:
        WEBHOOKS.labels("duplicate").inc()
        return JSONResponse({"status": "duplicate"})
    if delivery is Delivery.IN_FLIGHT:
        return _error(503, "the same delivery is being processed, retry later", RETRY_LATER)
    if isinstance(parsed, dict):
        # PII stays at the edge: the raw values go to Core's customers table only, and the
        # order goes on with keyed hashes in their place (loyalty/pii.py).
        hasher = Hasher(merchant_key(ctx.secrets.secrets_key, merchant.merchant_id))
        personal = personal_data(parsed, hasher)
        if personal is not None:  # written behind, best effort (connectors/customer_pii.py)
            ctx.customer_pii.keep(merchant.merchant_id, personal)
        parsed = redact_order(parsed, hasher)
        body = encode_body(parsed)
    record = Record(
        key=partition_key(shop, topic, parsed),
        body=body,
        # The merchant's terms now travel with the order: a later change of settings never
        # rewrites what this order earns, or how its points are held and expire.
        headers=kafka_headers(
            dict(request.headers), correlation, merchant.policy, merchant.referral
        ),
    )
    try:
        read_facts(topic, parsed)
    except InvalidEventError as exc:
        return await _dead_letter(ctx, merchant, webhook_id, record, str(exc))
    return await _produce(ctx, merchant, webhook_id, record, correlation)


@dataclass(frozen=True)
class Record:
    """What goes to Kafka for one webhook: its key, the body (redacted), and the headers."""

    key: bytes
    body: bytes
    headers: Headers


async def _produce(
    ctx: ApiContext, merchant: Merchant, webhook_id: str, record: Record, correlation: str
) -> Response:
    try:
        await ctx.producer.send(
            ctx.settings.topic(SHOPIFY_ORDERS),
            key=record.key,
            value=record.body,
            headers=record.headers,
        )
    except ProduceError as exc:
        return await _not_acked(ctx, merchant, webhook_id, exc)
    await _settle_delivery(ctx, merchant.merchant_id, webhook_id, accepted=True)
    WEBHOOKS.labels("accepted").inc()
    return JSONResponse({"status": "accepted", "correlation_id": correlation})


async def _dead_letter(
    ctx: ApiContext, merchant: Merchant, webhook_id: str, record: Record, reason: str
) -> Response:
    """Keep the webhook (redacted) on points.dlq with the reason no retry can change."""
    key, value, headers = edge_dead_letter(
        record.key,
        record.body,
        record.headers,
        reason=reason,
        step=INGEST_STEP,
        origin_topic=ctx.settings.topic(SHOPIFY_ORDERS),
        received_at=datetime.now(UTC),
    )
    try:
        await ctx.producer.send(
            ctx.settings.topic(POINTS_DLQ), key=key, value=value, headers=headers
        )
    except ProduceError as exc:
        return await _not_acked(ctx, merchant, webhook_id, exc)
    await _settle_delivery(ctx, merchant.merchant_id, webhook_id, accepted=True)
    WEBHOOKS.labels("dead_lettered").inc()
    DEAD_LETTERS.labels("api", INGEST_STEP, reason_class(reason)).inc()
    log.info("webhook %s dead-lettered: %s", webhook_id, reason)
    return JSONResponse({"status": "dead_lettered", "reason": reason})


async def _not_acked(
    ctx: ApiContext, merchant: Merchant, webhook_id: str, exc: ProduceError
) -> Response:
    await _settle_delivery(ctx, merchant.merchant_id, webhook_id, accepted=False)
    log.error("webhook %s not accepted by Kafka: %s", webhook_id, exc)
    return _error(503, "event store unavailable, retry later", RETRY_LATER)
