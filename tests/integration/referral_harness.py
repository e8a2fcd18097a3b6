"""A referral scenario at scale for the real stack, and the oracle that says what it must give.

The scenario is a list of orders from people of two merchants, each order with its webhooks
(redacted as the API redacts them, with the merchant's points and referral terms in the
headers, stamped with the time the API received them) and what its referral must end as. It
runs in phases, so that what must happen before something else has happened before it:

1. history: a friend's first order without a code, a first referral, an unknown code, and
   nine referrals from one browser IP;
2. the bulk: more than 2,000 referred friends, every fraud case, duplicated deliveries; and
   friends whose earlier paid order comes right behind the referred one, on its partition;
3. refunds and cancellations (some before the review period ends, one after), a tenth
   referral from the IP more than seven days after the others, and friends' earlier paid
   orders arriving after their referred order was completed;
4. the clock job ticks, after every review period.

Phases, because some outcomes depend on the order in which records from different partitions
reach a keyed state: which referrals from one IP are the tenth and later depends on the order
the claims reach the code's state, and a friend's earlier order arriving after the referred one
supersedes it (a completed referral is revoked, a pending one blocked). Deciding the history
first makes every outcome here one the rules fix.

Out-of-order first orders (`_late_first_orders`): the earlier order is stamped before the
referred one (the API received it first) but reaches the flow after it: in a later phase, or in
the same phase right behind it on the same partition of shopify.orders. There the order stage
reads it just after the referred one (and, in one batch, runs it after it too: Bytewax runs a
batch's keys, shop:order, in key order, and its id is the higher), so it is on referral.friends
long before the code's verdict can be, which takes two more trips through Kafka.

The oracle is written from the rules as the issue states them, not from the flows' code: each
case says what its referral becomes; balances are order earns (whole points, rounded down),
rewards and their reversals; a reward is pending while its release time is after the latest
time the customer's commands (or a tick) carried. A change of a referral is never dated before
the change it follows. Events: one `referral.completed` per referral that was ever completed,
one `referral.revoked` per revoked one.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from loyalnest.topics import REFERRAL_COMPLETED, REFERRAL_REVOKED
from loyalty import ids
from loyalty.pii import Hasher, merchant_key, redact_order
from loyalty.policy import Policy
from loyalty.referral_codes import advocate_code
from loyalty.referral_fraud import Identity
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import CodeCreated, referral_id

BASE = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
TICK_AT = BASE + timedelta(days=25)  # after every review period
SECRETS_KEY = "referral-scale-test-secrets-key"
UNKNOWN_CODE = "ZZZZ2345"  # a code's shape, given to nobody
HISTORY, BULK, VOIDS, TICKS = 1, 2, 3, 4
DUPLICATE_SHARE = 0.2


@dataclass(frozen=True)
class Merchant:
    shop: str
    terms: ReferralTerms
    policy: Policy

    @property
    def merchant_id(self) -> str:
        return str(ids.merchant_id(self.shop))

    @property
    def hasher(self) -> Hasher:
        return Hasher(merchant_key(SECRETS_KEY, self.merchant_id))


# Rewards at once, and rewards pending for ten days; different points, minimums and rates.
SHOP_A = Merchant(
    "referrals-scale-a.myshopify.com",
    ReferralTerms(500, 100, Decimal("25.00"), 0),
    Policy(points_per_unit=Decimal(1)),
)
SHOP_B = Merchant(
    "referrals-scale-b.myshopify.com",
    ReferralTerms(300, 50, Decimal("30.00"), 10),
    Policy(points_per_unit=Decimal(2)),
)
MERCHANTS = (SHOP_A, SHOP_B)


@dataclass(frozen=True)
class Person:
    customer: int
    first: str
    last: str
    email: str
    address: dict[str, str]
    ip: str | None = None

    def identity(self, hasher: Hasher) -> Identity:
        """As the API tells the flow an advocate's identity (from the customers table)."""
        return Identity(
            self.customer,
            hasher.email(self.email),
            hasher.name(self.first, self.last),
            frozenset({hasher.address(self.address)}),
        )


def advocate(n: int) -> Person:
    return Person(
        n,
        f"Ava{n}",
        "Advocate",
        f"ava.{n}.advocate@gmail.com",
        {"address1": f"{n} Advocate Street", "city": "Lyon", "zip": "69001", "country_code": "FR"},
    )


def friend(n: int, ip: str | None = None) -> Person:
    return Person(
        n,
        f"Fern{n}",
        "Friend",
        f"fern{n}@example.com",
        {"address1": f"{n} Friend Lane", "city": "Oslo", "zip": "0150", "country_code": "NO"},
        ip if ip is not None else f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
    )


@dataclass(frozen=True)
class Event:
    """A refund (amount) or a cancellation (topic) of an order, received at `at`."""

    at: datetime
    phase: int
    refund: Decimal | None = None  # a refund of this subtotal; None: a cancellation
    refund_id: int = 0
    topic: str = "refunds/create"  # orders/cancelled or orders/updated for a cancellation


@dataclass(frozen=True)
class Revocation:
    """When a completed referral is revoked, and why."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What the order's referral ends as (before any revocation), and who the advocate is."""

    status: str  # completed or blocked
    reason: str | None = None
    advocate: int | None = None
    revoked_by: int | None = None  # index in Order.events of the event that revokes it
    revoke_reason: str | None = None


@dataclass
class Order:
    merchant: Merchant
    order_id: int
    buyer: Person
    subtotal: Decimal
    paid_at: datetime
    phase: int
    code: str | None = None  # as the friend typed it
    source: str = "discount"  # discount, note or landing: where the order names the code
    variants: bool = False  # orders/create (unpaid), orders/paid, orders/updated
    events: list[Event] = field(default_factory=list)
    outcome: Outcome | None = None  # None: names no code
    # The friend's earlier paid order, received after this one though stamped before it.
    earlier: Order | None = field(default=None, compare=False, repr=False)
    # Produced right behind this order's webhooks (same phase, same partition).
    behind: Order | None = field(default=None, compare=False, repr=False)
    partition: int | None = None  # of shopify.orders, when the order must be on a given one

    @property
    def key(self) -> str:
        return f"{self.merchant.merchant_id}:{self.buyer.customer}"

    @property
    def referral_id(self) -> str:
        return referral_id(self.merchant.merchant_id, self.buyer.customer, self.order_id)

    def revocation(self, phase: int) -> Revocation | None:
        """A completed referral is revoked by the event that voids its order, or by the
        friend's earlier paid order turning up (not_first_order): dated no earlier than its
        completion (a change is never dated before the one it follows)."""
        o = self.outcome
        if o is None or o.status != "completed":
            return None
        if o.revoked_by is not None:
            event = self.events[o.revoked_by]
            if event.phase <= phase:
                assert o.revoke_reason is not None
                return Revocation(max(event.at, self.paid_at), o.revoke_reason)
        e = self.earlier
        if e is not None and e.phase <= phase:
            assert e.phase > self.phase  # completed first: it arrived in a later phase
            return Revocation(max(e.paid_at, self.paid_at), "not_first_order")
        return None

    def decided_at(self, phase: int) -> datetime:
        """The time of the referral's latest change up to `phase`."""
        revocation = self.revocation(phase)
        if revocation is not None:
            return revocation.at
        e = self.earlier
        if e is not None and e.phase == self.phase:  # blocked while pending
            return max(e.paid_at, self.paid_at)
        return self.paid_at


@dataclass(frozen=True)
class Delivery:
    merchant: Merchant
    topic: str
    body: dict[str, Any]  # redacted, as the API produces it
    at: datetime  # when the API received it: the record's timestamp
    phase: int
    sent: datetime | None = None  # where it is produced in its phase; None: at `at`
    partition: int | None = None  # of shopify.orders; None: the key's

    @property
    def position(self) -> tuple[int, datetime]:
        return (self.phase, self.at if self.sent is None else self.sent)


@dataclass
class Scenario:
    orders: list[Order]
    codes: dict[tuple[str, int], str]  # (merchant id, advocate) -> code
    advocates: dict[tuple[str, int], Person]
    deliveries: list[Delivery]
    duplicates: int  # deliveries that are a second copy of another

    def order(self, order_id: int) -> Order:
        return next(o for o in self.orders if o.order_id == order_id)

    def code_records(self) -> list[CodeCreated]:
        return [
            CodeCreated(
                m,
                code,
                self.advocates[m, a].identity(_merchant(m).hasher),
                BASE - timedelta(days=1),
            )
            for (m, a), code in sorted(self.codes.items())
        ]

    def phase(self, phase: int) -> list[Delivery]:
        return [d for d in self.deliveries if d.phase == phase]

    def referred_friends(self) -> set[tuple[str, int]]:
        return {
            (o.merchant.merchant_id, o.buyer.customer) for o in self.orders if o.code is not None
        }


def _merchant(merchant_id: str) -> Merchant:
    return next(m for m in MERCHANTS if m.merchant_id == merchant_id)


# ------------------------------------------------------------------------------ building


def build(bulk_a: int = 1_200, bulk_b: int = 860, seed: int = 10) -> Scenario:
    rng = random.Random(seed)
    advocates = {
        (m.merchant_id, n): advocate(n)
        for m, count in ((SHOP_A, 60), (SHOP_B, 40))
        for n in range(1, count + 1)
    }
    codes = {(m, n): advocate_code(merchant_key(SECRETS_KEY, m), n) for (m, n) in sorted(advocates)}
    assert len(set(codes.values())) == len(codes)
    assert UNKNOWN_CODE not in codes.values()

    def code(m: Merchant, n: int) -> str:
        return codes[m.merchant_id, n]

    orders: list[Order] = []
    a, b = SHOP_A, SHOP_B
    a_ip_advocate = 60  # the code one browser IP refers its friends with (no other friends)
    shared_ip = "203.0.113.77"

    # 1. History.
    at = BASE + timedelta(days=1)
    orders.append(Order(a, 90_041, friend(9004), Decimal("35.00"), at, HISTORY))
    orders.append(
        Order(
            a,
            90_051,
            friend(9005),
            Decimal("35.00"),
            at + timedelta(seconds=10),
            HISTORY,
            UNKNOWN_CODE,
            outcome=Outcome("blocked", "unknown_code"),
        )
    )
    orders.append(
        Order(
            a,
            90_061,
            friend(9006),
            Decimal("45.00"),
            at + timedelta(seconds=20),
            HISTORY,
            code(a, 3),
            outcome=Outcome("completed", advocate=3),
        )
    )
    for i in range(9):  # nine referrals from one IP: the most a week allows
        orders.append(
            Order(
                a,
                91_000 + i,
                friend(9100 + i, shared_ip),
                Decimal("50.00"),
                at + timedelta(minutes=1 + i),
                HISTORY,
                code(a, a_ip_advocate),
                source=("discount", "note", "landing")[i % 3],
                variants=i % 2 == 0,
                outcome=Outcome("completed", advocate=a_ip_advocate),
            )
        )

    # 2. The bulk, and every fraud case.
    at = BASE + timedelta(days=2)
    step = timedelta(seconds=5)
    special: list[Order] = []
    for i in range(3):  # the tenth to twelfth referral from the IP within 7 days
        special.append(
            Order(
                a,
                91_100 + i,
                friend(9110 + i, shared_ip),
                Decimal("50.00"),
                at,
                BULK,
                code(a, a_ip_advocate),
                outcome=Outcome("blocked", "ip_velocity", advocate=a_ip_advocate),
            )
        )
    adv1 = advocates[a.merchant_id, 1]
    special.append(  # the advocate's own code
        Order(
            a,
            92_001,
            adv1,
            Decimal("70.00"),
            at,
            BULK,
            code(a, 1).lower(),
            outcome=Outcome("blocked", "self_referral", advocate=1),
        )
    )
    adv2 = advocates[a.merchant_id, 2]
    same_email = Person(
        9201,
        "Other",
        "Person",
        "AVA2ADVOCATE+promo@googlemail.com",
        friend(9201).address,
        "198.51.100.1",
    )
    same_name = Person(
        9202, " AVA4 ", "advocate", "someone.else@example.com", friend(9202).address, "198.51.100.2"
    )
    adv5 = advocates[a.merchant_id, 5]
    same_address = Person(
        9203,
        "Third",
        "Person",
        "third@example.com",
        {k: v.upper() for k, v in adv5.address.items()},
        "198.51.100.3",
    )
    for n, person, adv in (
        (92_011, same_email, adv2),
        (92_021, same_name, advocates[a.merchant_id, 4]),
        (92_031, same_address, adv5),
    ):
        special.append(
            Order(
                a,
                n,
                person,
                Decimal("60.00"),
                at,
                BULK,
                code(a, adv.customer),
                outcome=Outcome("blocked", "self_referral", advocate=adv.customer),
            )
        )
    special += [
        Order(  # a first order came before: this one cannot be a referral
            a,
            90_042,
            friend(9004),
            Decimal("55.00"),
            at,
            BULK,
            code(a, 7),
            outcome=Outcome("blocked", "not_first_order"),
        ),
        Order(  # the first (blocked) referral stands: not_first_order, not already_referred
            a,
            90_052,
            friend(9005),
            Decimal("55.00"),
            at,
            BULK,
            code(a, 8),
            source="note",
            outcome=Outcome("blocked", "not_first_order"),
        ),
        Order(  # referred before (by advocate 3): never again
            a,
            90_062,
            friend(9006),
            Decimal("65.00"),
            at,
            BULK,
            code(a, 9),
            source="landing",
            outcome=Outcome("blocked", "already_referred"),
        ),
        Order(
            a,
            92_041,
            friend(9204),
            Decimal("44.00"),
            at,
            BULK,
            UNKNOWN_CODE,
            outcome=Outcome("blocked", "unknown_code"),
        ),
        Order(
            a,
            92_051,
            friend(9205),
            Decimal("24.99"),
            at,
            BULK,
            code(a, 10),
            outcome=Outcome("blocked", "below_minimum"),
        ),
        Order(
            b,
            92_061,
            friend(9206),
            Decimal("29.99"),
            at,
            BULK,
            code(b, 10),
            variants=True,
            outcome=Outcome("blocked", "below_minimum"),
        ),
    ]
    special += _voids(a, b, code, at)
    bulk: list[Order] = []
    for i in range(bulk_a + bulk_b):
        m = a if i < bulk_a else b
        n = 10_000 + i
        adv_n = 1 + i % 59 if m is a else 1 + i % 40  # never the IP's advocate
        subtotal = Decimal(30 + (n * 7) % 90) + Decimal((n * 13) % 100) / 100
        bulk.append(
            Order(
                m,
                100_000 + i,
                friend(n),
                subtotal,
                at,
                BULK,
                code(m, adv_n),
                source=("discount", "note", "landing")[i % 3],
                variants=i % 4 == 0,
                outcome=Outcome("completed", advocate=adv_n),
            )
        )
    rest = special[3:] + bulk
    rng.shuffle(rest)
    phase2 = special[:3] + rest  # the IP's three first: placed early in the week
    for i, order in enumerate(phase2):
        order.paid_at = at + i * step
    orders += phase2
    orders += _late_first_orders(a, b, code, at + len(phase2) * step, step)

    # 3. Later: the IP's next referral falls outside the week of the first nine and the three.
    orders.append(
        Order(
            a,
            91_200,
            friend(9120, shared_ip),
            Decimal("50.00"),
            BASE + timedelta(days=9, hours=12),
            VOIDS,
            code(a, a_ip_advocate),
            outcome=Outcome("completed", advocate=a_ip_advocate),
        )
    )
    deliveries, duplicates = _deliveries(orders, rng)
    return Scenario(orders, codes, advocates, deliveries, duplicates)


def _voids(
    a: Merchant, b: Merchant, code: Callable[[Merchant, int], str], at: datetime
) -> list[Order]:
    """Completed referrals that refunds and cancellations revoke (or do not)."""
    early = BASE + timedelta(days=5)  # before shop B's review period ends
    late = BASE + timedelta(days=14)  # after it

    def void(
        m: Merchant,
        n: int,
        subtotal: str,
        adv: int,
        events: list[Event],
        by: int | None,
        why: str | None,
    ) -> Order:
        return Order(
            m,
            93_000 + n,
            friend(9300 + n),
            Decimal(subtotal),
            at,
            BULK,
            code(m, adv),
            events=events,
            outcome=Outcome("completed", advocate=adv, revoked_by=by, revoke_reason=why),
        )

    def refund(when: datetime, amount: str, refund_id: int) -> Event:
        return Event(when, VOIDS, Decimal(amount), refund_id)

    def cancel(when: datetime, topic: str = "orders/cancelled") -> Event:
        return Event(when, VOIDS, topic=topic)

    return [
        # Shop B (pending rewards): revoked before release...
        void(b, 1, "80.00", 11, [refund(early, "80.00", 1)], 0, "refunded"),
        void(
            b,
            2,
            "40.00",
            12,
            [refund(early + timedelta(minutes=1), "15.00", 2)],
            0,
            "below_minimum",
        ),
        void(b, 3, "55.00", 13, [cancel(early + timedelta(minutes=2))], 0, "cancelled"),
        # ...a partial refund that keeps the minimum: still completed...
        void(b, 4, "80.00", 14, [refund(early + timedelta(minutes=3), "10.00", 4)], None, None),
        # ...and revoked after release.
        void(b, 5, "90.00", 15, [refund(late, "90.00", 5)], 0, "refunded"),
        # Shop A (rewards at once): a cancellation as an update, two refunds adding up to all.
        void(a, 6, "48.00", 16, [cancel(early, "orders/updated")], 0, "cancelled"),
        void(
            a,
            7,
            "60.00",
            17,
            [
                refund(early + timedelta(minutes=1), "20.00", 71),
                refund(early + timedelta(minutes=2), "40.00", 72),
            ],
            1,
            "refunded",
        ),
        void(
            a, 8, "33.00", 18, [refund(early + timedelta(minutes=3), "9.00", 8)], 0, "below_minimum"
        ),
    ]


def _late_first_orders(
    a: Merchant, b: Merchant, code: Callable[[Merchant, int], str], start: datetime, step: timedelta
) -> list[Order]:
    """Friends whose earlier paid order reaches the flow after their referred one, though the
    API received it first (its timestamp is two hours earlier). The referred order comes at
    the end of the bulk. The earlier one comes either

    - in the next phase, once the referral is completed: the referral is revoked as
      not_first_order, both rewards reversed (shop B's before they were released); if the
      earlier order names a code, it is the friend's referral from then on; or
    - in the same phase right behind it, on the same partition with a higher order id, so that
      the order stage tells the friend's state of it while the referral waits for the code's
      verdict: the referral is blocked as not_first_order.
    """
    orders: list[Order] = []
    completed, pending = VOIDS, BULK

    def pair(
        n: int,
        m: Merchant,
        adv: int,
        arrives: int,
        earlier_code: str | None = None,
        earlier_outcome: Outcome | None = None,
        variants: tuple[bool, bool] = (False, False),
    ) -> None:
        friend_n = 9400 + n
        paid_at = start + len(orders) * step
        referred = Order(
            m,
            94_001 + 10 * n,
            friend(friend_n),
            Decimal("70.00"),
            paid_at,
            BULK,
            code(m, adv),
            source=("discount", "note", "landing")[n % 3],
            variants=variants[0],
            outcome=(
                Outcome("completed", advocate=adv)
                if arrives > BULK
                else Outcome("blocked", "not_first_order")
            ),
        )
        earlier = Order(
            m,
            94_002 + 10 * n,  # the higher id: after the referred one where the flow sorts keys
            friend(friend_n),
            Decimal("40.00"),
            paid_at - timedelta(hours=2),
            arrives,
            earlier_code,
            variants=variants[1],
            outcome=earlier_outcome,
        )
        referred.earlier = earlier
        if arrives == BULK:
            assert earlier_code is None  # else the order of arrival would decide the reason
            earlier.behind = referred
            referred.partition = earlier.partition = 0
        orders.extend((referred, earlier))

    # (a) A completed referral, then the friend's earlier order without a code: revoked.
    pair(1, a, 23, completed, variants=(True, False))
    pair(2, a, 24, completed, variants=(False, True))
    pair(3, b, 21, completed)  # rewards still pending: reversed, never released
    # (b) The earlier order right behind the referred one: blocked while pending.
    pair(4, a, 25, pending)
    pair(5, a, 26, pending)
    pair(6, b, 22, pending)
    # (c) The earlier order names a code: the referral moves to it.
    pair(7, a, 27, completed, code(a, 28), Outcome("completed", advocate=28))
    pair(8, a, 29, completed, code(a, 29), Outcome("completed", advocate=29))
    pair(9, b, 23, completed, code(b, 20), Outcome("completed", advocate=20))
    pair(10, a, 30, completed, UNKNOWN_CODE, Outcome("blocked", "unknown_code"))
    return orders


def _body(order: Order, status: str, cancelled_at: datetime | None = None) -> dict[str, Any]:
    p = order.buyer
    placed = order.paid_at - timedelta(minutes=30)
    body: dict[str, Any] = {
        "id": order.order_id,
        "email": p.email,
        "financial_status": status,
        "subtotal_price": str(order.subtotal),
        "total_tax": "0.00",
        "taxes_included": False,
        "test": False,
        "currency": "EUR",
        "created_at": placed.isoformat(),
        "processed_at": placed.isoformat(),
        "cancelled_at": None if cancelled_at is None else cancelled_at.isoformat(),
        "customer": {
            "id": p.customer,
            "email": p.email,
            "first_name": p.first,
            "last_name": p.last,
            "default_address": dict(p.address),
        },
        "shipping_address": {**p.address, "first_name": p.first, "last_name": p.last},
    }
    if p.ip is not None:
        if order.order_id % 2:
            body["browser_ip"] = p.ip
        else:
            body["client_details"] = {"browser_ip": p.ip, "user_agent": "Mozilla/5.0"}
    if order.code is not None:
        if order.source == "discount":
            body["discount_codes"] = [{"code": f" {order.code} ", "amount": "5.00"}]
        elif order.source == "note":
            body["note_attributes"] = [{"name": "referral_code", "value": order.code}]
        else:
            body["landing_site"] = f"/collections/all?utm_source=share&ref={order.code}"
    return redact_order(body, order.merchant.hasher)


def _deliveries(orders: list[Order], rng: random.Random) -> tuple[list[Delivery], int]:
    """Every order's webhooks, a fifth of them delivered twice, in the order received."""
    out: list[Delivery] = []
    for order in orders:
        m = order.merchant
        first = len(out)
        if order.variants:
            out.append(
                Delivery(
                    m,
                    "orders/create",
                    _body(order, "pending"),
                    order.paid_at - timedelta(seconds=60),
                    order.phase,
                )
            )
        out.append(Delivery(m, "orders/paid", _body(order, "paid"), order.paid_at, order.phase))
        if order.variants:
            out.append(
                Delivery(
                    m,
                    "orders/updated",
                    _body(order, "paid"),
                    order.paid_at + timedelta(seconds=45),
                    order.phase,
                )
            )
        for event in order.events:
            if event.refund is not None:
                body = {
                    "id": event.refund_id,
                    "order_id": order.order_id,
                    "created_at": event.at.isoformat(),
                    "refund_line_items": [{"subtotal": str(event.refund), "total_tax": "0.00"}],
                }
                out.append(Delivery(m, "refunds/create", body, event.at, event.phase))
            else:
                out.append(
                    Delivery(m, event.topic, _body(order, "paid", event.at), event.at, event.phase)
                )
        if order.behind is not None:  # right behind the order's webhooks, on its partition
            assert not order.behind.variants
            assert not order.events
            behind = order.behind.paid_at + timedelta(microseconds=1)
            out[first:] = [replace(d, sent=behind) for d in out[first:]]
        if order.partition is not None:
            out[first:] = [replace(d, partition=order.partition) for d in out[first:]]
    duplicates = []
    for d in rng.sample(out, round(len(out) * DUPLICATE_SHARE)):
        later = timedelta(seconds=rng.randint(1, 600))
        sent = None if d.sent is None else d.sent + later
        duplicates.append(replace(d, at=d.at + later, sent=sent))
    return sorted(out + duplicates, key=lambda d: d.position), len(duplicates)


# -------------------------------------------------------------------------------- oracle


@dataclass(frozen=True)
class Row:
    """A `referrals` row as the test compares it."""

    merchant_id: str
    friend: int
    order_id: int
    code: str
    advocate: int | None
    status: str
    reason: str | None
    advocate_points: int
    friend_points: int
    release_at: datetime | None
    decided_at: datetime


ROW_COLUMNS = """id::text, merchant_id::text, friend_id, order_id, code, advocate_id, status,
    reason, advocate_points, friend_points, release_at, decided_at"""


def expected_rows(scenario: Scenario, phase: int) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for order in scenario.orders:
        o = order.outcome
        if o is None or order.phase > phase:
            continue
        assert order.code is not None
        terms = order.merchant.terms
        completed = o.status == "completed"
        review = timedelta(days=terms.review_days)
        revoked = order.revocation(phase)
        rows[order.referral_id] = Row(
            merchant_id=order.merchant.merchant_id,
            friend=order.buyer.customer,
            order_id=order.order_id,
            code=order.code.strip().upper(),
            advocate=o.advocate,
            status="revoked" if revoked is not None else o.status,
            reason=revoked.reason if revoked is not None else o.reason,
            advocate_points=terms.advocate_points if completed else 0,
            friend_points=terms.friend_points if completed else 0,
            release_at=order.paid_at + review if completed and terms.review_days else None,
            decided_at=order.decided_at(phase),
        )
    return rows


EventRecord = dict[str, Any]  # an event's fields but its event_id and schema_version


def expected_events(scenario: Scenario, phase: int) -> dict[str, dict[str, EventRecord]]:
    """By contract (referral.completed, referral.revoked), by referral id: the one event each
    referral completed (even if revoked since) or revoked up to `phase` announces."""
    completed: dict[str, EventRecord] = {}
    revoked: dict[str, EventRecord] = {}
    for order in scenario.orders:
        o = order.outcome
        if o is None or o.status != "completed" or order.phase > phase:
            continue
        assert order.code is not None
        terms = order.merchant.terms
        review = timedelta(days=terms.review_days)
        common: EventRecord = {
            "referral_id": order.referral_id,
            "merchant_id": order.merchant.merchant_id,
            "code": order.code.strip().upper(),
            "advocate_customer_id": o.advocate,
            "friend_customer_id": order.buyer.customer,
            "order_id": order.order_id,
            "advocate_points": terms.advocate_points,
            "friend_points": terms.friend_points,
        }
        completed[order.referral_id] = common | {
            "release_at": order.paid_at + review if terms.review_days else None,
            "completed_at": order.paid_at,
        }
        revocation = order.revocation(phase)
        if revocation is not None:
            revoked[order.referral_id] = common | {
                "reason": revocation.reason,
                "revoked_at": revocation.at,
            }
    return {REFERRAL_COMPLETED: completed, REFERRAL_REVOKED: revoked}


@dataclass(frozen=True)
class Move:
    points: int  # signed
    at: datetime
    origin: str
    release_at: datetime | None = None  # a reward pending until then


@dataclass(frozen=True)
class Balance:
    balance: int
    pending: int
    lifetime_earned: int
    due_at: datetime | None


def floor(amount: Decimal) -> int:
    return int(amount.to_integral_value(rounding=ROUND_FLOOR))


def moves(scenario: Scenario, phase: int) -> dict[str, list[Move]]:
    """Every change of every customer's points up to `phase`, by merchant:customer."""
    out: dict[str, list[Move]] = defaultdict(list)
    for order in scenario.orders:
        if order.phase > phase:
            continue
        m = order.merchant
        origin = f"order:{order.order_id}"
        earned = floor(order.subtotal * m.policy.points_per_unit)
        out[order.key].append(Move(earned, order.paid_at, origin))
        refunded, reversed_ = Decimal(0), 0
        for event in order.events:
            if event.phase > phase:
                continue
            if event.refund is None:  # a cancellation takes back what is left
                delta = earned - reversed_
            else:
                refunded += event.refund
                target = (
                    earned
                    if refunded >= order.subtotal
                    else floor(earned * refunded / order.subtotal)
                )
                delta = target - reversed_
            if delta > 0:
                reversed_ += delta
                out[order.key].append(Move(-delta, event.at, origin))
        o = order.outcome
        if o is None or o.status != "completed":
            continue
        assert o.advocate is not None
        terms = m.terms
        release = order.paid_at + timedelta(days=terms.review_days) if terms.review_days else None
        revoked = order.revocation(phase)
        for role, who, points in (
            ("advocate", f"{m.merchant_id}:{o.advocate}", terms.advocate_points),
            ("friend", order.key, terms.friend_points),
        ):
            reward = f"referral:{order.referral_id}:{role}"
            out[who].append(Move(points, order.paid_at, reward, release))
            if revoked is not None:
                out[who].append(Move(-points, revoked.at, reward))
    return out


@dataclass(frozen=True)
class Expected:
    """What the points flow must show after a phase: every balance document (merchant:customer
    -> balance) and the referral entries of the ledger ((type, source_id) -> how many)."""

    balances: dict[str, Balance]
    ledger: dict[tuple[str, str], int]


def expected_points(scenario: Scenario, phase: int) -> Expected:
    """A reward is pending until its release time; it is released once the customer's clock
    (the latest time their commands carried, or the clock job's tick once they are due)
    reaches it, unless it was revoked before. Revoked rewards net to nothing either way."""
    balances: dict[str, Balance] = {}
    ledger: dict[tuple[str, str], int] = {}
    for key, changes in moves(scenario, phase).items():
        clock = max(c.at for c in changes)
        revoked = {c.origin: c.at for c in changes if c.points < 0}
        rewards = [c for c in changes if c.release_at is not None]
        due = min(
            (
                r.release_at
                for r in rewards
                if r.release_at is not None and r.release_at > clock and r.origin not in revoked
            ),
            default=None,
        )
        if phase >= TICKS and due is not None and due <= TICK_AT:
            clock = max(clock, TICK_AT)  # the clock job ticked this customer
        pending = 0
        due = None
        for r in rewards:
            assert r.release_at is not None
            if r.origin in revoked:
                if revoked[r.origin] >= r.release_at:
                    ledger["release", r.origin] = 1  # released first, then reversed
            elif r.release_at > clock:
                pending += r.points
                due = r.release_at if due is None else min(due, r.release_at)
            else:
                ledger["release", r.origin] = 1
        for c in changes:
            if c.origin.startswith("referral:"):
                source = c.origin.removeprefix("referral:")
                ledger["bonus" if c.points > 0 else "reverse", source] = 1
        total = sum(c.points for c in changes)
        balances[key] = Balance(total - pending, pending, total, due)
    return Expected(balances, ledger)
