"""Referrals over REST.

- `POST /v1/referrals/codes` gives an advocate their code (201 the first time, 200 with the
  same code after); `GET /v1/referrals/codes/{code}` reads one back with its referrals counted
  by status. The codes live in PostgreSQL (connectors/referral_links.py). Each request for a
  code also puts it on `referral.commands`, the referrals flow's log.
- `GET /v1/referrals/{referral_id}` is one referral as the flow decided it: from the Redis
  cache the flow refreshes, else from PostgreSQL (then cached).
- `GET /v1/customers/{customer_id}/referrals` lists an advocate's referrals, newest first.

Another merchant's code, referral or advocate is a 404.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import redis
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth import require
from api.balances import customer_param
from api.context import ApiContext
from api.producer import ProduceError
from api.request_values import BadValueError, int_query
from connectors.referral_cache import encode_document
from connectors.referral_links import ReferralLink, advocate_link
from connectors.referral_records import NEWEST, Page, ReferralRow
from loyalnest.tokens import SCOPE_REFERRALS_MANAGE, SCOPE_REFERRALS_VIEW
from loyalnest.topics import REFERRAL_COMMANDS
from loyalty import fields, json_input
from loyalty.errors import InvalidEventError
from loyalty.pii import merchant_key
from loyalty.referral_codes import ALPHABET, LENGTH, parse_code
from loyalty.referral_commands import encode_code_created, referral_key
from loyalty.referrals import CodeCreated, Status
from loyalty.times import iso_z

log = logging.getLogger("loyalnest.api.referrals")

RETRY_LATER = {"Retry-After": "5"}
MAX_PAGE = 200


async def create_referral_code(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_REFERRALS_MANAGE)
    ctx: ApiContext = request.app.state.ctx
    advocate = advocate_param(await request.body())
    key = merchant_key(ctx.secrets.secrets_key, principal.merchant_id)
    link, created = await advocate_link(ctx.referral_links, key, principal.merchant_id, advocate)
    await announce(ctx, principal.merchant_id, link)
    return JSONResponse(view(link, principal.shop), status_code=201 if created else 200)


async def announce(ctx: ApiContext, merchant_id: str, link: ReferralLink) -> None:
    """Tell the referrals flow the code's advocate, on every request: a send lost after the
    code was stored is made good by asking again. Each announcement carries the advocate's
    hashes as Core knows them now, which the flow adds to what it knew (loyalty/referrals.py)."""
    record = CodeCreated(merchant_id, link.code, link.identity, link.created_at)
    try:
        await ctx.producer.send(
            ctx.settings.topic(REFERRAL_COMMANDS),
            key=referral_key(merchant_id, link.code),
            value=encode_code_created(record),
            headers=[],
        )
    except ProduceError as exc:
        raise HTTPException(503, "event store unavailable, retry later", RETRY_LATER) from exc


async def get_referral_code(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_REFERRALS_VIEW)
    ctx: ApiContext = request.app.state.ctx
    code = parse_code(request.path_params["code"])
    if code is None:
        raise HTTPException(400, f"a referral code is {LENGTH} characters of {ALPHABET}")
    link = await ctx.referral_links.by_code(principal.merchant_id, code)
    if link is None:
        raise HTTPException(404, "referral code not found")
    counts = link.referrals or {}
    referrals = {status.value: counts.get(status.value, 0) for status in Status}
    return JSONResponse(view(link, principal.shop) | {"referrals": referrals})


def advocate_param(raw: bytes) -> int:
    """The advocate's Shopify customer id from the body `{"customer_id": <id>}`."""
    try:
        body = json_input.loads(raw)  # RequestLimits answers 413 past 64 KiB
    except json_input.NotJsonError as exc:
        raise HTTPException(400, f"body is {exc}") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, 'body must be a JSON object: {"customer_id": <Shopify id>}')
    try:
        return fields.identifier(body, "customer_id")
    except InvalidEventError as exc:
        raise HTTPException(400, str(exc)) from exc


def view(link: ReferralLink, shop: str) -> dict[str, Any]:
    return {
        "code": link.code,
        "customer_id": link.advocate,
        "url": link.url(shop),
        "created_at": iso_z(link.created_at),
    }


async def get_referral(request: Request) -> Response:
    principal = require(request, SCOPE_REFERRALS_VIEW)
    referral_id = request.path_params["referral_id"]
    if not fields.UUID_TEXT.fullmatch(referral_id):
        raise HTTPException(400, "referral_id must be a UUID (lower-case, with hyphens)")
    found = await read_referral(request.app.state.ctx, principal.merchant_id, referral_id)
    if found is None:
        raise HTTPException(404, "referral not found")
    return Response(found, media_type="application/json")


async def read_referral(ctx: ApiContext, merchant_id: str, referral_id: str) -> bytes | None:
    """The referral's document (JSON): the cache's, else PostgreSQL's, then cached in the
    background (guarded: a fill never replaces a newer entry the flow wrote meanwhile)."""
    redis_answered = True
    try:
        cached = await ctx.referral_cache.get(ctx.redis, merchant_id, referral_id)
    except redis.RedisError as exc:
        log.warning("referral cache unavailable, reading PostgreSQL: %s", exc)
        cached, redis_answered = None, False
    if cached is not None:
        return cached
    row = await ctx.referrals.by_id(merchant_id, referral_id)
    if row is None:
        return None
    if redis_answered:
        ctx.background(_fill(ctx, row))
    return encode_document(row).encode()


async def _fill(ctx: ApiContext, row: ReferralRow) -> None:
    try:
        await ctx.referral_cache.fill(ctx.redis, row)
    except redis.RedisError as exc:
        log.warning("referral cache fill failed: %s", exc)


async def get_advocate_referrals(request: Request) -> JSONResponse:
    """The advocate's referrals, newest first; `before` is the `next_before` of the page
    before. A customer without a referral code (here) is 404."""
    principal = require(request, SCOPE_REFERRALS_VIEW)
    ctx: ApiContext = request.app.state.ctx
    advocate = customer_param(request)
    limit = int_query(request.query_params, "limit", 50, 1, MAX_PAGE)
    before = page_param(request.query_params.get("before"))
    if await ctx.referral_links.by_advocate(principal.merchant_id, advocate) is None:
        raise HTTPException(404, "customer has no referral code")
    rows = await ctx.referrals.by_advocate(principal.merchant_id, advocate, before, limit)
    next_before = page_token(rows[-1]) if len(rows) == limit else None
    return JSONResponse({"items": [row.document() for row in rows], "next_before": next_before})


def page_token(row: ReferralRow) -> str:
    return f"{row.created_at.isoformat()}_{row.referral_id}"


def page_param(raw: str | None) -> Page:
    if raw is None:
        return NEWEST
    at, _, referral_id = raw.partition("_")
    try:
        created_at = datetime.fromisoformat(at)
    except ValueError:
        created_at = None
    if (
        created_at is None
        or created_at.tzinfo is None
        or not fields.UUID_TEXT.fullmatch(referral_id)
    ):
        raise BadValueError("before must be the next_before of the page before")
    return created_at, referral_id
