"""What every request that becomes a points command does with the store and the log.

A redemption and an adjustment are both recorded once under an id derived from the merchant
and the Idempotency-Key, sent to `points.commands` while pending, and read back scoped to the
token's merchant.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError
from starlette.exceptions import HTTPException

from api.context import ApiContext
from api.producer import ProduceError
from loyalnest.topics import POINTS_COMMANDS


async def record_once(
    ctx: ApiContext, collection: str, document: dict[str, Any], what: str
) -> dict[str, Any]:
    """Insert the pending document, or return the one its id (its key) already made."""
    try:
        await ctx.db[collection].insert_one(document)
        return document
    except DuplicateKeyError:
        existing = await ctx.db[collection].find_one({"_id": document["_id"]})
        if existing is None:  # a duplicate that is gone again: nothing to answer with yet
            raise HTTPException(409, f"{what} conflict, retry") from None
        return existing


async def send_command(ctx: ApiContext, key: bytes, value: bytes) -> None:
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


async def find_owned(
    ctx: ApiContext, collection: str, document_id: str, merchant_id: str, what: str
) -> dict[str, Any]:
    """The document, scoped by the token's merchant: another merchant's is "not found"."""
    document = await ctx.db[collection].find_one({"_id": document_id, "merchant_id": merchant_id})
    if document is None:
        raise HTTPException(404, f"{what} not found")
    return dict(document)
