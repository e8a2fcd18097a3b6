from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.rfm_records import stale_customers
from loyalnest.rfm_round import rescoring_round
from loyalty.rfm import Scale, Scales, day_number
from loyalty.rfm_commands import CustomerTick, DayTick, decode, scales_json
from loyalty.rfm_customers import Tick

MERCHANT = "3c1f4d2e-0a9b-5c8d-9e7f-6a5b4c3d2e1f"
SCALES = Scales(Scale((19_000, 19_100, 19_200, 19_300)), Scale((2, 3, 4, 5)), Scale((None,) * 4))
NOW = datetime(2026, 3, 2, 0, 5, tzinfo=UTC)


def picture(as_of: datetime, version: int = 7) -> dict[str, Any]:
    return {
        "_id": MERCHANT,
        "as_of": as_of,
        "scales": scales_json(SCALES),
        "v": version,
        "lookback_days": 90,
    }


def run(
    as_of: datetime, stale_ids: list[int]
) -> tuple[list[tuple[bytes, bytes]], list[Mapping[str, Any]]]:
    sent: list[tuple[bytes, bytes]] = []
    queries: list[Mapping[str, Any]] = []

    def stale(query: Mapping[str, Any]) -> list[dict[str, Any]]:
        queries.append(query)
        return [{"shopify_customer_id": c} for c in stale_ids]

    rescoring_round([picture(as_of)], stale, lambda k, v: sent.append((k, v)), NOW)
    return sent, queries


def test_stale_customers_get_the_pictures_tick() -> None:
    as_of = datetime(2026, 3, 2, tzinfo=UTC)

    sent, queries = run(as_of, [11, 12])

    tick = Tick(day_number(as_of), SCALES, 7)
    assert [(k, decode(v)) for k, v in sent] == [
        (f"{MERCHANT}:11".encode(), CustomerTick(MERCHANT, 11, tick, 90)),
        (f"{MERCHANT}:12".encode(), CustomerTick(MERCHANT, 12, tick, 90)),
    ]
    assert queries == stale_customers(MERCHANT, SCALES, day_number(as_of))


def test_a_new_day_is_sent_to_a_merchant_behind_it_and_naive_times_are_utc() -> None:
    sent, _ = run(datetime(2026, 2, 27), [])  # noqa: DTZ001 - as pymongo gives it, not tz_aware

    assert [(k, decode(v)) for k, v in sent] == [
        (MERCHANT.encode(), DayTick(MERCHANT, day_number(NOW)))
    ]
