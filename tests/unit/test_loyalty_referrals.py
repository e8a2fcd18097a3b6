"""The referral rules, pure: the friend's and the code's states driven by hand, with explicit
times, including orders arriving out of order and the two states talking through their logs."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.referral_records import RANK
from loyalty.commands import decode_command, encode_change
from loyalty.customers import BalanceSnapshot, CustomerState, apply_customer
from loyalty.ledger import Kind, PointsChange, Source
from loyalty.referral_fraud import IP_LIMIT, Block, Identity
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import (
    MAX_IPS,
    Claim,
    CodeCreated,
    CodeState,
    FriendOrder,
    FriendState,
    Reason,
    Referral,
    Status,
    Verdict,
    apply_code,
    apply_friend,
    referral_id,
)

SHOP = "ref.myshopify.com"
MERCHANT = "0b7c6a1e-1111-4222-8333-444455556666"
CODE = "ABCD2345"
ADVOCATE = 100
FRIEND = 200
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
TERMS = ReferralTerms(advocate_points=500, friend_points=100, min_subtotal=Decimal("20.00"))


def order(
    order_id: int = 1,
    *,
    placed: timedelta = timedelta(0),
    paid: bool = True,
    cancelled: bool = False,
    net: str = "50.00",
    fully_refunded: bool = False,
    code: str | None = CODE,
    friend: int = FRIEND,
    ip: str | None = "h1:ip",
    terms: ReferralTerms = TERMS,
    at: timedelta = timedelta(minutes=1),
    email: str | None = "h1:friend-email",
) -> FriendOrder:
    return FriendOrder(
        shop=SHOP,
        merchant_id=MERCHANT,
        friend=friend,
        order_id=order_id,
        placed_at=T0 + placed,
        at=T0 + placed + at,
        paid=paid,
        cancelled=cancelled,
        net_subtotal=Decimal(net),
        fully_refunded=fully_refunded,
        code=code,
        identity=Identity(friend, email_hash=email),
        ip_hash=ip,
        terms=terms,
    )


def created(advocate: Identity | None = None) -> CodeCreated:
    return CodeCreated(MERCHANT, CODE, advocate or Identity(ADVOCATE, email_hash="h1:adv"), T0)


class Both:
    """A friend's and a code's states wired through their logs, as the flow does."""

    def __init__(self, *, with_code: bool = True) -> None:
        self.friends: dict[int, FriendState] = {}
        self.code: CodeState | None = None
        if with_code:
            self.code, _ = apply_code(None, created())
        self.records: list[Referral] = []
        self.changes: list[PointsChange] = []

    def send(self, o: FriendOrder) -> None:
        """Deliver an order, then every claim and verdict it leads to, each after the outputs
        that came before it (the logs keep that order)."""
        log: deque[FriendOrder | Claim | Verdict] = deque([o])
        while log:
            item = log.popleft()
            if isinstance(item, Claim):
                self.code, verdicts = apply_code(self.code, item)
                log.extend(verdicts)
                continue
            state, outputs = apply_friend(self.friends.get(item.friend), item)
            self.friends[item.friend] = state
            for out in outputs:
                if isinstance(out, Claim):
                    log.append(out)
                elif isinstance(out, Referral):
                    self.records.append(out)
                else:
                    self.changes.append(out)

    def last(self) -> Referral:
        return self.records[-1]

    def points(self) -> dict[int, int]:
        """Each customer's net referral points (bonuses less reversals)."""
        totals: dict[int, int] = {}
        for c in self.changes:
            sign = -1 if c.kind == Kind.REVERSE else 1
            totals[c.customer] = totals.get(c.customer, 0) + sign * c.points
        return totals


def test_a_friends_first_paid_order_with_a_code_rewards_both_once() -> None:
    run = Both()
    run.send(order())
    run.send(order())  # a duplicate delivery
    run.send(replace(order(), at=T0 + timedelta(hours=1)))  # orders/updated

    assert [r.status for r in run.records] == [Status.PENDING, Status.COMPLETED]
    done = run.last()
    assert (done.advocate, done.friend, done.order_id, done.code) == (ADVOCATE, FRIEND, 1, CODE)
    assert done.referral_id == referral_id(MERCHANT, FRIEND, 1)
    assert run.points() == {ADVOCATE: 500, FRIEND: 100}
    assert {(c.source, c.kind, c.source_id) for c in run.changes} == {
        (Source.REFERRAL, Kind.BONUS, f"{done.referral_id}:advocate"),
        (Source.REFERRAL, Kind.BONUS, f"{done.referral_id}:friend"),
    }
    assert all(c.terms.release_at is None for c in run.changes)


def test_no_friend_reward_when_the_merchant_gives_none() -> None:
    run = Both()
    run.send(order(terms=replace(TERMS, friend_points=0)))

    assert run.points() == {ADVOCATE: 500}


def test_review_days_hold_both_rewards_pending_until_then() -> None:
    run = Both()
    run.send(order(terms=replace(TERMS, review_days=14)))

    release = T0 + timedelta(minutes=1) + timedelta(days=14)
    assert {c.terms.release_at for c in run.changes} == {release}
    assert run.last().release_at == release


def test_an_order_is_not_claimed_before_it_is_paid() -> None:
    run = Both()
    run.send(order(paid=False))
    assert run.records == []

    run.send(order(paid=True))
    assert run.last().status == Status.COMPLETED


@pytest.mark.parametrize(
    ("advocate", "reason"),
    [
        (Identity(FRIEND), Reason.SELF_REFERRAL),  # the same customer
        (Identity(ADVOCATE, email_hash="h1:friend-email"), Reason.SELF_REFERRAL),
        (Identity(ADVOCATE, name_hash="h1:n"), None),  # the friend's order names no name
    ],
)
def test_self_referrals_are_blocked_and_never_rewarded(
    advocate: Identity, reason: Reason | None
) -> None:
    run = Both(with_code=False)
    run.code, _ = apply_code(None, created(advocate))
    run.send(order())

    if reason is None:
        assert run.last().status == Status.COMPLETED
    else:
        assert (run.last().status, run.last().reason) == (Status.BLOCKED, reason)
        assert run.changes == []


def test_an_order_that_is_not_the_friends_first_paid_one_is_blocked() -> None:
    run = Both()
    run.send(order(1, code=None))  # the friend's first order, no code
    run.send(order(2, placed=timedelta(days=3)))

    assert (run.last().status, run.last().reason) == (Status.BLOCKED, Reason.NOT_FIRST_ORDER)
    assert run.changes == []


def test_an_earlier_paid_order_arriving_late_revokes_the_reward_once() -> None:
    run = Both()
    run.send(order(2, placed=timedelta(days=3)))  # the second order arrives first
    assert run.last().status == Status.COMPLETED

    run.send(order(1, code=None))  # the real first order, delivered late
    run.send(order(1, code=None))  # and again

    assert (run.last().status, run.last().reason) == (Status.REVOKED, Reason.NOT_FIRST_ORDER)
    assert run.points() == {ADVOCATE: 0, FRIEND: 0}
    assert len(run.changes) == 4


def test_a_later_referred_order_is_blocked_as_already_referred_once() -> None:
    run = Both()
    run.send(order(1))
    run.send(order(2, placed=timedelta(days=3)))
    run.send(order(2, placed=timedelta(days=3)))  # repeated: no second record

    assert [(r.order_id, r.status, r.reason) for r in run.records] == [
        (1, Status.PENDING, None),
        (1, Status.COMPLETED, None),
        (2, Status.BLOCKED, Reason.ALREADY_REFERRED),
    ]
    assert run.points() == {ADVOCATE: 500, FRIEND: 100}


def test_a_subtotal_below_the_minimum_does_not_qualify() -> None:
    run = Both()
    run.send(order(net="19.99"))

    assert (run.last().status, run.last().reason) == (Status.BLOCKED, Reason.BELOW_MINIMUM)
    assert run.changes == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"cancelled": True}, Reason.CANCELLED),
        ({"fully_refunded": True, "net": "0.00"}, Reason.REFUNDED),
        ({"net": "10.00"}, Reason.BELOW_MINIMUM),  # partly refunded below the minimum
    ],
)
def test_a_void_qualifying_order_revokes_both_rewards_exactly_once(
    change: dict[str, object], reason: Reason
) -> None:
    run = Both()
    run.send(order())
    voided = order(**change)  # type: ignore[arg-type]
    run.send(voided)
    run.send(voided)  # a repeated webhook

    assert (run.last().status, run.last().reason) == (Status.REVOKED, reason)
    assert run.points() == {ADVOCATE: 0, FRIEND: 0}
    reversals = [c for c in run.changes if c.kind == Kind.REVERSE]
    assert len(reversals) == 2
    assert {c.source_id for c in reversals} == {c.source_id for c in run.changes[:2]}


def test_a_partial_refund_above_the_minimum_keeps_the_reward() -> None:
    run = Both()
    run.send(order())
    run.send(order(net="25.00"))

    assert run.last().status == Status.COMPLETED
    assert run.points() == {ADVOCATE: 500, FRIEND: 100}


def test_an_unknown_code_is_not_a_referral_and_keeps_no_code_state() -> None:
    run = Both(with_code=False)
    run.send(order())

    assert (run.last().status, run.last().reason) == (Status.BLOCKED, Reason.UNKNOWN_CODE)
    assert run.code is None  # a guessed code keeps no state
    run.code, _ = apply_code(None, created())
    run.send(order(2, placed=timedelta(days=1)))  # a later order, with the code now known
    assert (run.last().status, run.last().reason) == (Status.BLOCKED, Reason.NOT_FIRST_ORDER)
    assert run.changes == []


def test_an_order_cancelled_while_its_claim_was_asked_is_not_rewarded() -> None:
    state, outputs = apply_friend(None, order())
    claim = outputs[0]
    assert isinstance(claim, Claim)
    state, _ = apply_friend(state, order(cancelled=True))
    _, verdicts = apply_code(apply_code(None, created())[0], claim)

    state, decided = apply_friend(state, verdicts[0])

    assert [(r.status, r.reason) for r in decided if isinstance(r, Referral)] == [
        (Status.BLOCKED, Reason.CANCELLED)
    ]
    assert not [c for c in decided if isinstance(c, PointsChange)]
    _, repeated = apply_friend(state, verdicts[0])  # the verdict replayed
    assert repeated == []


def test_the_tenth_referral_from_one_ip_within_seven_days_is_blocked() -> None:
    run = Both()
    for n in range(IP_LIMIT):
        run.send(order(n + 1, friend=1000 + n, placed=timedelta(hours=n)))
    statuses = [r for r in run.records if r.status != Status.PENDING]

    assert [r.reason for r in statuses] == [None] * (IP_LIMIT - 1) + [Reason.IP_VELOCITY]
    fresh = order(99, friend=5000, placed=timedelta(days=8), ip="h1:ip")
    run.send(fresh)  # a week later the IP is trusted again
    assert run.last().status == Status.COMPLETED


def test_a_code_remembers_a_bounded_number_of_ips() -> None:
    code, _ = apply_code(None, created())
    assert code is not None
    for n in range(MAX_IPS + 10):
        claim = Claim(MERCHANT, CODE, f"r{n}", Identity(1000 + n), n, T0, f"h1:ip{n}")
        code, _ = apply_code(code, claim)
    assert code is not None
    assert len(code.ips) == MAX_IPS
    assert "h1:ip0" not in code.ips


def test_a_code_keeps_its_first_advocate() -> None:
    code, _ = apply_code(None, created())
    code, _ = apply_code(code, created(Identity(999)))
    assert code is not None
    assert code.advocate == Identity(ADVOCATE, email_hash="h1:adv")
    claim = Claim(MERCHANT, CODE, "r", Identity(FRIEND), 1, T0, None)
    _, (verdict,) = apply_code(code, claim)
    assert verdict == Verdict(MERCHANT, FRIEND, "r", ADVOCATE, None)


def test_a_later_announcement_completes_what_the_code_knows_of_its_advocate() -> None:
    code, _ = apply_code(None, created(Identity(ADVOCATE, email_hash="h1:adv")))
    # The advocate's first order has since given Core their name and address.
    later = Identity(ADVOCATE, "h1:other", "h1:name", frozenset({"h1:home"}))
    code, _ = apply_code(code, created(later))
    assert code is not None
    assert code.advocate == Identity(ADVOCATE, "h1:adv", "h1:name", frozenset({"h1:home"}))
    same_home = Claim(
        MERCHANT, CODE, "r", Identity(FRIEND, address_hashes=frozenset({"h1:home"})), 1, T0, None
    )

    _, (verdict,) = apply_code(code, same_home)

    assert verdict.block == Block.SELF_REFERRAL


def test_a_blocked_verdict_names_its_check() -> None:
    state, (claim, _pending) = apply_friend(None, order())
    assert isinstance(claim, Claim)
    verdict = Verdict(MERCHANT, FRIEND, claim.referral_id, ADVOCATE, Block.IP_VELOCITY)

    _, (record,) = apply_friend(state, verdict)

    assert isinstance(record, Referral)
    assert (record.status, record.reason, record.advocate) == (
        Status.BLOCKED,
        Reason.IP_VELOCITY,
        ADVOCATE,
    )


@pytest.mark.parametrize("review_days", [0, 14])
def test_rewards_and_reversals_are_points_commands_the_customer_stage_applies(
    review_days: int,
) -> None:
    run = Both()
    run.send(order(terms=replace(TERMS, review_days=review_days)))
    run.send(order(cancelled=True, at=timedelta(days=2)))
    balances: dict[int, tuple[int, int]] = {}
    states: dict[int, CustomerState | None] = {}

    for change in run.changes:
        decoded = decode_command(encode_change(change))
        assert decoded == change
        state, outputs = apply_customer(states.get(change.customer), decoded)
        states[change.customer] = state
        snapshot = [o for o in outputs if isinstance(o, BalanceSnapshot)][-1]
        balances[change.customer] = (snapshot.balance, snapshot.pending)
        if change.kind == Kind.BONUS:
            expected = (0, change.points) if review_days else (change.points, 0)
            assert balances[change.customer] == expected

    assert balances == {ADVOCATE: (0, 0), FRIEND: (0, 0)}


# A friend's order's life: (order id, day placed, names the code, net subtotal, then cancelled).
ORDER_LIVES = st.lists(
    st.tuples(
        st.integers(1, 4),
        st.integers(0, 5),
        st.booleans(),
        st.sampled_from(["5.00", "20.00", "80.00"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda life: life[0],
)


@settings(max_examples=300, deadline=None)
@given(
    lives=st.dictionaries(st.integers(1, 3), ORDER_LIVES, min_size=1, max_size=3),
    seed=st.randoms(use_true_random=False),
)
def test_any_delivery_order_ends_with_the_rules_rewards(
    lives: dict[int, list[tuple[int, int, bool, str, bool]]], seed: random.Random
) -> None:
    """Deliveries shuffled and repeated: each friend's rewards stand exactly when the friend's
    first paid order names the code, qualifies and still stands, and only then."""
    deliveries: list[FriendOrder] = []
    for friend, orders in lives.items():
        for order_id, day, named, net, cancelled in orders:
            kwargs = {
                "friend": friend,
                "placed": timedelta(days=day),
                "code": CODE if named else None,
                "net": net,
                "ip": f"h1:ip{friend}",
                "email": f"h1:email{friend}",
            }
            deliveries.append(order(order_id, **kwargs))  # type: ignore[arg-type]
            if cancelled:
                deliveries.append(order(order_id, cancelled=True, **kwargs))  # type: ignore[arg-type]
    deliveries += seed.sample(deliveries, len(deliveries) // 3)  # duplicates
    # Shuffled, but an order's cancellation never arrives before the order itself.
    seed.shuffle(deliveries)
    firsts: dict[tuple[int, int], int] = {}
    for n, d in enumerate(deliveries):
        firsts.setdefault((d.friend, d.order_id), n)
    deliveries.sort(key=lambda d: (firsts[(d.friend, d.order_id)], d.cancelled))

    run = Both()
    for d in deliveries:
        run.send(d)

    standing = 0
    for friend, orders in lives.items():
        first = min(orders, key=lambda life: (life[1], life[0]))
        _, _, named, net, cancelled = first
        stands = named and not cancelled and Decimal(net) >= TERMS.min_subtotal
        # Whatever arrived first, what stands at the end is what the friend's first paid
        # order gives (a referral on an order that only seemed first is revoked).
        expected = TERMS.friend_points if stands else 0
        assert run.points().get(friend, 0) == expected, (friend, orders)
        standing += stands
    assert run.points().get(ADVOCATE, 0) == TERMS.advocate_points * standing
    final = {r.referral_id: r for r in run.records}  # each referral's last record
    standing_friends = [r.friend for r in final.values() if r.status == Status.COMPLETED]
    assert len(standing_friends) == len(set(standing_friends)) == standing  # once per friend


def test_an_earlier_order_received_earlier_still_dates_its_revocation_after_the_referral() -> None:
    run = Both()
    # The referred order: placed on day 2, received an hour later.
    run.send(order(2, placed=timedelta(days=2), at=timedelta(hours=1)))
    completed = run.last()
    # The friend's first order, placed day 0 and received on day 1, read only now (it was on
    # another partition): it revokes the referral.
    run.send(order(1, placed=timedelta(0), code=None, at=timedelta(days=1)))

    revoked = run.last()
    assert (revoked.status, revoked.reason) == (Status.REVOKED, Reason.NOT_FIRST_ORDER)
    # Dated no earlier than the change it follows, so the status store (which keeps the
    # latest by date) takes it.
    assert revoked.at == completed.at
    assert RANK[revoked.status] > RANK[completed.status]


def test_a_claim_delivered_twice_counts_once_towards_the_ip_limit() -> None:
    code, _ = apply_code(None, created())
    claims = [
        Claim(MERCHANT, CODE, f"r{n}", Identity(1000 + n), n, T0 + timedelta(hours=n), "h1:ip")
        for n in range(IP_LIMIT - 1)
    ]
    for claim in claims:
        code, _ = apply_code(code, claim)
        code, _ = apply_code(code, claim)  # re-sent after a crash of the friend's state
    ninth = claims[-1]

    _, (again,) = apply_code(code, ninth)
    _, (tenth,) = apply_code(code, replace(ninth, referral_id="r-new", order_id=99))

    assert again.block is None  # as the first answer was
    assert tenth.block == Block.IP_VELOCITY
