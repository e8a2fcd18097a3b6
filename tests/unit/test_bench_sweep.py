"""The expiry sweep benchmark's store ceiling writes what the flow writes: per customer, an
earn and its first balance, then one expire entry and a newer balance of 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import InsertOne, UpdateOne

from bench.sweep import EXPIRY, ceiling_writes, earn_day
from connectors.store import BALANCES, LEDGER
from loyalty.lots import lot_expiry


def document(op: Any) -> dict[str, Any]:
    raw = op._doc
    if isinstance(raw, list):  # the guarded balance update: its new document
        (stage,) = raw
        return dict(decode(stage)["$replaceWith"]["$cond"][1]["$literal"])
    return decode(raw)


def decode(raw: RawBSONDocument) -> dict[str, Any]:
    return bson.decode(raw.raw, CodecOptions(tz_aware=True))


def test_each_customer_earns_then_expires_everything_on_the_tick() -> None:
    day = earn_day(datetime(2026, 11, 22, 12, tzinfo=UTC))
    expires_at = lot_expiry(day, EXPIRY)
    assert expires_at is not None

    earns, expiries = ceiling_writes(3, day, expires_at + timedelta(minutes=1))

    assert [name for name, _ in earns] == [LEDGER, BALANCES] * 3
    assert [name for name, _ in expiries] == [LEDGER, BALANCES] * 3
    assert all(isinstance(op, InsertOne) for _, op in earns)
    entries = [document(op) for name, op in expiries if name == LEDGER]
    balances = [document(op) for name, op in expiries if name == BALANCES]
    assert all(isinstance(op, UpdateOne) for name, op in expiries if name == BALANCES)
    assert [(e["type"], e["balance_after"]) for e in entries] == [("expire", 0)] * 3
    assert [(b["balance"], b["v"]) for b in balances] == [(0, 2)] * 3
    earned = [document(op)["points"] for name, op in earns if name == LEDGER]
    assert [e["points"] for e in entries] == earned
