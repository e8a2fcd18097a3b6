"""Advocates' referral codes: `POST /v1/referrals/codes` gives an advocate their code (201 the
first time, 200 with the same code after), `GET /v1/referrals/codes/{code}` reads one back with
its referrals counted by status.

The codes live in PostgreSQL (connectors/referral_links.py); a code of another merchant is 404.
Each request for a code also puts it on `referral.commands`, the referrals flow's log.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import require
from api.context import ApiContext
from api.producer import ProduceError
from connectors.referral_links import ReferralLink, advocate_link
from connectors.times import iso_z
from loyalnest.tokens import SCOPE_REFERRALS_MANAGE, SCOPE_REFERRALS_VIEW
from loyalnest.topics import REFERRAL_COMMANDS
from loyalty import fields, json_input
from loyalty.errors import InvalidEventError
from loyalty.pii import merchant_key
from loyalty.referral_codes import ALPHABET, LENGTH, parse_code
from loyalty.referral_commands import encode_code_created, referral_key
from loyalty.referrals import CodeCreated, Status

RETRY_LATER = {"Retry-After": "5"}


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
    code was stored is made good by asking again (the flow keeps the first it hears)."""
    identity = await ctx.referral_links.advocate_identity(merchant_id, link.advocate)
    record = CodeCreated(merchant_id, link.code, identity, link.created_at)
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
    counts = await ctx.referral_links.counts(principal.merchant_id, code)
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
