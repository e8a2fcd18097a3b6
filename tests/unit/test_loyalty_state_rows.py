"""loyalty.state_rows: every state a flow keeps comes back from its row exactly, compactly, and a
row of another format is refused instead of misread. (The property tests in
test_loyalty_properties.py also pass every state of their random runs through its row.)"""

from __future__ import annotations

import pickle
from array import array
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from loyalty.customers import CustomerState
from loyalty.dedup import RecentIds
from loyalty.ledger import OrderState, SkipReason
from loyalty.lots import Held, Lot, Lots
from loyalty.policy import Expiry
from loyalty.state_rows import (
    RowVersionError,
    customer_from_row,
    customer_row,
    order_from_row,
    order_row,
)

AT = datetime(2025, 3, 1, 9, 0, 0, 123_456, tzinfo=UTC)
LOT = Expiry.parse("lot:365")

ORDERS = [
    OrderState(),
    OrderState(customer=42, basis=Decimal("93.05"), earned=93),
    OrderState(
        customer=2**62,
        taxes_included=True,
        basis=Decimal("1E+3"),
        earned=1000,
        reversed=250,
        cancelled=True,
        refunded=Decimal("250.00"),
        refunds={7: None, 8: (Decimal("10.50"), Decimal("0.84")), 9: (Decimal("0"), Decimal("0"))},
    ),
    OrderState(customer=None, skip_reason=SkipReason.ZERO_BASIS),
]


@pytest.mark.parametrize("state", ORDERS)
def test_an_order_state_comes_back_from_its_row_with_the_same_digits(state: OrderState) -> None:
    back = order_from_row(pickle.loads(pickle.dumps(order_row(state))))  # noqa: S301

    assert back == state
    assert (str(back.basis), str(back.refunded)) == (str(state.basis), str(state.refunded))


def customers() -> list[CustomerState]:
    busy = CustomerState(
        balance=-5,
        pending=120,
        lifetime_earned=900,
        seq=31,
        version=40,
        clock=AT,
        last_activity=AT - timedelta(days=3),
        warned_due=AT + timedelta(days=300),
        expiry=LOT,
        warning_days=30,
        locale="fr",
        held={
            "order:1": Held(100, AT + timedelta(days=2), AT, LOT),
            "referral:abc": Held(20, AT + timedelta(days=1), AT, Expiry.parse("inactivity:90")),
        },
        lots=Lots([Lot(AT + timedelta(days=10), 7, True), Lot(AT + timedelta(days=40), 9)]),
        recent=RecentIds(array("Q", [1, 2**64 - 1]), array("l", [20148, 20150]), 20148, 20118),
    )
    return [CustomerState(), busy]


@pytest.mark.parametrize("state", customers())
def test_a_customer_state_comes_back_from_its_row(state: CustomerState) -> None:
    back = customer_from_row(pickle.loads(pickle.dumps(customer_row(state))))  # noqa: S301

    assert back == state
    assert back.expiry is state.expiry  # terms are shared values, as in the live states


def test_times_come_back_as_the_same_instants_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    state = CustomerState(clock=AT.astimezone(paris))

    back = customer_from_row(customer_row(state))

    assert back.clock == AT
    assert back.clock is not None
    assert back.clock.utcoffset() == timedelta(0)


def test_a_customer_who_earned_once_is_a_row_of_under_200_bytes() -> None:
    state = customers()[1]
    state.held = {"order:7100000000": Held(93, AT + timedelta(days=2), AT, LOT)}
    state.lots = Lots()
    state.recent = RecentIds(array("Q", [2**63]), array("l", [20148]), 20148, 20118)

    assert len(pickle.dumps(customer_row(state), protocol=pickle.HIGHEST_PROTOCOL)) < 200


@pytest.mark.parametrize(
    "row",
    [
        (2, 0, 0),  # a newer format
        CustomerState(),  # what an older flow pickled: the object itself
        (),
        None,
    ],
)
def test_a_row_of_another_format_is_refused_with_the_way_out(row: object) -> None:
    with pytest.raises(RowVersionError, match="delete the flow's recovery store"):
        customer_from_row(row)
    with pytest.raises(RowVersionError, match="not a version-1 order row"):
        order_from_row(row)
