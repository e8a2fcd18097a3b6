"""Redemptions: accepted here, decided by the points flow (the customer's single writer).

`POST /v1/redemptions` records a pending redemption under an id derived from the merchant and
the Idempotency-Key, then sends the command through `points.commands`. Repeating the request
with the same key returns the same redemption (and re-sends the command while it is pending,
in case the first send was lost; the flow applies a redemption id once).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import require
from api.balances import locale_param
from api.command_requests import find_owned, record_once, send_command
from api.context import ApiContext
from api.request_values import correlation_id, idempotency_key
from connectors.kafka import CORRELATION_HEADER
from connectors.points_records import redemption_facts
from connectors.store import REDEMPTIONS
from loyalnest.tokens import SCOPE_REDEEM, SCOPE_VIEW
from loyalty import ids, json_input
from loyalty.commands import customer_key, encode_redemption
from loyalty.customers import Redemption, RedemptionStatus
from loyalty.fields import parse_id
from loyalty.limits import MAX_ID, MAX_POINTS, MAX_REWARD_ID
from loyalty.times import iso_z


def _request(body: Any) -> tuple[int, int, str]:
    if not isinstance(body, dict):
        raise HTTPException(400, "body must be a JSON object")
    customer, points, reward = body.get("customer_id"), body.get("points"), body.get("reward_id")
    if isinstance(customer, str):
        customer = parse_id(customer)
    if isinstance(customer, bool) or not isinstance(customer, int) or not 0 < customer <= MAX_ID:
        raise HTTPException(400, "customer_id must be a Shopify customer id")
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= MAX_POINTS:
        raise HTTPException(400, "points must be a positive integer")
    if not isinstance(reward, str) or not 0 < len(reward) <= MAX_REWARD_ID:
        raise HTTPException(400, f"reward_id must be a string of 1 to {MAX_REWARD_ID} characters")
    return customer, points, reward


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "redemption_id": doc["_id"],
        "status": doc["status"],
        "reason": doc.get("reason"),
        "customer_id": doc["shopify_customer_id"],
        "points": doc["points"],
        "reward_id": doc["reward_id"],
        "created_at": iso_z(doc["created_at"]),
        "decided_at": iso_z(doc["decided_at"]) if doc.get("decided_at") else None,
    }


async def create_redemption(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_REDEEM)
    ctx: ApiContext = request.app.state.ctx
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    correlation = correlation_id(request.headers.get(CORRELATION_HEADER))
    try:
        body = json_input.loads(await request.body())  # RequestLimits answers 413 past 64 KiB
    except json_input.NotJsonError as exc:
        raise HTTPException(400, f"body is {exc}") from exc  # "body is not JSON: <why>"
    customer, points, reward = _request(body)
    # The locale becomes a ledger field and a metric label: only one we serve gets in.
    locale = await locale_param(request, principal)
    redemption = Redemption(
        redemption_id=str(ids.redemption_id(principal.merchant_id, key)),
        merchant_id=principal.merchant_id,
        customer=customer,
        points=points,
        reward_id=reward,
        idempotency_key=key,
        locale=locale,
        at=datetime.now(UTC),
        correlation_id=correlation,
    )
    doc = await record_once(ctx, REDEMPTIONS, _pending_document(redemption), "redemption")
    if (doc["shopify_customer_id"], doc["points"], doc["reward_id"]) != (customer, points, reward):
        raise HTTPException(422, "Idempotency-Key already used for a different redemption")
    if doc["status"] == RedemptionStatus.PENDING.value:
        await send_command(
            ctx,
            customer_key(redemption.merchant_id, redemption.customer),
            encode_redemption(redemption),
        )
    # 202 while the flow has not decided; the decided redemption itself once it has.
    pending = doc["status"] == RedemptionStatus.PENDING.value
    return JSONResponse(_view(doc), status_code=202 if pending else 200)


def _pending_document(r: Redemption) -> dict[str, Any]:
    return {
        "_id": r.redemption_id,
        "status": RedemptionStatus.PENDING.value,
        "reason": None,
        **redemption_facts(r),
    }


async def get_redemption(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_VIEW)
    ctx: ApiContext = request.app.state.ctx
    doc = await find_owned(
        ctx, REDEMPTIONS, request.path_params["redemption_id"], principal.merchant_id, "redemption"
    )
    return JSONResponse(_view(doc))
