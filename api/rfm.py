"""RFM reads: a merchant's segment counts and one customer's scores (flows/rfm.py writes both).

A customer's scores are computed here from their stored values and the merchant's current
picture, with the same rules as the flow (`loyalty.rfm`): they are exact as of the picture's
day at once, whether or not the rescoring round has announced them yet.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import require
from api.balances import customer_param
from api.context import ApiContext
from connectors.rfm_records import StoredPicture, customer_doc_id
from connectors.store import RFM_CUSTOMERS
from loyalnest.tokens import SCOPE_ANALYTICS
from loyalty.rfm import Segment, Values, day_date, day_number
from loyalty.times import as_utc


async def segment_counts(ctx: ApiContext, merchant_id: str) -> dict[str, Any]:
    """The merchant's counts: every segment named, zeros before the first order."""
    picture = await ctx.pictures.get(merchant_id)
    counts = {segment.value: 0 for segment in Segment}
    if picture is not None:
        counts |= {name: n for name, n in picture.counts.items() if name in counts}
    return {
        "merchant_id": merchant_id,
        "as_of": None if picture is None else day_date(picture.as_of).isoformat(),
        "total": 0 if picture is None else picture.total,
        "segments": counts,
    }


async def read_customer_rfm(
    ctx: ApiContext, merchant_id: str, customer: int
) -> dict[str, Any] | None:
    """One customer's values and scores, or None for a customer the merchant does not have."""
    doc, picture = await asyncio.gather(
        ctx.db[RFM_CUSTOMERS].find_one({"_id": customer_doc_id(merchant_id, customer)}),
        ctx.pictures.get(merchant_id),
    )
    if doc is None or picture is None:
        return None
    return customer_rfm(customer, doc, picture)


async def get_segments(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_ANALYTICS)
    return JSONResponse(await segment_counts(request.app.state.ctx, principal.merchant_id))


async def get_customer_rfm(request: Request) -> JSONResponse:
    principal = require(request, SCOPE_ANALYTICS)
    customer = customer_param(request)
    found = await read_customer_rfm(request.app.state.ctx, principal.merchant_id, customer)
    if found is None:
        raise HTTPException(404, "customer not found")
    return JSONResponse(found)


def customer_rfm(customer: int, doc: dict[str, Any], picture: StoredPicture) -> dict[str, Any]:
    """The response for one customer: values as stored, scored with the merchant's picture."""
    as_of = picture.as_of
    last = doc.get("last_order_day")
    values = Values(
        None if last is None else day_number(as_utc(last)),
        int(doc["frequency"]),
        doc["monetary"].to_decimal(),
    )
    scores = picture.scales.scores(values)
    return {
        "customer_id": customer,
        "recency_days": values.recency_days(as_of),
        "frequency": values.frequency,
        "monetary": format(values.monetary, "f"),
        "r": None if scores is None else scores.r,
        "f": None if scores is None else scores.f,
        "m": None if scores is None else scores.m,
        "segment": (Segment.PROSPECTS if scores is None else scores.segment).value,
        "as_of": day_date(as_of).isoformat(),
    }
