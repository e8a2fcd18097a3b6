"""The tiers flow's states as versioned rows: every field back as it was, and a row of another
version (or an old pickled state) refused with the remedy."""

from __future__ import annotations

import pickle
from array import array
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from flows.tiers import COUNTS, STATES
from loyalty.dedup import RecentIds
from loyalty.state_rows import RowVersionError
from loyalty.tier_counts import TierCounts
from loyalty.tier_customers import TierCustomer
from loyalty.tier_rows import counts_from_row, counts_row, tier_from_row, tier_row
from loyalty.tiers import CustomerMetric, OrderMetric
from tests.unit.pickles import names_no_class

AT = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def customer() -> TierCustomer:
    points = CustomerMetric({11: OrderMetric(AT, Decimal(120)), 12: OrderMetric(AT, Decimal(-5))})
    return TierCustomer(
        shop="shop.myshopify.com",
        locale="he",
        points=points,
        spent=CustomerMetric({11: OrderMetric(AT, Decimal("120.50"))}, Decimal("30.25")),
        tier="Gold",
        revision=3,
        paid={"silver": AT, "gold": AT},
        clock=AT,
        due=datetime(2027, 1, 1, tzinfo=UTC),
        recent=RecentIds(array("Q", [5, 9]), array("l", [20500, 20501]), 20500, 20400),
    )


@pytest.mark.parametrize("state", [customer(), TierCustomer()])
def test_a_customer_comes_back_from_its_row_as_it_was(state: TierCustomer) -> None:
    assert tier_from_row(tier_row(state)) == state
    data = STATES.encode(state)
    assert names_no_class(data)
    assert STATES.decode(data) == state


@pytest.mark.parametrize("counts", [TierCounts({"": 4, "Silver": 2, "Gold": 1}, AT), TierCounts()])
def test_a_merchants_counts_come_back_from_their_row_as_they_were(counts: TierCounts) -> None:
    assert counts_from_row(counts_row(counts)) == counts
    data = COUNTS.encode(counts)
    assert names_no_class(data)  # plain values only: no class to import back
    assert COUNTS.decode(data) == counts


def test_counts_pickled_by_an_earlier_version_are_refused_with_the_remedy() -> None:
    old = pickle.dumps((TierCounts({"Gold": 1}, AT),))  # what the flow kept before rows
    with pytest.raises(RowVersionError, match=r"tier counts row.*recovery store"):
        COUNTS.decode(old)


def test_a_customer_row_of_another_version_is_refused() -> None:
    with pytest.raises(RowVersionError, match="version-1 tier row"):
        tier_from_row((2, *tier_row(TierCustomer())[1:]))
