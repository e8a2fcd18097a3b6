"""Flow state per customer: one customer with 10,000 orders and 2,000 refunds holds < 1 MiB.

One customer of one shop is driven through N paid orders (one every 50 minutes: 10,000 of them
span about a year), M refunds of some of them (M/10 orders are refunded twice, a part then the
rest; the other refunded orders once, half of them in full, half in part; each refund from an
hour to 20 days after the order or the refund before it, so some find the points still pending)
and a clock tick every day at midnight UTC, in time order, through the points flow's own steps,
with no server:

- each webhook is a `shopify.orders` record as the API produces it (body, delivery headers,
  the merchant's terms as headers, the record time that becomes `received_at`), decoded by the
  flow's `decode_order`;
- the order stage is the flow's `order_step` run as the flow runs it (`guarded_state`, all or
  nothing, on the state decoded from the row the key keeps: `ORDER_STATES`), one state per
  `shop:order` key;
- its changes become the `points.commands` records it produces (`encode_change`), decoded by
  the flow's `decode_command_message` next to `points.tick` records as the clock job produces
  them, and go to the customer stage: `apply_customer`, also under `guarded_state`, on the
  state decoded from its row (`CUSTOMER_STATES`).

It runs under two sets of terms: the defaults (`Policy()`: points spendable at once, no expiry;
figures prefixed `default_`) and pending points with lot expiry (`pending_days=2`, `lot:365`:
every earn held two days, then dated; figures prefixed `lot_`).

Figures, per terms:

- `customer_state_bytes`: the customer's state as the flow keeps it, which is also its
  snapshot: its row, pickled (loyalty/state_rows.py), at its largest over the run (measured
  after every tick and at the end);
- `customer_memory_bytes`: what that state takes in memory while a command is applied to it:
  the allocations (tracemalloc, after gc) of the CustomerState decoded from those bytes;
- `customer_state_mib`: the larger of the two, in MiB. This is the target: < 1 MiB.
- `lots`, `held`, `recent_ids`: what that state holds: dated lots (loyalty/lots.py), pending
  origins, and fingerprints of commands in the duplicate window (loyalty/dedup.py);
- `order_states_bytes`, `order_memory_bytes`, `order_states_mib`: the same, summed over the
  customer's OrderStates. Per-order state is one compact record per order, kept for late refunds
  and cancellations: it lives under N different keys (`shop:order`, spread over the workers),
  not in the customer's state, so it has no target here and is reported next to it for scale
  (without Bytewax's own keys and per-key bookkeeping, which come on top of both stages' states).

The run checks that it did what it claims, or raises RuntimeError: every record decoded, nothing
dead-lettered by either stage (the customer stage refuses, with InvalidEventError, a command
older than its duplicate window: none may be), no order skipped, exactly one change sent and one
ledger entry posted per order and per refund, the balances equal to the sums of the ledger's
deltas, and the points the order stage sent equal to the points the ledger posted.
"""

from __future__ import annotations

import gc
import random
import sys
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from confluent_kafka import TIMESTAMP_CREATE_TIME

from bench.report import Targets, at_most
from connectors.kafka import SourceMessage
from connectors.shopify import SHOP_HEADER, TOPIC_HEADER, encode_body, kafka_headers, partition_key
from flows.common import Rejected, guarded_decode, guarded_state
from flows.points import (
    CUSTOMER_STATES,
    ORDER_STATES,
    Command,
    decode_command_message,
    decode_order,
    order_step,
)
from loyalnest.samples import CENTS, order_body
from loyalnest.topics import POINTS_COMMANDS, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.commands import customer_key, encode_tick
from loyalty.customers import (
    CustomerOutput,
    CustomerState,
    LedgerEntry,
    Tick,
    apply_customer,
)
from loyalty.ledger import Kind, OrderState, PointsChange, Skipped, Source
from loyalty.orders import REFUND_TOPIC
from loyalty.policy import Expiry, Policy

SHOP = "bench-state.myshopify.com"
MERCHANT_ID = str(ids.merchant_id(SHOP))
CUSTOMER = 4_200_000
FIRST_ORDER_ID = 7_100_000_000
FIRST_REFUND_ID = 9_100_000_000
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ORDER_EVERY = timedelta(minutes=50)
REFUND_WITHIN = timedelta(days=20)  # of the order, or of the order's refund before it
TICK_EVERY = timedelta(days=1)
TAX_RATE = Decimal("0.08")  # the rate of loyalnest.samples.order_body
TERMS = {"default": Policy(), "lot": Policy(pending_days=2, expiry=Expiry.parse("lot:365"))}
MIB = 2**20
TARGETS: Targets = {f"{name}_customer_state_mib": at_most(1) for name in TERMS}

T = TypeVar("T")


@dataclass(frozen=True)
class Webhook:
    at: datetime
    topic: str
    body: dict[str, Any]


def webhooks(orders: int, refunds: int, seed: int = 1) -> list[Webhook]:
    """The customer's paid orders and refunds, in time order."""
    if not 0 <= refunds <= orders:
        raise ValueError(f"refunds must be from 0 to the number of orders, not {refunds}")
    rng = random.Random(seed)
    hooks = []
    for n in range(orders):
        at = START + n * ORDER_EVERY
        hooks.append(
            Webhook(at, "orders/create", order_body(rng, FIRST_ORDER_ID + n, CUSTOMER, at))
        )
    twice = refunds // 10  # orders refunded twice: a part, then the rest
    refund_id = FIRST_REFUND_ID
    for i, n in enumerate(rng.sample(range(orders), refunds - twice)):
        order = hooks[n]
        subtotal = Decimal(order.body["subtotal_price"])
        if i < twice:
            first = share(rng, subtotal, 25, 50)
            amounts = [first, subtotal - first]
        elif i % 2:
            amounts = [subtotal]
        else:
            amounts = [share(rng, subtotal, 25, 75)]
        at = order.at
        for amount in amounts:
            at += timedelta(seconds=rng.randint(3_600, int(REFUND_WITHIN.total_seconds())))
            refund_id += 1
            hooks.append(Webhook(at, REFUND_TOPIC, refund_body(refund_id, order.body, amount, at)))
    hooks.sort(key=lambda h: h.at)  # stable: a refund never precedes its order
    return hooks


def share(rng: random.Random, amount: Decimal, low: int, high: int) -> Decimal:
    """A random part of `amount`, from `low` to `high` percent of it, in whole cents. At least a
    quarter of an order earning 5 points or more always takes back at least one point."""
    cents = int(amount * 100)
    return (Decimal(rng.randint(-(-cents * low // 100), cents * high // 100)) / 100).quantize(CENTS)


def refund_body(
    refund_id: int, order: dict[str, Any], amount: Decimal, at: datetime
) -> dict[str, Any]:
    """A `refunds/create` body: `amount` of the order's one line, with its tax."""
    tax = (amount * TAX_RATE).quantize(CENTS)
    return {
        "id": refund_id,
        "order_id": order["id"],
        "created_at": at.isoformat(),
        "note": "bench",
        "refund_line_items": [
            {
                "line_item_id": order["line_items"][0]["id"],
                "quantity": 1,
                "subtotal": str(amount),
                "total_tax": str(tax),
            }
        ],
        "transactions": [{"kind": "refund", "amount": str(amount + tax), "status": "success"}],
    }


def ticks(hooks: list[Webhook], after: timedelta) -> list[datetime]:
    """A tick every midnight UTC from the first webhook's day to `after` past the last one."""
    first = hooks[0].at.replace(hour=0, minute=0, second=0, microsecond=0) + TICK_EVERY
    count = (hooks[-1].at + after - first) // TICK_EVERY + 1
    return [first + n * TICK_EVERY for n in range(count)]


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def record(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    at: datetime,
    offset: int,
    headers: list[tuple[str, bytes]] | None = None,
) -> SourceMessage:
    """A record as a Kafka source hands it to the flow: `at` is its (producer) timestamp."""
    return KafkaSourceMessage(
        key=key,
        value=value,
        topic=topic,
        headers=headers or [],
        partition=0,
        offset=offset,
        timestamp=(TIMESTAMP_CREATE_TIME, millis(at)),
    )


def order_record(hook: Webhook, policy: Policy, offset: int) -> SourceMessage:
    """The `shopify.orders` record the API produces for a webhook, the merchant's terms on it."""
    delivery = {TOPIC_HEADER: hook.topic, SHOP_HEADER: SHOP}
    headers = [
        (name, value.encode() if isinstance(value, str) else value)
        for name, value in kafka_headers(delivery, f"bench-state-{offset}", policy)
        if value is not None
    ]
    key = partition_key(SHOP, hook.topic, hook.body)
    return record(SHOPIFY_ORDERS, key, encode_body(hook.body), hook.at, offset, headers)


def customer_step(
    state: CustomerState | None, command: Command
) -> tuple[CustomerState | None, list[CustomerOutput]]:
    """The flow's customer step, without building records from the outputs."""
    return apply_customer(state, command.item)


DECODE_ORDER = guarded_decode("decode-order", decode_order)
ORDER_STAGE = guarded_state("order-state", order_step, lambda r: r.message)
DECODE_COMMAND = guarded_decode("decode-command", decode_command_message)
CUSTOMER_STAGE = guarded_state("customer-state", customer_step, lambda c: c.message)


@dataclass
class Run:
    """Both stages' state for the one customer, what went through them, and the largest
    customer state seen."""

    orders: dict[str, bytes] = field(default_factory=dict)  # by shop:order, as the flow keeps them
    kept: bytes | None = None  # the customer's state, as the flow keeps it
    sent: list[PointsChange] = field(default_factory=list)  # by the order stage
    entries: list[LedgerEntry] = field(default_factory=list)  # by the customer stage
    offset: int = 0
    largest: bytes = b""

    @property
    def customer(self) -> CustomerState | None:
        return CUSTOMER_STATES.decode(self.kept) if self.kept is not None else None

    def order_states(self) -> list[OrderState]:
        return [ORDER_STATES.decode(kept) for kept in self.orders.values()]

    def order(self, message: SourceMessage) -> None:
        received = DECODE_ORDER(message)
        if isinstance(received, Rejected):
            raise RuntimeError(f"record refused by {received.step}: {received.reason}")
        kept = self.orders.get(received.key)
        state, outputs = ORDER_STAGE(ORDER_STATES.decode(kept) if kept else None, received)
        for output in outputs:
            if isinstance(output, Rejected):
                raise RuntimeError(f"{received.key} refused by {output.step}: {output.reason}")
            if isinstance(output, Skipped):
                raise RuntimeError(f"{received.key} skipped: {output.reason}")
        assert isinstance(state, OrderState)
        self.orders[received.key] = ORDER_STATES.encode(state)
        for output in outputs:
            assert isinstance(output, KafkaSinkMessage)
            self.command(output.key, output.value, received.update.received_at)

    def tick(self, at: datetime) -> None:
        tick = Tick(MERCHANT_ID, CUSTOMER, at)
        self.command(customer_key(MERCHANT_ID, CUSTOMER), encode_tick(tick), at)
        self.observe()

    def command(self, key: bytes | None, value: bytes | None, at: datetime) -> None:
        self.offset += 1
        decoded = DECODE_COMMAND(record(POINTS_COMMANDS, key, value, at, self.offset))
        if isinstance(decoded, Rejected):
            raise RuntimeError(f"command refused by {decoded.step}: {decoded.reason}")
        if isinstance(decoded.item, PointsChange):
            self.sent.append(decoded.item)
        state, outputs = CUSTOMER_STAGE(self.customer, decoded)
        for output in outputs:
            if isinstance(output, Rejected):
                raise RuntimeError(f"{decoded.item} refused by {output.step}: {output.reason}")
            if isinstance(output, LedgerEntry):
                self.entries.append(output)
        assert isinstance(state, CustomerState)
        self.kept = CUSTOMER_STATES.encode(state)

    def observe(self) -> None:
        """Keep the customer's state if it is the largest so far."""
        if self.kept is not None and len(self.kept) > len(self.largest):
            self.largest = self.kept


def play(hooks: list[Webhook], policy: Policy) -> Run:
    """Every webhook and a daily tick, in time order (a tick after the webhooks of its time)."""
    run = Run()
    after = timedelta(days=policy.pending_days + 1)
    events: list[tuple[datetime, int, Webhook | None]] = [(h.at, 0, h) for h in hooks]
    events.extend((at, 1, None) for at in ticks(hooks, after))
    events.sort(key=lambda e: (e[0], e[1]))
    for offset, (at, _, hook) in enumerate(events):
        if hook is None:
            run.tick(at)
        else:
            run.order(order_record(hook, policy, offset))
    run.observe()
    return run


def check(run: Run, orders: int, refunds: int) -> None:
    """Raise RuntimeError unless the run applied every order and refund once, exactly."""
    c = run.customer
    if c is None:
        raise RuntimeError("the customer has no state")
    if len(run.orders) != orders:
        raise RuntimeError(f"{len(run.orders)} order states for {orders} orders")
    sent = Counter((s.kind, s.source) for s in run.sent)
    posted = Counter((e.kind, e.source) for e in run.entries if e.kind in (Kind.EARN, Kind.REVERSE))
    expected = Counter({(Kind.EARN, Source.ORDER): orders, (Kind.REVERSE, Source.REFUND): refunds})
    if +sent != +expected or +posted != +expected:
        raise RuntimeError(f"expected {dict(expected)}: sent {dict(sent)}, posted {dict(posted)}")

    def points(kind: Kind, changes: list[PointsChange] | list[LedgerEntry]) -> int:
        return sum(change.points for change in changes if change.kind == kind)

    earned, reversed_ = points(Kind.EARN, run.entries), points(Kind.REVERSE, run.entries)
    expired = points(Kind.EXPIRE, run.entries)
    states = run.order_states()
    sums = [  # what, expected, found
        (
            "points sent (earned, reversed)",
            (earned, reversed_),
            tuple(points(kind, run.sent) for kind in (Kind.EARN, Kind.REVERSE)),
        ),
        (
            "points of the order states (earned, reversed)",
            (earned, reversed_),
            (sum(o.earned for o in states), sum(o.reversed for o in states)),
        ),
        (
            "balance, pending (the sums of the ledger's deltas)",
            (
                sum(e.spendable_delta for e in run.entries),
                sum(e.pending_delta for e in run.entries),
            ),
            (c.balance, c.pending),
        ),
        (
            "balance + pending, lifetime earned",
            (earned - reversed_ - expired, earned - reversed_),
            (c.balance + c.pending, c.lifetime_earned),
        ),
        ("seq (the ledger entries)", len(run.entries), c.seq),
    ]
    wrong = [
        f"{what}: expected {want}, found {found}" for what, want, found in sums if want != found
    ]
    if wrong:
        raise RuntimeError("the run does not add up: " + "; ".join(wrong))


def traced(build: Callable[[], T]) -> tuple[T, int]:
    """What `build` returns, and the bytes of its allocations still alive after gc."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = build()
        gc.collect()
        return value, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def measure_terms(
    name: str, policy: Policy, hooks: list[Webhook], orders: int, refunds: int
) -> dict[str, float]:
    run = play(hooks, policy)
    check(run, orders, refunds)
    kept = run.largest
    customer_bytes = len(kept)
    largest, customer_memory = traced(lambda: CUSTOMER_STATES.decode(kept))
    blobs = list(run.orders.values())
    restored, order_memory = traced(lambda: [ORDER_STATES.decode(b) for b in blobs])
    order_memory -= sys.getsizeof(restored)  # the list holding them is not state
    order_bytes = sum(len(blob) for blob in blobs)
    return {
        f"{name}_customer_state_bytes": customer_bytes,
        f"{name}_customer_memory_bytes": customer_memory,
        f"{name}_customer_state_mib": max(customer_bytes, customer_memory) / MIB,
        f"{name}_lots": len(largest.lots.dated),
        f"{name}_held": len(largest.held or {}),
        f"{name}_recent_ids": len(largest.recent.keys),
        f"{name}_order_states_bytes": order_bytes,
        f"{name}_order_memory_bytes": order_memory,
        f"{name}_order_states_mib": max(order_bytes, order_memory) / MIB,
    }


def measure(orders: int, refunds: int, seed: int = 1) -> dict[str, float]:
    hooks = webhooks(orders, refunds, seed)
    results: dict[str, float] = {"orders": orders, "refunds": refunds}
    for name, policy in TERMS.items():
        results.update(measure_terms(name, policy, hooks, orders, refunds))
    return results
