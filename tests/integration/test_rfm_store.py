"""The rescoring round's question, asked of the real MongoDB-wire store: the documents the
`stale_customers` query finds are exactly the customers `needs_tick` names."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from pymongo.database import Database

from connectors.rfm_records import customer_write, stale_customers
from connectors.store import COLLECTIONS, RFM_CUSTOMERS
from loyalty.rfm import Scores, Segment, Thresholds, monetary_bucket, segment_for
from loyalty.rfm_customers import RfmCustomer, needs_tick
from loyalty.rfm_merchants import MerchantPicture, RfmMerchant
from loyalty.rfm_window import CustomerWindow, DayTotal

pytestmark = pytest.mark.integration

MERCHANT = "0b6f9f0e-5d3a-5c1e-8f2b-7a9d4c3e2f10"
LOOKBACK = 60
AS_OF = 20_500


def random_customer(rng: random.Random) -> RfmCustomer:
    days = {
        AS_OF - rng.randrange(LOOKBACK + 10): DayTotal(
            rng.randint(1, 3), Decimal(rng.randint(0, 40_000)) / 100
        )
        for _ in range(rng.choice((0, 1, 1, 2, 4)))
    }
    scores = None
    segment = rng.choice([None, Segment.PROSPECTS])
    if rng.random() < 0.7:
        r, f, m = rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 5)
        scores = Scores(r, f, m, segment_for(r, f))
        segment = scores.segment
    return RfmCustomer(CustomerWindow(days, AS_OF), scores, segment, 1, 1, 1)


def picture_of(customers: list[RfmCustomer], thresholds: Thresholds | None) -> MerchantPicture:
    merchant = RfmMerchant()
    merchant.use(thresholds)
    for c in customers:
        merchant.change(None, c.values())
    merchant.advance(AS_OF)
    picture = merchant.refresh()
    assert picture is not None
    return picture


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("use_thresholds", [False, True])
def test_the_stale_query_finds_exactly_the_customers_to_tick(
    mongo_db: Database[Any], seed: int, use_thresholds: bool
) -> None:
    rng = random.Random(seed)
    collection = mongo_db[RFM_CUSTOMERS]
    collection.create_indexes(COLLECTIONS[RFM_CUSTOMERS])
    customers = {n: random_customer(rng) for n in range(1, 301)}
    thresholds = Thresholds(
        (3, 10, 20, 40), (2, 3, 5, 8), (Decimal(50), Decimal(100), Decimal(200), Decimal(300))
    )
    # Scales from the customers themselves, or the merchant's thresholds: scores of stored
    # documents fall on both sides of every band's edges.
    picture = picture_of(list(customers.values()), thresholds if use_thresholds else None)
    for n, c in customers.items():
        _name, write = customer_write(MERCHANT, n, c, LOOKBACK)
        collection.insert_one(write._doc)
    collection.insert_one({"_id": "other", "merchant_id": "another merchant", "segment": None})

    found = {
        d["shopify_customer_id"]
        for query in stale_customers(MERCHANT, picture.scales, AS_OF)
        for d in collection.find(query)
    }

    expected = {n for n, c in customers.items() if needs_tick(c, LOOKBACK, picture)}
    assert found == expected
    assert 0 < len(found) < len(customers), "the run should cover both answers"
    spends = Counter(monetary_bucket(c.values().monetary) for c in customers.values())
    assert len(spends) > 5
