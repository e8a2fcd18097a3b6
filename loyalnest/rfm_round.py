"""One RFM rescoring round: the records that keep customers' scores in step with their merchant.

For each merchant picture in the store (`rfm_merchants`, written by the RFM flow): an `rfm.day`
when the round's day is past the picture's as-of day, and an `rfm.tick` with the picture for
every customer whose stored document `stale_customers` finds (an oldest day out of the window,
nothing announced yet, or a score whose band no longer holds the value). The flow applies them
and writes the documents again, so a later round finds only what moved since: rounds converge,
and repeating one is harmless (a tick of a picture already applied changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.rfm_records import stale_customers
from loyalty.rfm import day_number
from loyalty.rfm_commands import CustomerTick, DayTick, RfmCommand, encode, scales_from
from loyalty.rfm_customers import Tick
from loyalty.rfm_window import DEFAULT_LOOKBACK_DAYS

Produce = Callable[[bytes, bytes], None]  # (key, value) onto rfm.commands


@dataclass
class RoundCounts:
    merchants: int = 0
    days: int = 0
    ticks: int = 0


def rescoring_round(
    merchants: Iterable[Mapping[str, Any]],
    stale: Callable[[Mapping[str, Any]], Iterable[Mapping[str, Any]]],
    produce: Produce,
    now: datetime,
    lookback: int = DEFAULT_LOOKBACK_DAYS,
) -> RoundCounts:
    """`merchants`: the picture documents; `stale(query)`: the customer documents matching a
    query; `produce(key, value)`: one record onto rfm.commands."""
    counts = RoundCounts()
    today = day_number(now)
    for doc in merchants:
        counts.merchants += 1
        merchant_id = str(doc["_id"])
        as_of = day_number(_utc(doc["as_of"]))
        if today > as_of:
            _send(produce, merchant_id.encode(), DayTick(merchant_id, today))
            counts.days += 1
        scales = scales_from(doc["scales"])
        tick = Tick(as_of, scales, int(doc["v"]))
        for customer_doc in stale(stale_customers(merchant_id, scales, as_of)):
            customer = int(customer_doc["shopify_customer_id"])
            command = CustomerTick(merchant_id, customer, tick, lookback)
            _send(produce, f"{merchant_id}:{customer}".encode(), command)
            counts.ticks += 1
    return counts


def _utc(at: datetime) -> datetime:
    """A stored time: pymongo gives it naive unless its client is tz_aware; it is UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _send(produce: Produce, key: bytes, command: RfmCommand) -> None:
    produce(key, encode(command))
