"""Manual adjustments: accepted here, decided by the points flow (the customer's single writer).

`POST /v1/customers/{customer_id}/adjustments` with `{"points": int, "reason": str}` and an
Idempotency-Key records a pending adjustment and sends its command (connectors/adjustments.py
holds what the API and the CLI share). The same key with the same body returns the same
adjustment (202 while pending, and the command is sent again in case the first send was lost;
200 with its outcome once decided); the same key with a different body is 422.
`GET /v1/adjustments/{adjustment_id}` reads one back; another merchant's is 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import require
from api.balances import customer_param, locale_param
from api.context import ApiContext
from api.producer import ProduceError
from api.request_values import correlation_id, idempotency_key
from connectors.adjustments import (
    ADJUSTMENTS,
    AdjustmentRequest,
    BadAdjustmentError,
    asks_the_same,
    command_record,
    is_pending,
    new_adjustment,
    pending_document,
    view,
)
from loyalnest.tokens import SCOPE_ADJUST, SCOPE_VIEW
from loyalnest.topics import POINTS_COMMANDS
from loyalty import json_input
from loyalty.customers import Adjustment


async def create_adjustment(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_ADJUST)
    ctx: ApiContext = request.app.state.ctx
    customer = customer_param(request)
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    correlation = correlation_id(request.headers.get("X-Correlation-Id"))
    try:
        body = json_input.loads(await request.body())  # RequestLimits answers 413 past 64 KiB
    except json_input.NotJsonError as exc:
        raise HTTPException(400, f"body is {exc}") from exc  # "body is not JSON: <why>"
    try:
        asked = AdjustmentRequest.from_body(customer, body)
    except BadAdjustmentError as exc:
        raise HTTPException(400, str(exc)) from exc
    # The locale becomes a ledger field and a metric label: only one we serve gets in.
    locale = await locale_param(request, principal)
    adjustment = new_adjustment(
        principal.merchant_id,
        asked,
        idempotency_key=key,
        locale=locale,
        at=datetime.now(UTC),
        correlation_id=correlation,
    )
    document = await _record(ctx, adjustment)
    if not asks_the_same(document, asked):
        raise HTTPException(422, "Idempotency-Key already used for a different adjustment")
    pending = is_pending(document)
    if pending:
        await _send(ctx, adjustment)
    # 202 while the flow has not decided; the decided adjustment itself once it has.
    return JSONResponse(view(document), status_code=202 if pending else 200)


async def _record(ctx: ApiContext, adjustment: Adjustment) -> dict[str, Any]:
    """Insert the pending adjustment, or return the one this key already made."""
    document = pending_document(adjustment)
    try:
        await ctx.db[ADJUSTMENTS].insert_one(document)
        return document
    except DuplicateKeyError:
        existing = await ctx.db[ADJUSTMENTS].find_one({"_id": adjustment.adjustment_id})
        if existing is None:  # a duplicate that is gone again: nothing to answer with yet
            raise HTTPException(409, "adjustment conflict, retry") from None
        return existing


async def _send(ctx: ApiContext, adjustment: Adjustment) -> None:
    key, value = command_record(adjustment)
    try:
        await ctx.producer.send(
            ctx.settings.topic(POINTS_COMMANDS), key=key, value=value, headers=[]
        )
    except ProduceError as exc:
        # The pending document stays: a retry with the same key finds it and sends again.
        raise HTTPException(
            503,
            "event store unavailable; retry with the same Idempotency-Key",
            {"Retry-After": "5"},
        ) from exc


async def get_adjustment(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_VIEW)
    ctx: ApiContext = request.app.state.ctx
    # Scoped by the token's merchant: another merchant's adjustment is "not found".
    document = await ctx.db[ADJUSTMENTS].find_one(
        {"_id": request.path_params["adjustment_id"], "merchant_id": principal.merchant_id}
    )
    if document is None:
        raise HTTPException(404, "adjustment not found")
    return JSONResponse(view(document))
