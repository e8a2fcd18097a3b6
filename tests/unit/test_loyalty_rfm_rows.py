from __future__ import annotations

import pickle
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.rfm import Scores, Segment, Values, segment_for
from loyalty.rfm_customers import RfmCustomer
from loyalty.rfm_merchants import RfmMerchant
from loyalty.rfm_orders import RfmOrder
from loyalty.rfm_rows import (
    customer_from_row,
    customer_row,
    merchant_from_row,
    merchant_row,
    order_from_row,
    order_row,
)
from loyalty.rfm_window import CustomerWindow, DayTotal
from loyalty.state_rows import RowVersionError

AMOUNTS = st.decimals(min_value=0, max_value=Decimal("1e15"), places=2).map(
    lambda d: d.normalize() if d > 100 else d  # some with exponents, as sums can be
)
ORDERS = st.builds(
    RfmOrder,
    customer=st.none() | st.integers(1, 2**53),
    day=st.none() | st.integers(0, 40_000),
    subtotal=st.none() | AMOUNTS,
    paid=st.booleans(),
    cancelled=st.booleans(),
    test=st.booleans(),
    refunded=AMOUNTS,
    refund_ids=st.lists(st.integers(1, 2**53), max_size=3).map(tuple),
)
SCORES = st.builds(
    lambda r, f, m: Scores(r, f, m, segment_for(r, f)),
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 5),
)


@st.composite
def customers(draw: st.DrawFn) -> RfmCustomer:
    days = draw(st.dictionaries(st.integers(0, 40_000), st.tuples(st.integers(1, 50), AMOUNTS)))
    scores = draw(st.none() | SCORES)
    segment = draw(st.sampled_from([None, Segment.PROSPECTS])) if scores is None else scores.segment
    return RfmCustomer(
        window=CustomerWindow(
            {d: DayTotal(n, net) for d, (n, net) in days.items()},
            draw(st.none() | st.integers(0, 40_000)),
        ),
        scores=scores,
        segment=segment,
        version=draw(st.integers(0, 2**40)),
        updates=draw(st.integers(0, 2**40)),
        seq=draw(st.integers(0, 2**40)),
    )


def kept(row: tuple[object, ...]) -> object:
    return pickle.loads(pickle.dumps(row))  # noqa: S301 - our own bytes


@given(ORDERS)
def test_an_order_comes_back_from_its_row_as_it_was(order: RfmOrder) -> None:
    back = order_from_row(kept(order_row(order)))

    assert back == order
    assert str(back.refunded) == str(order.refunded)


@given(customers())
def test_a_customer_comes_back_from_its_row_with_the_same_digits(customer: RfmCustomer) -> None:
    back = customer_from_row(kept(customer_row(customer)))

    assert back == customer
    assert [str(t.net) for t in back.window.days.values()] == [
        str(customer.window.days[d].net) for d in back.window.days
    ]


def test_a_customer_with_a_year_of_daily_orders_stays_small() -> None:
    window = CustomerWindow({d: DayTotal(2, Decimal("123.45")) for d in range(365)}, 364)
    customer = RfmCustomer(window, Scores(5, 5, 5, Segment.CHAMPIONS), Segment.CHAMPIONS, 3, 9)

    assert len(pickle.dumps(customer_row(customer))) < 8_000
    assert customer_from_row(kept(customer_row(customer))).values() == Values(
        364, 730, Decimal("45059.25")
    )


def test_a_merchant_keeps_its_histograms_and_picture() -> None:
    merchant = RfmMerchant()
    merchant.change(None, Values(100, 2, Decimal("10.5")))
    merchant.refresh()

    back = merchant_from_row(kept(merchant_row(merchant)))

    assert back == merchant
    assert back.picture is not None
    assert back.picture.version == 1


@pytest.mark.parametrize(
    ("decode", "row"),
    [
        (order_from_row, (2, None, None, None, 0, "0", ())),
        (customer_from_row, (1, None, ())),
        (merchant_from_row, (1, "not a merchant")),
        (customer_from_row, (1, 5, (), 999, 0, 0, 1, 1)),
    ],
)
def test_rows_of_another_format_are_refused(
    decode: Callable[[object], object], row: tuple[object, ...]
) -> None:
    with pytest.raises(RowVersionError):
        decode(row)
