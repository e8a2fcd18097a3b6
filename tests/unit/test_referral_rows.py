"""The referrals flow's states as versioned rows: every field back as it was, through the
codec the flow keeps them with, and a row of another version (or an old pickled state)
refused with a clear error."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from flows.common import StateCodec
from flows.referrals import CODE_STATES, FRIEND_STATES, ORDER_STATES
from loyalty.referral_fraud import Identity, IpReferrals
from loyalty.referral_orders import Extras, ReferralOrder
from loyalty.referral_rows import (
    code_from_row,
    code_row,
    friend_from_row,
    friend_row,
    order_from_row,
    order_row,
)
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import (
    Claim,
    CodeState,
    FriendOrder,
    FriendState,
    Reason,
    Referral,
    Status,
)
from loyalty.state_rows import RowVersionError
from tests.unit.pickles import names_no_class

AT = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
LATER = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
RELEASE = datetime(2026, 3, 23, 8, 0, 0, 1, tzinfo=UTC)
MERCHANT = "7f0c3a52-3b7e-5a55-9a53-2f1a2b3c4d5e"
TERMS = ReferralTerms(
    advocate_points=750, friend_points=250, min_subtotal=Decimal("25.50"), review_days=14
)
FRIEND = Identity(42, "h1:email", "h1:name", frozenset({"h1:addr-b", "h1:addr-a"}))


def full_order() -> ReferralOrder:
    """Every field away from its default."""
    return ReferralOrder(
        friend=42,
        placed_at=AT,
        subtotal=Decimal("120.10"),
        paid=True,
        cancelled=True,
        test=True,
        refunded=Decimal("20.05"),
        refund_ids=(9001, 9002),
        extras=Extras("AB3DEF7H", "h1:email", "h1:name", frozenset({"h1:addr"}), "h1:ip"),
        terms=TERMS,
        locale="he",
    )


def full_friend() -> FriendState:
    referral = Referral(
        referral_id="ref-1",
        merchant_id=MERCHANT,
        code="AB3DEF7H",
        friend=42,
        order_id=5001,
        status=Status.REVOKED,
        at=LATER,
        advocate=7,
        reason=Reason.REFUNDED,
        advocate_points=750,
        friend_points=250,
        release_at=RELEASE,
    )
    claim = Claim(MERCHANT, "AB3DEF7H", "ref-1", FRIEND, 5001, AT, "h1:ip")
    order = FriendOrder(
        shop="shop.myshopify.com",
        merchant_id=MERCHANT,
        friend=42,
        order_id=5001,
        placed_at=AT,
        at=LATER,
        paid=True,
        cancelled=True,
        net_subtotal=Decimal("100.05"),
        fully_refunded=True,
        code="AB3DEF7H",
        identity=FRIEND,
        ip_hash="h1:ip",
        terms=TERMS,
        locale="ar",
    )
    return FriendState((AT, 5001), referral, claim, order, (5002, 5003))


def full_code() -> CodeState:
    return CodeState(
        advocate=Identity(7, "h1:adv-email", "h1:adv-name", frozenset({"h1:adv-addr"})),
        ips={
            "h1:ip-old": IpReferrals((AT,), ("ref-0",)),
            "h1:ip-new": IpReferrals((AT, LATER), ("ref-1", "ref-2")),
        },
    )


def no_field_at_its_default(value: Any) -> None:
    default = type(value)()
    same = [f.name for f in fields(value) if getattr(value, f.name) == getattr(default, f.name)]
    assert same == [], f"examples must set every field: {same}"


@pytest.mark.parametrize(
    ("state", "to_row", "from_row"),
    [
        (full_order(), order_row, order_from_row),
        (ReferralOrder(), order_row, order_from_row),
        (full_friend(), friend_row, friend_from_row),
        (FriendState(), friend_row, friend_from_row),
        (full_code(), code_row, code_from_row),
        (CodeState(), code_row, code_from_row),
    ],
)
def test_a_state_comes_back_from_its_row_as_it_was(
    state: Any, to_row: Callable[[Any], tuple[Any, ...]], from_row: Callable[[object], Any]
) -> None:
    assert from_row(to_row(state)) == state


@pytest.mark.parametrize("state", [full_order(), full_friend(), full_code(), TERMS])
def test_the_examples_set_every_field(state: object) -> None:
    no_field_at_its_default(state)


@pytest.mark.parametrize("flag", ["paid", "cancelled", "test"])
def test_each_flag_of_an_order_comes_back_on_its_own(flag: str) -> None:
    order = replace(
        full_order(), paid=flag == "paid", cancelled=flag == "cancelled", test=flag == "test"
    )
    assert order_from_row(order_row(order)) == order


@pytest.mark.parametrize("flag", ["paid", "cancelled", "fully_refunded"])
def test_each_flag_of_a_friends_order_comes_back_on_its_own(flag: str) -> None:
    state = full_friend()
    assert state.order is not None
    order = replace(
        state.order,
        paid=flag == "paid",
        cancelled=flag == "cancelled",
        fully_refunded=flag == "fully_refunded",
    )
    changed = replace(state, order=order)
    assert friend_from_row(friend_row(changed)) == changed


def test_the_flow_keeps_each_state_as_its_row_and_reads_it_back() -> None:
    states: list[tuple[StateCodec[Any], Any]] = [
        (ORDER_STATES, full_order()),
        (FRIEND_STATES, full_friend()),
        (CODE_STATES, full_code()),
    ]
    for codec, state in states:
        data = codec.encode(state)
        assert names_no_class(data)  # plain values only: no class to import back
        assert codec.decode(data) == state


def test_a_pickled_object_names_its_class() -> None:  # what names_no_class looks for
    assert not names_no_class(pickle.dumps(full_code()))


def test_a_code_state_keeps_its_ips_oldest_first() -> None:
    state = full_code()
    assert list(code_from_row(code_row(state)).ips) == ["h1:ip-old", "h1:ip-new"]


@pytest.mark.parametrize(
    ("row", "from_row", "what"),
    [
        ((2, *order_row(ReferralOrder())[1:]), order_from_row, "order"),
        ((0, *friend_row(FriendState())[1:]), friend_from_row, "friend"),
        ((), code_from_row, "code"),
    ],
)
def test_a_row_of_another_version_is_refused(
    row: tuple[Any, ...], from_row: Callable[[object], Any], what: str
) -> None:
    with pytest.raises(RowVersionError, match=f"referral {what} row.*delete the referrals flow"):
        from_row(row)


def test_a_state_pickled_by_an_earlier_version_is_refused_with_the_remedy() -> None:
    old = pickle.dumps((full_order(),))  # what the flow kept before its states were rows
    with pytest.raises(RowVersionError, match="recovery store"):
        ORDER_STATES.decode(old)
