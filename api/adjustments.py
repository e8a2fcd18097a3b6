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

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import require
from api.balances import customer_param, locale_param
from api.command_requests import find_owned, record_once, send_command
from api.context import ApiContext
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
from loyalty import json_input


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
    document = await record_once(ctx, ADJUSTMENTS, pending_document(adjustment), "adjustment")
    if not asks_the_same(document, asked):
        raise HTTPException(422, "Idempotency-Key already used for a different adjustment")
    pending = is_pending(document)
    if pending:
        await send_command(ctx, *command_record(adjustment))
    # 202 while the flow has not decided; the decided adjustment itself once it has.
    return JSONResponse(view(document), status_code=202 if pending else 200)


async def get_adjustment(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_VIEW)
    ctx: ApiContext = request.app.state.ctx
    document = await find_owned(
        ctx, ADJUSTMENTS, request.path_params["adjustment_id"], principal.merchant_id, "adjustment"
    )
    return JSONResponse(view(document))
