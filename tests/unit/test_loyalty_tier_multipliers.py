"""Tier multipliers in the customer stage (loyalty.customers), their command (loyalty.commands),
their place in the customer row (loyalty.state_rows), and the order amounts the order stage
now passes on for the tiers (loyalty.ledger).

An order earn after a TierChange posts floor(points x multiplier); bonuses and adjustments
never do; an order earned under a multiplier remembers it (a Boost), so that its refunds and
its cancellation take back multiplied points, cumulatively, whatever the tier is by then.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import tests.unit.test_loyalty_ledger as orders
from loyalty.commands import TIER, decode_command, encode_change, encode_tier
from loyalty.customers import (
    BOOST_MEMORY,
    Boost,
    CustomerState,
    LedgerEntry,
    TierChange,
    apply_customer,
)
from loyalty.errors import InvalidEventError
from loyalty.ledger import Kind, PointsChange, Source
from loyalty.state_rows import customer_from_row, customer_row
from tests.unit.test_loyalty_commands import body_of, order_change, other_change, record
from tests.unit.test_loyalty_customers import (
    AT,
    CUSTOMER,
    MERCHANT,
    ORDER_ID,
    SHOP,
    adjusted,
    adjustment,
    bonus,
    cancelled,
    day,
    earned,
    entries,
    feed,
    refunded,
    snapshots,
    tick,
)

D = Decimal
OTHER_ORDER = ORDER_ID + 1

# ---------------------------------------------------------------------------- helpers


def tier(
    multiplier: str, revision: int = 1, *, at: datetime = AT, name: str | None = "gold"
) -> TierChange:
    return TierChange(MERCHANT, CUSTOMER, revision, name, D(multiplier), at)


def tier_bonus(points: int, *, at: datetime = AT) -> PointsChange:
    return PointsChange(
        shop=SHOP,
        customer=CUSTOMER,
        source=Source.TIER,
        source_id="gold",
        kind=Kind.BONUS,
        points=points,
        text_key="points.bonus.tier",
        locale="en",
        at=at,
    )


def only(outputs: list[Any]) -> LedgerEntry:
    found = entries(outputs)
    assert len(found) == 1, found
    return found[0]


def points_of(outputs: list[Any], kind: Kind) -> list[int]:
    return [e.points for e in entries(outputs) if e.kind == kind]


# ---------------------------------------------------------------------------- earning


def test_without_a_tier_an_order_earn_posts_its_base_points() -> None:
    state, outputs = feed([earned(101)])

    entry = only(outputs)
    assert (entry.points, entry.spendable_delta, entry.multiplier) == (101, 101, None)
    assert (state.balance, state.lifetime_earned) == (101, 101)
    assert state.multiplier == D(1)
    assert (state.tier, state.boosts) == (None, None)


def test_a_tier_of_multiplier_one_earns_base_points_and_remembers_no_boost() -> None:
    state, outputs = feed([tier("1"), earned(101)])

    entry = only(outputs)
    assert (entry.points, entry.multiplier) == (101, None)
    assert state.boosts is None


def test_an_earn_under_one_and_a_half_posts_the_floor_of_the_multiplied_points() -> None:
    state, outputs = feed([tier("1.5"), earned(101)])

    entry = only(outputs)
    # 101 x 1.5 = 151.5 -> 151
    assert (entry.kind, entry.points, entry.spendable_delta, entry.balance) == (
        Kind.EARN,
        151,
        151,
        151,
    )
    assert entry.multiplier == D("1.5")
    assert (state.balance, state.lifetime_earned) == (151, 151)
    assert snapshots(outputs)[-1].balance == 151
    assert snapshots(outputs)[-1].lifetime_earned == 151
    assert state.boosts == {ORDER_ID: Boost(D("1.5"), 101, AT)}


@pytest.mark.parametrize(
    ("multiplier", "base", "points"),
    [
        ("1.25", 3, 3),  # 3.75: floored, never rounded up
        ("1.99", 1, 1),  # 1.99
        ("1.01", 99, 99),  # 99.99
        ("1.5", 1, 1),  # 1.5
        ("2", 7, 14),
        ("10", 1, 10),
        ("2.25", 4, 9),  # exact
    ],
)
def test_multiplied_points_are_floored_never_rounded_up(
    multiplier: str, base: int, points: int
) -> None:
    state, outputs = feed([tier(multiplier), earned(base)])

    assert only(outputs).points == points
    assert state.balance == points


@pytest.mark.parametrize("change", [bonus(40), tier_bonus(40)], ids=["referral", "tier"])
def test_bonuses_are_never_multiplied(change: PointsChange) -> None:
    state, outputs = feed([tier("2"), change])

    entry = only(outputs)
    assert (entry.kind, entry.points, entry.multiplier) == (Kind.BONUS, 40, None)
    assert (state.balance, state.lifetime_earned) == (40, 40)
    assert state.boosts is None


@pytest.mark.parametrize("points", [40, -15])
def test_adjustments_are_never_multiplied(points: int) -> None:
    state, outputs = feed([tier("2"), earned(50), adjustment("adj-1", points, at=day(1))])

    outcome = adjusted(outputs)[0]
    assert outcome.entry is not None
    assert (outcome.entry.points, outcome.entry.multiplier) == (abs(points), None)
    assert state.balance == 100 + points


def test_the_multiplier_applies_only_from_the_tier_change_onward() -> None:
    state, outputs = feed(
        [
            earned(100, order_id=ORDER_ID, at=AT),
            tier("2", at=day(1)),
            earned(100, order_id=OTHER_ORDER, at=day(2)),
        ]
    )

    assert [(e.points, e.multiplier) for e in entries(outputs)] == [(100, None), (200, D(2))]
    assert state.balance == 300
    assert state.boosts == {OTHER_ORDER: Boost(D(2), 100, day(2))}


def test_a_tier_change_alone_writes_no_entry_and_no_snapshot() -> None:
    state, outputs = apply_customer(None, tier("2"))

    assert outputs == []
    assert state is not None
    assert state.multiplier == D(2)


# ---------------------------------------------------------------------------- revisions


@pytest.mark.parametrize("stale", [1, 2], ids=["older", "same"])
def test_a_tier_change_of_an_older_or_the_same_revision_is_ignored(stale: int) -> None:
    newer = tier("3", 2, name="platinum")

    state, outputs = feed([newer, tier("1.5", stale, at=day(1), name="silver"), earned(100)])

    assert state.tier == newer
    assert state.multiplier == D(3)
    assert only(outputs).points == 300


def test_a_tier_change_of_a_higher_revision_replaces_the_multiplier() -> None:
    state, outputs = feed([tier("1.5", 1), tier("2", 2, name="platinum"), earned(100)])

    assert state.tier is not None
    assert (state.tier.revision, state.tier.tier) == (2, "platinum")
    assert only(outputs).points == 200


def test_a_higher_revision_back_to_one_stops_multiplying() -> None:
    state, outputs = feed([tier("2", 1), tier("1", 2, name=None), earned(100)])

    assert (only(outputs).points, only(outputs).multiplier) == (100, None)
    assert state.boosts is None


# ---------------------------------------------------------------------------- reversals


def test_partial_refunds_of_a_multiplied_order_take_back_exactly_its_points() -> None:
    state, _ = feed([tier("1.5"), earned(100)])
    assert state.balance == 150

    state, outputs = feed(
        [
            refunded(33, 1, at=day(1)),
            refunded(33, 2, at=day(2)),
            refunded(34, 3, at=day(3)),
        ],
        state,
    )

    # Each step: floor(left before x 1.5) - floor(left after x 1.5): 150-100, 100-51, 51-0.
    # (Flooring each refund on its own would take back 49 + 49 + 51 = 149.)
    assert [(e.points, e.multiplier) for e in entries(outputs)] == [
        (50, D("1.5")),
        (49, D("1.5")),
        (51, D("1.5")),
    ]
    assert (state.balance, state.lifetime_earned) == (0, 0)
    assert state.boosts is None


def test_a_partial_refund_leaves_the_rest_of_the_base_in_the_boost() -> None:
    state, outputs = feed([tier("1.5"), earned(100), refunded(33, 1, at=day(1))])

    assert points_of(outputs, Kind.REVERSE) == [50]
    assert state.boosts == {ORDER_ID: Boost(D("1.5"), 67, AT)}


def test_a_cancellation_after_a_partial_refund_takes_back_the_rest_multiplied() -> None:
    state, outputs = feed(
        [tier("1.5"), earned(101), refunded(33, 1, at=day(1)), cancelled(68, at=day(2))]
    )

    # 151 earned; 151 - floor(68 x 1.5) = 49; then floor(68 x 1.5) = 102.
    assert points_of(outputs, Kind.EARN) == [151]
    assert points_of(outputs, Kind.REVERSE) == [49, 102]
    assert (state.balance, state.lifetime_earned, state.boosts) == (0, 0, None)


def test_a_redelivered_refund_does_not_shrink_the_boost_twice() -> None:
    state, outputs = feed(
        [tier("1.5"), earned(100), refunded(33, 1, at=day(1)), refunded(33, 1, at=day(1))]
    )

    assert points_of(outputs, Kind.REVERSE) == [50]
    assert state.boosts == {ORDER_ID: Boost(D("1.5"), 67, AT)}
    assert state.balance == 100


def test_a_later_tier_change_does_not_change_how_an_earlier_order_is_reversed() -> None:
    state, outputs = feed(
        [
            tier("1.5", 1),
            earned(100),
            tier("3", 2, at=day(1)),
            refunded(100, 1, at=day(2)),
        ]
    )

    reversal = entries(outputs)[-1]
    assert (reversal.kind, reversal.points, reversal.multiplier) == (Kind.REVERSE, 150, D("1.5"))
    assert state.balance == 0


def test_an_order_earned_at_one_x_reverses_base_points_after_a_promotion() -> None:
    state, outputs = feed(
        [earned(100), tier("2", at=day(1)), refunded(40, 1, at=day(2))],
    )

    reversal = entries(outputs)[-1]
    assert (reversal.kind, reversal.points, reversal.multiplier) == (Kind.REVERSE, 40, None)
    assert (state.balance, state.lifetime_earned) == (60, 60)


def test_reversing_one_multiplied_order_leaves_the_other_orders_boost() -> None:
    state, _ = feed(
        [
            tier("2"),
            earned(10, order_id=ORDER_ID),
            earned(20, order_id=OTHER_ORDER, at=day(1)),
            cancelled(10, order_id=ORDER_ID, at=day(2)),
        ]
    )

    assert state.boosts == {OTHER_ORDER: Boost(D(2), 20, day(1))}
    assert state.balance == 40


# ---------------------------------------------------------------------------- pending


def test_a_pending_multiplied_earn_holds_and_releases_the_multiplied_points() -> None:
    state, outputs = feed([tier("1.5"), earned(101, pending_days=14)])

    entry = only(outputs)
    assert (entry.kind, entry.points, entry.spendable_delta, entry.pending_delta) == (
        Kind.EARN,
        151,
        0,
        151,
    )
    assert entry.multiplier == D("1.5")
    assert (state.balance, state.pending, state.lifetime_earned) == (0, 151, 151)
    assert state.held is not None
    assert state.held[f"order:{ORDER_ID}"].points == 151

    state, outputs = feed([tick(day(14))], state)

    release = only(outputs)
    assert (release.kind, release.points, release.spendable_delta) == (Kind.RELEASE, 151, 151)
    assert (state.balance, state.pending, state.held) == (151, 0, None)


def test_a_refund_before_release_takes_the_multiplied_points_from_pending() -> None:
    state, outputs = feed(
        [tier("2"), earned(100, pending_days=14), refunded(100, 1, at=day(1))],
    )

    reversal = entries(outputs)[-1]
    assert (reversal.points, reversal.spendable_delta, reversal.pending_delta) == (200, 0, -200)
    assert (state.balance, state.pending, state.held, state.boosts) == (0, 0, None, None)


# ---------------------------------------------------------------------------- memory


def test_boosts_older_than_the_memory_are_forgotten_at_the_next_multiplied_earn() -> None:
    state, _ = feed(
        [
            tier("2"),
            earned(100, order_id=ORDER_ID, at=AT),
            earned(10, order_id=OTHER_ORDER, at=AT + BOOST_MEMORY),
        ]
    )

    assert state.boosts == {OTHER_ORDER: Boost(D(2), 10, AT + BOOST_MEMORY)}


def test_a_boost_just_younger_than_the_memory_is_kept() -> None:
    just_before = AT + BOOST_MEMORY - timedelta(microseconds=1)

    state, _ = feed(
        [
            tier("2"),
            earned(100, order_id=ORDER_ID, at=AT),
            earned(10, order_id=OTHER_ORDER, at=just_before),
        ]
    )

    assert state.boosts is not None
    assert set(state.boosts) == {ORDER_ID, OTHER_ORDER}


def test_a_refund_of_a_forgotten_order_reverses_the_base_points_it_names() -> None:
    later = AT + BOOST_MEMORY + timedelta(days=1)
    state, outputs = feed(
        [
            tier("2"),
            earned(100, order_id=ORDER_ID, at=AT),
            earned(10, order_id=OTHER_ORDER, at=later),
            refunded(100, 1, order_id=ORDER_ID, at=later + timedelta(hours=1)),
        ]
    )

    reversal = entries(outputs)[-1]
    assert (reversal.kind, reversal.points, reversal.multiplier) == (Kind.REVERSE, 100, None)
    assert state.balance == 200 + 20 - 100


# ---------------------------------------------------------------------------- command codec


@pytest.mark.parametrize("name", ["gold", None])
@pytest.mark.parametrize("multiplier", ["1", "1.5", "1.50", "2.25", "10"])
def test_a_tier_change_round_trips(multiplier: str, name: str | None) -> None:
    change = tier(multiplier, 7, name=name)

    raw = encode_tier(change)
    decoded = decode_command(raw)

    assert decoded == change
    assert isinstance(decoded, TierChange)
    assert str(decoded.multiplier) == multiplier  # the same digits back
    body = body_of(raw)
    assert body["type"] == TIER
    assert body["multiplier"] == multiplier  # a string, not a float


def number_multiplier(number: str) -> bytes:
    """A tier record whose multiplier is the JSON number `number`, not a string."""
    raw = encode_tier(tier("1.5"))
    assert b'"multiplier":"1.5"' in raw
    return raw.replace(b'"multiplier":"1.5"', b'"multiplier":' + number.encode())


@pytest.mark.parametrize(("number", "multiplier"), [("1.5", D("1.5")), ("2", D(2))])
def test_a_tier_multiplier_written_as_a_json_number_is_read_exactly(
    number: str, multiplier: Decimal
) -> None:
    raw = number_multiplier(number)

    decoded = decode_command(raw)

    assert isinstance(decoded, TierChange)
    assert decoded.multiplier == multiplier


@pytest.mark.parametrize("number", ["0.5", "0", "11", "10.01", "1.234"])
def test_a_tier_multiplier_written_as_an_out_of_range_json_number_is_refused(number: str) -> None:
    raw = number_multiplier(number)

    with pytest.raises(InvalidEventError, match="multiplier"):
        decode_command(raw)


def tier_body(**changes: Any) -> dict[str, Any]:
    return {**body_of(encode_tier(tier("1.5"))), **changes}


@pytest.mark.parametrize("revision", [0, -1, True, False, "1", 1.5, None, 2**63])
def test_a_tier_change_with_a_bad_revision_is_refused(revision: object) -> None:
    with pytest.raises(InvalidEventError, match="revision"):
        decode_command(record(tier_body(revision=revision)))


@pytest.mark.parametrize(
    "multiplier",
    ["0.5", "0", "0.99", "11", "10.01", "1.234", "-1.5", "1e1", "01.5", "", "abc", None, True],
)
def test_a_tier_change_with_a_bad_multiplier_is_refused(multiplier: object) -> None:
    with pytest.raises(InvalidEventError, match="multiplier"):
        decode_command(record(tier_body(multiplier=multiplier)))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"merchant_id": None}, "merchant_id"),
        ({"merchant_id": "not-a-uuid"}, "merchant_id is malformed"),
        ({"customer": -1}, "customer"),
        ({"at": None}, "at is missing"),
        ({"tier": ""}, "tier"),
        ({"tier": 3}, "tier"),
    ],
)
def test_a_malformed_tier_change_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEventError, match=reason):
        decode_command(record(tier_body(**changes)))


def test_a_tier_change_without_merchant_id_is_refused() -> None:
    body = tier_body()
    del body["merchant_id"]

    with pytest.raises(InvalidEventError, match="merchant_id"):
        decode_command(record(body))


ORDER_KEYS = ["earn", "refund:7", "cancel"]
AMOUNTS = [D("12.50"), D("0.00000001"), D("0"), D("999999999999999.99999999")]


def with_amount(key: str, amount: Decimal | None) -> PointsChange:
    kind = Kind.EARN if key == "earn" else Kind.REVERSE
    return replace(order_change(key, kind), amount=amount)


@pytest.mark.parametrize("amount", AMOUNTS, ids=str)
def test_an_order_change_writes_its_amount_as_plain_decimal_text(amount: Decimal) -> None:
    body = body_of(encode_change(with_amount("earn", amount)))

    assert body["amount"] == format(amount, "f")
    assert "E" not in body["amount"]


def test_a_tiny_amount_is_written_without_an_exponent() -> None:
    body = body_of(encode_change(with_amount("earn", D("0.00000001"))))

    assert str(D("0.00000001")) == "1E-8"  # what str() would have written
    assert body["amount"] == "0.00000001"


@pytest.mark.parametrize("key", ORDER_KEYS)
@pytest.mark.parametrize("amount", AMOUNTS, ids=str)
def test_an_order_change_amount_round_trips_as_a_decimal(key: str, amount: Decimal) -> None:
    change = with_amount(key, amount)

    decoded = decode_command(encode_change(change))

    assert isinstance(decoded, PointsChange)
    assert decoded.amount == amount
    assert decoded.amount is not None
    assert format(decoded.amount, "f") == format(amount, "f")  # the same digits
    assert decoded == change


@pytest.mark.parametrize("key", ORDER_KEYS)
def test_an_order_change_without_amount_leaves_it_out_and_decodes_to_none(key: str) -> None:
    change = with_amount(key, None)

    raw = encode_change(change)
    decoded = decode_command(raw)

    assert "amount" not in body_of(raw)
    assert isinstance(decoded, PointsChange)
    assert decoded.amount is None


@pytest.mark.parametrize("source", [Source.TIER, Source.REFERRAL])
def test_an_amount_on_a_change_of_another_source_is_refused(source: Source) -> None:
    body = {**body_of(encode_change(other_change(source))), "amount": "12.50"}

    with pytest.raises(InvalidEventError, match="amount"):
        decode_command(record(body))


@pytest.mark.parametrize("amount", ["-1.00", "1e3", "abc", "", True, "1.123456789"])
def test_a_malformed_amount_is_refused(amount: object) -> None:
    body = {**body_of(encode_change(with_amount("earn", None))), "amount": amount}

    with pytest.raises(InvalidEventError, match="amount"):
        decode_command(record(body))


# ---------------------------------------------------------------------------- state rows


def tiered_state() -> CustomerState:
    state, _ = feed(
        [
            tier("1.50", 3, name="gold"),
            earned(100, order_id=ORDER_ID),
            earned(7, order_id=OTHER_ORDER, at=day(2)),
            refunded(33, 1, order_id=ORDER_ID, at=day(3)),
        ]
    )
    return state


def test_a_customer_state_with_a_tier_and_boosts_comes_back_from_its_row() -> None:
    state = tiered_state()
    assert state.tier is not None
    assert state.boosts == {
        ORDER_ID: Boost(D("1.50"), 67, AT),
        OTHER_ORDER: Boost(D("1.50"), 7, day(2)),
    }

    back = customer_from_row(pickle.loads(pickle.dumps(customer_row(state))))  # noqa: S301

    assert back == state
    assert back.tier == state.tier
    assert back.boosts == state.boosts
    assert back.tier is not None
    assert str(back.tier.multiplier) == "1.50"  # the same digits


def test_a_state_from_its_row_goes_on_reversing_multiplied_points() -> None:
    state = customer_from_row(customer_row(tiered_state()))

    state, outputs = feed([cancelled(67, order_id=ORDER_ID, at=day(4))], state)

    assert only(outputs).points == 100  # floor(67 x 1.5)
    assert state.boosts == {OTHER_ORDER: Boost(D("1.50"), 7, day(2))}


def test_a_row_from_before_tiers_loads_without_tier_and_boosts() -> None:
    state = tiered_state()
    old = customer_row(state)[:18]

    back = customer_from_row(pickle.loads(pickle.dumps(old)))  # noqa: S301

    assert (back.tier, back.boosts) == (None, None)
    assert back.multiplier == D(1)
    assert back == replace(state, tier=None, boosts=None)


# ---------------------------------------------------------------------------- order amounts


def test_an_earn_carries_its_earn_basis_as_amount() -> None:
    _, outputs = orders.run([orders.paid(subtotal="100.00", ppu="2")])

    (earn,) = orders.earns(outputs)
    assert (earn.points, earn.amount) == (200, D("100.00"))


def test_an_earn_of_a_taxes_included_order_carries_the_basis_net_of_tax() -> None:
    _, outputs = orders.run([orders.paid(subtotal="120.00", tax="20.00", taxes_included=True)])

    (earn,) = orders.earns(outputs)
    assert earn.amount == D("100.00")


def test_a_refund_reversal_carries_the_refund_basis_as_amount() -> None:
    _, outputs = orders.run([orders.paid(subtotal="200.00"), orders.refunded(11, "50.00", "10.00")])

    (reversal,) = orders.reversals(outputs)
    assert (reversal.source, reversal.points, reversal.amount) == (Source.REFUND, 60, D("60.00"))


def test_a_refund_reversal_of_a_taxes_included_order_carries_the_basis_net_of_tax() -> None:
    _, outputs = orders.run(
        [
            orders.paid(subtotal="120.00", tax="20.00", taxes_included=True),
            orders.refunded(11, ("60.00", "10.00")),
        ]
    )

    (reversal,) = orders.reversals(outputs)
    assert reversal.amount == D("50.00")


def test_a_refund_received_before_the_earn_carries_its_basis_once_the_order_earns() -> None:
    _, outputs = orders.run([orders.refunded(11, "25.00"), orders.paid(subtotal="100.00")])

    assert [(c.kind, c.amount) for c in orders.changes(outputs)] == [
        (Kind.EARN, D("100.00")),
        (Kind.REVERSE, D("25.00")),
    ]


def test_a_cancellation_carries_the_basis_less_what_was_refunded() -> None:
    _, outputs = orders.run(
        [orders.paid(subtotal="200.00"), orders.refunded(11, "50.00"), orders.cancelled()]
    )

    cancel = orders.reversals(outputs)[-1]
    assert (cancel.source, cancel.points, cancel.amount) == (Source.CANCEL, 150, D("150.00"))


def test_a_cancellation_without_refunds_carries_the_whole_basis() -> None:
    _, outputs = orders.run([orders.paid(subtotal="200.00"), orders.cancelled()])

    (cancel,) = orders.reversals(outputs)
    assert (cancel.source, cancel.amount) == (Source.CANCEL, D("200.00"))
