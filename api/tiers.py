"""VIP tiers over REST.

- `GET /v1/tiers`: the configuration in force now, and one saved but not yet in force.
- `PUT /v1/tiers` (scope merchant:tiers:manage): validate and add a version, in force 10 s
  later (connectors/tier_configs.py); 400 with the reason when invalid.
- `GET /v1/customers/{customer_id}/tier`: the tier the customer holds (as the tiers flow
  decided it) and their status now under the configuration in force: progress in the current
  period, the next tier and what it takes, what keeps the tier, when the period ends.
- `GET /v1/tiers/counts`: customers per tier, as the flow counts them.
- `POST /v1/tiers/preview` (scope merchant:tiers:manage): what a proposed configuration would
  do to today's customers (loyalty/tier_preview.py), changing nothing. `?as_of=` an ISO date
  or time (default: now).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import require
from api.balances import customer_param
from api.context import ApiContext
from connectors.tier_configs import TierVersion, UnknownMerchantError, in_force
from connectors.tier_reads import StoredCounts, stored_customers
from loyalnest.tokens import SCOPE_ANALYTICS, SCOPE_TIERS_MANAGE, SCOPE_VIEW
from loyalty import json_input
from loyalty.tier_config import InvalidTiersError, Metric, Tier, TierConfig, parse_tiers
from loyalty.tier_counts import NO_TIER
from loyalty.tier_customers import metric_of_config, position, tier_id
from loyalty.tier_preview import AS_OF_RULE, StoredCustomer, parse_as_of, preview
from loyalty.tiers import CustomerMetric, status
from loyalty.times import iso_z


def now() -> datetime:
    return datetime.now(UTC)


async def get_tiers(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_VIEW)
    ctx: ApiContext = request.app.state.ctx
    versions = await ctx.tier_versions.get(principal.merchant_id)
    at = now()
    current = in_force(versions, at)
    pending = versions[-1] if versions and versions[-1].effective_at > at else None
    return JSONResponse(
        {
            "merchant_id": principal.merchant_id,
            "current": None if current is None else version_view(principal.merchant_id, current),
            "pending": None if pending is None else version_view(principal.merchant_id, pending),
        }
    )


async def put_tiers(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_TIERS_MANAGE)
    ctx: ApiContext = request.app.state.ctx
    config = config_body(await request.body())
    try:
        saved = await ctx.tiers.save(principal.merchant_id, config)
    except UnknownMerchantError as exc:
        raise HTTPException(404, "merchant not found") from exc
    ctx.tier_versions.forget(principal.merchant_id)
    return JSONResponse(version_view(principal.merchant_id, saved), status_code=201)


def config_body(raw: bytes) -> TierConfig:
    try:
        return parse_tiers(json_input.loads(raw))
    except json_input.NotJsonError as exc:
        raise HTTPException(400, f"body is {exc}") from exc
    except InvalidTiersError as exc:
        raise HTTPException(400, str(exc)) from exc


def version_view(merchant_id: str, version: TierVersion) -> dict[str, Any]:
    document = version.config.document()
    for tier in document["tiers"]:
        tier["tier_id"] = tier_id(merchant_id, tier["name"])
    return {
        "version": version.version,
        "effective_at": iso_z(version.effective_at),
        **document,
    }


async def get_customer_tier(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_VIEW)
    customer = customer_param(request)
    ctx: ApiContext = request.app.state.ctx
    return JSONResponse(await customer_tier(ctx, principal.merchant_id, customer, now()))


async def customer_tier(
    ctx: ApiContext, merchant_id: str, customer: int, at: datetime
) -> dict[str, Any]:
    """The customer's tier and status as of `at` (no orders yet: no tier, nothing counted)."""
    versions, stored = await asyncio.gather(
        ctx.tier_versions.get(merchant_id), ctx.tiers.customer(merchant_id, customer)
    )
    version = in_force(versions, at)
    held = None if stored is None else stored.customer
    return tier_status(
        merchant_id,
        customer,
        held or StoredCustomer(None, CustomerMetric(), CustomerMetric()),
        None if version is None else version.config,
        at,
    )


def tier_status(
    merchant_id: str,
    customer: int,
    stored: StoredCustomer,
    config: TierConfig | None,
    at: datetime,
) -> dict[str, Any]:
    view: dict[str, Any] = {"customer_id": customer, "as_of": iso_z(at)}
    if config is None:
        return view | {"tier": None, "tier_id": None, "multiplier": "1", "metric": None}
    found = status(metric_of_config(stored.points, stored.spent, config), config, at)
    index = position(config, stored.tier)
    held = None if index is None else config.tiers[index]
    number = _points if config.metric is Metric.POINTS_EARNED else _money
    return view | {
        "tier": stored.tier,
        "tier_id": None if stored.tier is None else tier_id(merchant_id, stored.tier),
        "multiplier": str(held.multiplier) if held is not None else "1",
        "metric": config.metric.value,
        "period": config.period.value,
        "progress": number(found.progress),
        "next_tier": _name(found.next_tier),
        "delta_to_next": None if found.delta_to_next is None else number(found.delta_to_next),
        "delta_to_retain": number(found.delta_to_retain),
        "period_end": None if found.period_end is None else iso_z(found.period_end),
    }


def _name(tier: Tier | None) -> str | None:
    return None if tier is None else tier.name


def _points(value: Decimal) -> int:
    return int(value)


def _money(value: Decimal) -> str:
    return format(value, "f")


async def get_tier_counts(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_ANALYTICS)
    ctx: ApiContext = request.app.state.ctx
    versions, counts = await asyncio.gather(
        ctx.tier_versions.get(principal.merchant_id), ctx.tiers.counts(principal.merchant_id)
    )
    version = in_force(versions, now())
    return JSONResponse(counts_view(principal.merchant_id, version, counts))


def counts_view(
    merchant_id: str, version: TierVersion | None, counts: StoredCounts | None
) -> dict[str, Any]:
    names = [] if version is None else [t.name for t in version.config.tiers]
    stored = {} if counts is None else dict(counts.counts)
    tiers = dict.fromkeys(names, 0)
    for name, customers in stored.items():
        if name != NO_TIER:  # a tier renamed only in case is the same tier
            shown = next((n for n in names if n.casefold() == name.casefold()), name)
            tiers[shown] = tiers.get(shown, 0) + customers
    return {
        "merchant_id": merchant_id,
        "as_of": None if counts is None else iso_z(counts.updated_at),
        "customers": sum(stored.values()),
        "tiers": tiers,
        "no_tier": stored.get(NO_TIER, 0),
    }


async def preview_tiers(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_TIERS_MANAGE)
    ctx: ApiContext = request.app.state.ctx
    config = config_body(await request.body())
    as_of = as_of_param(request.query_params.get("as_of"))
    rows = await ctx.tiers.customers(principal.merchant_id)
    # Seconds of work for a large merchant: off the event loop, which keeps serving.
    result = await asyncio.to_thread(preview, stored_customers(rows), config, as_of)
    return JSONResponse({"merchant_id": principal.merchant_id, **result.document(config)})


def as_of_param(text: str | None) -> datetime:
    if text is None:
        return now()
    try:
        return parse_as_of(text)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(400, AS_OF_RULE) from exc
