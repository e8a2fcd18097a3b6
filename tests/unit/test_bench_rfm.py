"""The RFM benchmarks' own logic, without servers: the shopping is what it says, the batch
recomputation the runs check against agrees with the flow's merchant stage and with the API's
reply for the documents the API benchmark writes, and snapshot rows add up per epoch."""

from __future__ import annotations

from typing import Any

import bson
from bson.raw_bson import RawBSONDocument

from api.rfm import customer_rfm
from bench import rfm_api
from bench.__main__ import BENCHMARKS, TARGETS, parse
from bench.rfm_shopping import (
    AS_OF,
    FIRST_CUSTOMER,
    LOOKBACK,
    expected_scores,
    shopping,
    values_as_of,
)
from bench.rfm_snapshots import EpochSizes, per_epoch
from bench.rfm_stack import summed
from connectors.rfm_records import stored_picture
from connectors.store import RFM_CUSTOMERS, RFM_MERCHANTS


def test_every_customer_has_an_order_and_orders_come_in_day_order() -> None:
    orders = shopping(customers=50, orders=120)

    assert len(orders) == 120
    assert {o.customer for o in orders} == set(range(FIRST_CUSTOMER, FIRST_CUSTOMER + 50))
    assert len({o.order_id for o in orders}) == 120
    assert all(AS_OF - LOOKBACK < o.day <= AS_OF for o in orders)
    assert [o.day for o in orders] == sorted(o.day for o in orders)


def test_a_day_later_the_oldest_days_orders_have_left_the_window() -> None:
    orders = shopping(customers=500, orders=3_000)
    oldest = [o for o in orders if o.day == AS_OF - LOOKBACK + 1]
    before, after = values_as_of(orders, AS_OF), values_as_of(orders, AS_OF + 1)

    assert oldest, "the seed should put some order on the oldest day"
    assert sum(v.frequency for v in before.values()) == 3_000
    assert sum(v.frequency for v in after.values()) == 3_000 - len(oldest)


def test_the_batch_recomputation_agrees_with_the_merchant_stage() -> None:
    orders = shopping(customers=400, orders=1_000)
    values = values_as_of(orders, AS_OF)
    _, counts = expected_scores(values)

    picture = rfm_api.merchant_picture(values)

    assert {s.value: n for s, n in picture.counts.items()} == counts
    assert sum(counts.values()) == picture.total == 400


def test_the_expected_replies_are_the_apis_for_the_documents_written() -> None:
    orders = shopping(customers=200, orders=500)
    writes, _ = rfm_api.documents(orders)
    _, replies = rfm_api.expected_replies(values_as_of(orders, AS_OF))
    docs = {
        collection: [_stored(op) for c, op in writes if c == collection]
        for collection in (RFM_CUSTOMERS, RFM_MERCHANTS)
    }
    (picture,) = docs[RFM_MERCHANTS]

    assert len(docs[RFM_CUSTOMERS]) == len(replies) == 200
    for doc in docs[RFM_CUSTOMERS]:
        customer = doc["shopify_customer_id"]
        assert customer_rfm(customer, doc, stored_picture(picture)) == replies[customer]


def _stored(op: Any) -> dict[str, Any]:
    raw: RawBSONDocument = op._doc  # an InsertOne: every document is a first version
    return bson.decode(raw.raw)


def test_snapshot_rows_add_up_per_epoch_and_per_step() -> None:
    rows = [
        ("rfm.customer-state", "m:1", 3, 100),
        ("rfm.customer-state", "m:2", 3, 50),
        ("rfm.merchant-state", "m", 3, 1_000),
        ("rfm.customer-state", "m:1", 5, 120),
    ]

    assert per_epoch(rows) == {3: (1_150, 3), 5: (120, 1)}
    assert EpochSizes.of(per_epoch(rows, ".merchant-state")) == EpochSizes(1, 1_000, 1_000.0, 1)
    assert EpochSizes.of(per_epoch(rows)) == EpochSizes(2, 1_150, 635.0, 3)
    assert EpochSizes.of({}) == EpochSizes(0, 0, 0.0, 0)


def test_metric_samples_are_summed_over_the_labels_asked_for() -> None:
    found = [
        ("writes_total", {"collection": "a", "outcome": "applied"}, 5.0),
        ("writes_total", {"collection": "a", "outcome": "duplicate"}, 2.0),
        ("writes_total", {"collection": "b", "outcome": "applied"}, 7.0),
        ("writes_created", {"collection": "a", "outcome": "applied"}, 1e9),
    ]

    assert summed(found, "writes_total", collection="a") == 7.0
    assert summed(found, "writes_total", outcome="applied") == 12.0
    assert summed(found, "errors_total") == 0.0


def test_the_rfm_benchmarks_are_named_and_sized_from_the_command_line() -> None:
    args = parse(["--only", "rfm", "--rfm-orders", "500"])

    assert args.rfm_flow_customers == 500  # one order each unless told
    assert {BENCHMARKS[n] for n in ("rfm", "rfm-ageing", "rfm-api")} <= set(TARGETS)
