"""RFM reads: `GET /v1/segments` and `GET /v1/customers/{id}/rfm` (scope
merchant:analytics:view): the merchant's picture (which the API keeps RFM_PICTURE_SECONDS, 1 s
by default, in memory, so most requests are answered without MongoDB), and a customer's
document, read from MongoDB every time, scored with it. The API runs with its default settings.

The documents are what the RFM flow writes for one merchant's customers as of LAST_DAY,
built by the flow's own code (`connectors.rfm_records.customer_write` / `merchant_write` of
states made by `loyalty.rfm_*`) from the benchmarks' shopping, and written through its
MongoWriter. Each call is warmed up first (the API's MongoDB pool opens), then timed closed
loop. Every reply is checked: the counts must be the batch recomputation's
(`bench.rfm_shopping.expected_scores`, the midpoint rule over all the customers' values, not
the merchant's histograms), and each customer's reply must be that customer's values, scores
and segment as the same recomputation gives them, so a reply for the wrong customer fails.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pymongo

from bench.http import Run, build_request, closed_loop
from bench.proc import cpu_seconds, store_pid
from bench.report import Targets, at_least, at_most, require_status
from bench.rfm_shopping import (
    AS_OF,
    LOOKBACK,
    MERCHANT,
    SHOP,
    Order,
    expected_scores,
    shopping,
    values_as_of,
)
from bench.stackenv import running_api
from connectors.rfm_records import customer_write, merchant_write
from loyalnest.harness.shops import Shop
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_ANALYTICS
from loyalty.exact import ZERO
from loyalty.rfm import Scores, Segment, Values, day_date
from loyalty.rfm_customers import RfmCustomer
from loyalty.rfm_merchants import MerchantPicture, RfmMerchant
from loyalty.rfm_window import CustomerWindow, DayTotal
from sinks.mongo import MongoWrite, MongoWriter

TARGETS: Targets = {
    "segments_req_per_s": at_least(2_000),
    "segments_p99_ms": at_most(20),
    "customer_p99_ms": at_most(20),
}


def windows(orders: Sequence[Order]) -> dict[int, CustomerWindow]:
    """Each customer's day totals as of AS_OF, as the customer stage keeps them."""
    found: dict[int, CustomerWindow] = {}
    for o in orders:
        window = found.setdefault(o.customer, CustomerWindow(as_of=AS_OF))
        total = window.days.setdefault(o.day, DayTotal(0, ZERO))
        total.orders += 1
        total.net += o.subtotal
    return found


def merchant_picture(values: dict[int, Values]) -> MerchantPicture:
    """The merchant stage's picture once every customer has reported their values."""
    merchant = RfmMerchant()
    for v in values.values():
        merchant.change(None, v, LOOKBACK)
    merchant.advance(AS_OF)
    picture = merchant.refresh()
    assert picture is not None
    return picture


def documents(orders: Sequence[Order]) -> tuple[list[MongoWrite], MerchantPicture]:
    """Every customer's document, scored and announced with the picture, and the picture's."""
    found = windows(orders)
    values = {customer: window.values() for customer, window in found.items()}
    picture = merchant_picture(values)
    writes = [merchant_write(MERCHANT, picture)]
    for customer, window in found.items():
        scores: Scores | None = picture.scales.scores(values[customer])
        segment = Segment.PROSPECTS if scores is None else scores.segment
        state = RfmCustomer(window, scores, segment, picture.version, updates=1, seq=1)
        writes.append(customer_write(MERCHANT, customer, state, LOOKBACK))
    return writes, picture


def expected_replies(values: dict[int, Values]) -> tuple[dict[str, Any], dict[int, Any]]:
    """The segments reply and every customer's reply, from the batch recomputation."""
    scores, counts = expected_scores(values)
    as_of = day_date(AS_OF).isoformat()
    segments = {"merchant_id": MERCHANT, "as_of": as_of, "total": len(values), "segments": counts}
    customers = {}
    for customer, v in values.items():
        r, f, m, segment = scores[customer]
        customers[customer] = {
            "customer_id": customer,
            "recency_days": v.recency_days(AS_OF),
            "frequency": v.frequency,
            "monetary": format(v.monetary, "f"),
            "r": r,
            "f": f,
            "m": m,
            "segment": segment,
            "as_of": as_of,
        }
    return segments, customers


def write_documents(settings: Settings, database: str, writes: list[MongoWrite]) -> None:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    try:
        stats = MongoWriter(client[database]).write(writes)
    finally:
        client.close()
    if stats.duplicates or stats.applied != len(writes):
        raise RuntimeError(f"{stats.applied} of {len(writes)} documents written")


def require_replies(what: str, run: Run, expected: Sequence[Any]) -> None:
    """Every reply 200 and exactly what was expected for the request it answers."""
    require_status(what, run.replies)
    for want, reply in zip(expected, run.replies, strict=True):
        got = json.loads(reply.body)
        if got != want:
            raise RuntimeError(f"{what}: got {got}, expected {want}")


def measure(
    settings: Settings, customers: int, requests: int, connections: int
) -> dict[str, float]:
    orders = shopping(customers, 2 * customers)
    writes, picture = documents(orders)
    segments, replies = expected_replies(values_as_of(orders, AS_OF))
    if {s.value: n for s, n in picture.counts.items()} != segments["segments"]:
        raise RuntimeError("the merchant stage's counts differ from the batch recomputation")
    shop = Shop(SHOP, "bench-rfm-secret", Decimal(1))
    auth = {"Authorization": f"Bearer {shop.token(SCOPE_ANALYTICS)}"}
    order = list(replies)
    random.Random(3).shuffle(order)
    asked = [order[n % len(order)] for n in range(requests)]
    warm = asked[: 4 * connections]

    def customer_requests(of: Sequence[int]) -> list[bytes]:
        return [build_request("GET", f"/v1/customers/{c}/rfm", auth) for c in of]

    def segment_requests(n: int) -> list[bytes]:
        return [build_request("GET", "/v1/segments", auth)] * n

    with running_api(settings, [shop]) as running:
        port = running.api.http_port
        write_documents(settings, running.env.database, writes)
        for what, run_requests, want in (
            ("rfm warm-up", customer_requests(warm), [replies[c] for c in warm]),
            ("segments warm-up", segment_requests(len(warm)), [segments] * len(warm)),
        ):
            warmup = asyncio.run(closed_loop(port, run_requests, connections))
            require_replies(what, warmup, want)
        cpu = CpuMeter(running.api.pid, store_pid(settings))
        counts = asyncio.run(closed_loop(port, segment_requests(requests), connections))
        counts_cpu = cpu.per_request(requests)
        require_replies("segments", counts, [segments] * requests)
        one = asyncio.run(closed_loop(port, customer_requests(asked), connections))
        one_cpu = cpu.per_request(requests)
        require_replies("customer rfm", one, [replies[c] for c in asked])
    return {
        "customers": customers,
        "connections": connections,
        **{f"segments_{k}": v for k, v in counts.summary().items()},
        **{f"segments_{k}": v for k, v in counts_cpu.items()},
        **{f"customer_{k}": v for k, v in one.summary().items()},
        **{f"customer_{k}": v for k, v in one_cpu.items()},
    }


class CpuMeter:
    """CPU milliseconds per request of the API process and of the store (/proc), since the
    last reading: where a call's time goes on a machine they share."""

    def __init__(self, api: int, store: int | None) -> None:
        self._api, self._store = api, store
        self._last = self._read()

    def _read(self) -> tuple[float, float]:
        store = cpu_seconds(self._store) if self._store else float("nan")
        return cpu_seconds(self._api), store

    def per_request(self, requests: int) -> dict[str, float]:
        now = self._read()
        api, store = (1000 * (b - a) / requests for a, b in zip(self._last, now, strict=True))
        self._last = now
        return {"api_cpu_ms": api, "store_cpu_ms": store}
