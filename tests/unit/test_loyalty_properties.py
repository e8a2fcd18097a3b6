"""Properties over generated input: whatever a webhook or a command holds, the domain either
accepts it within every bound or refuses it with an InvalidEventError, never another exception;
and the two state machines keep their invariants on every sequence they accept.

The customer stage is checked twice: on decoded records of every command type (bounds, and
refusals only for the 64-bit range or the dedup window), and on interleavings of every kind of
command against the books its own outputs must add up to (section 5).

Each test states its number of examples: together 12,000 cases a run (2,800 + 2,500 + 1,200
+ 2,300 + 1,200 + 2,000), in under a minute of CPU on this VM. No example database is kept.
"""

from __future__ import annotations

import copy
import json
import pickle
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty import fields, ids
from loyalty.commands import (
    ADJUST,
    CHANGE,
    REDEEM,
    TICK,
    Command,
    decode_command,
    encode_adjustment,
    encode_change,
    encode_redemption,
    encode_tick,
)
from loyalty.customers import (
    MAX_ADJUSTMENT,
    Adjustment,
    AdjustmentOutcome,
    BalanceSnapshot,
    CustomerOutput,
    CustomerState,
    ExpiryWarning,
    LedgerEntry,
    Redemption,
    RedemptionOutcome,
    RedemptionStatus,
    Status,
    Tick,
    TierChange,
    apply_customer,
    due_at,
    next_expiry,
)
from loyalty.dedup import WINDOW, fingerprint
from loyalty.errors import InvalidEventError
from loyalty.i18n import TEXT_KEYS
from loyalty.ledger import (
    Kind,
    OrderOutput,
    OrderState,
    OrderUpdate,
    PointsChange,
    Skipped,
    Source,
    Terms,
    apply_order,
)
from loyalty.limits import (
    MAX_ID,
    MAX_INT64,
    MAX_POINTS,
    MAX_RATE,
    MIN_INT64,
    MONEY_DECIMAL_PLACES,
    MONEY_INTEGER_DIGITS,
    RATE_DECIMAL_PLACES,
)
from loyalty.orders import (
    FINANCIAL_STATUSES,
    ORDER_TOPICS,
    REFUND_TOPIC,
    OrderEvent,
    OrderFacts,
    RefundFacts,
    parse_order_event,
)
from loyalty.policy import (
    DEFAULT_WARNING_DAYS,
    MAX_PENDING_DAYS,
    MAX_WARNING_DAYS,
    Expiry,
    Policy,
)
from loyalty.state_rows import customer_from_row, customer_row, order_from_row, order_row


def kept_order(state: OrderState | None) -> OrderState | None:
    """The state as the flow keeps it between records: encoded as its row, decoded again."""
    if state is None:
        return None
    kept = order_from_row(pickle.loads(pickle.dumps(order_row(state))))  # noqa: S301
    assert kept == state
    return kept


def kept_customer(state: CustomerState | None) -> CustomerState | None:
    if state is None:
        return None
    kept = customer_from_row(pickle.loads(pickle.dumps(customer_row(state))))  # noqa: S301
    assert kept == state
    return kept


SHOP = "demo.myshopify.com"
ORDER_ID = 450789469
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOPICS = sorted(ORDER_TOPICS)
ORDER_ONLY_TOPICS = sorted(ORDER_TOPICS - {REFUND_TOPIC})
STATUSES = sorted(FINANCIAL_STATUSES)
SHOPS = st.sampled_from([SHOP, "Demo.MyShopify.com"])  # the same shop, as spelt by some
TENTHS = st.integers(0, 9)

# ---------------------------------------------------------------------------- JSON documents


@dataclass(frozen=True)
class Raw:
    """A JSON number written as given (Python's json module cannot write 1e400 or 5,000
    digits), or any other JSON text to splice in."""

    text: str


class Missing:
    """Marks a field to remove from a body rather than replace."""


MISSING = Missing()


def dump(value: object, ascii_only: bool = True) -> str:
    """JSON text for generated values: Raw text as is, NaN and Infinity as Python writes them."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        items = (
            f"{json.dumps(k, ensure_ascii=ascii_only)}:{dump(v, ascii_only)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def encode(value: object, ascii_only: bool = True) -> bytes:
    return dump(value, ascii_only).encode("utf-8")


EDGE_INTS = [
    0,
    1,
    -1,
    MAX_ID,
    MAX_ID + 1,
    2**64,
    MIN_INT64,
    MIN_INT64 - 1,
    MAX_POINTS,
    MAX_POINTS + 1,
    10**MONEY_INTEGER_DIGITS - 1,
    10**MONEY_INTEGER_DIGITS,
    10**20 - 1,
    -(10**20) + 1,
]
json_ints = st.one_of(
    st.integers(-1_000, 1_000),
    st.integers(-(10**20) + 1, 10**20 - 1),
    st.sampled_from(EDGE_INTS),
)
# JSON number texts beyond what the parser accepts or the readers keep: exponents, 21+ digits.
json_numbers = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,12})?([eE][+-]?[0-9]{1,20})?", fullmatch=True),
    st.sampled_from(
        [
            *["1e400", "1E+400", "1e1000000000", "1e1000000000000000000", "-0", "-0.0"],
            *["0.00000001", "1" * 4_301],
            *["9" * 5_000, "9" * 5_000 + ".5", str(10**30), "NaN", "Infinity", "-Infinity"],
        ]
    ),
).map(Raw)
money_texts = st.one_of(
    st.from_regex(r"[0-9]{1,15}(\.[0-9]{1,8})?", fullmatch=True),
    st.from_regex(r"[-+ ]?[0-9]{0,17}(\.[0-9]{0,10})?([eE][+-]?[0-9]{1,3})?[ \n]?", fullmatch=True),
    st.from_regex(r"\d{1,5}(\.\d{1,3})?", fullmatch=True),  # any script's digits
    st.sampled_from(
        [
            *["NaN", "Infinity", "-Infinity", "sNaN", "1_000", "1e1000000000", " 1.00", "1."],
            *[".5", "\u0661\u0660\u0660", "\uff11\uff10\uff10", "9" * 5_000, "9" * 20],
        ]
    ),
)
text = st.text(st.characters(codec="utf-8"), max_size=20)


def iso_time(moment: datetime, offset_minutes: int, form: int) -> str:
    """An ISO-8601 time: with an offset, with Z, or (form 2) without any offset."""
    if form == 2:
        return moment.isoformat()
    local = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    return local.isoformat().replace("+00:00", "Z") if form == 1 else local.isoformat()


def time_texts(moments: st.SearchStrategy[datetime]) -> st.SearchStrategy[str]:
    return st.builds(iso_time, moments, st.integers(-(24 * 60 - 1), 24 * 60 - 1), st.integers(0, 2))


# Naive datetimes (iso_time gives them their offset), near either end of the calendar too:
# with an offset, such a time in UTC may fall in the year 0 or 10000.
any_moment = st.one_of(
    st.datetimes(),
    st.datetimes(max_value=datetime(1, 1, 2)),  # noqa: DTZ001
    st.datetimes(min_value=datetime(9999, 12, 30)),  # noqa: DTZ001
)
sane_moment = st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1))  # noqa: DTZ001


def json_values(times: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value, leaning on what the readers meet: ids, amounts, statuses, times."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        json_ints,
        st.floats(),
        json_numbers,
        text,
        money_texts,
        times,
        st.sampled_from([*STATUSES, "PAID", "true", "false", "null", ""]),
    )
    keys = st.one_of(text, st.sampled_from(["id", "subtotal", "total_tax", "order_id"]))
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=10,
    )


ANY_TIME = time_texts(any_moment)
ANY_JSON = json_values(ANY_TIME)
# For the state machines: times that are all in range (the decoders' tests cover the rest).
SANE_TIME = time_texts(sane_moment)
SANE_JSON = json_values(SANE_TIME)

# ---------------------------------------------------------------------------- order bodies
# (Every strategy is built once, here: building them inside a draw costs more than drawing.)


def plain(units: int, places: int) -> str:
    """`units` of the smallest unit of `places` decimal places, as a plain decimal string."""
    return format(Decimal(units).scaleb(-places), "f")


valid_ids = st.one_of(st.integers(1, MAX_ID), st.sampled_from([1, MAX_ID]))
valid_money = st.one_of(
    st.builds(plain, st.integers(0, 100_000), st.just(2)),
    st.from_regex(r"[0-9]{1,15}(\.[0-9]{1,8})?", fullmatch=True),
    st.from_regex(r"[0-9]{1,15}(\.[0-9]{1,6})?", fullmatch=True).map(Raw),  # a JSON number
    st.integers(0, 10**MONEY_INTEGER_DIGITS - 1),
)
# The same forms, cheaper to draw (the state machines draw a dozen bodies per example).
quick_money = st.one_of(
    st.builds(plain, st.integers(0, 100_000), st.just(2)),
    st.builds(plain, st.integers(0, 10**23 - 1), st.integers(0, MONEY_DECIMAL_PLACES)),
    st.builds(lambda cents: Raw(plain(cents, 2)), st.integers(0, 100_000)),
    st.integers(0, 10**MONEY_INTEGER_DIGITS - 1),
)


def order_bodies(
    order_id: st.SearchStrategy[int], times: st.SearchStrategy[str], money: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid order bodies (bar a null total_tax with taxes included), mostly paid."""
    return st.fixed_dictionaries(
        {
            "id": order_id,
            "financial_status": st.one_of(st.just("paid"), st.none(), st.sampled_from(STATUSES)),
            "cancelled_at": st.one_of(st.none(), st.none(), times),
            "test": st.one_of(st.just(False), st.booleans(), st.none()),
            "taxes_included": st.booleans(),
            "subtotal_price": money,
            "total_tax": st.one_of(money, money, st.none()),
            "customer": st.one_of(st.fixed_dictionaries({"id": valid_ids}), st.none()),
            "currency": st.just("USD"),
        }
    )


def refund_bodies(
    refund_id: st.SearchStrategy[int],
    order_id: st.SearchStrategy[int],
    money: st.SearchStrategy[Any],
) -> st.SearchStrategy[dict[str, Any]]:
    line = st.fixed_dictionaries({"subtotal": money}, optional={"total_tax": money})
    return st.fixed_dictionaries(
        {"id": refund_id, "order_id": order_id, "refund_line_items": st.lists(line, max_size=3)}
    )


Path = tuple[str | int, ...]
ORDER_PATHS: list[Path] = [
    ("id",),
    ("customer",),
    ("customer", "id"),
    ("financial_status",),
    ("cancelled_at",),
    ("test",),
    ("taxes_included",),
    ("subtotal_price",),
    ("total_tax",),
]
REFUND_PATHS: list[Path] = [
    ("id",),
    ("order_id",),
    ("refund_line_items",),
    ("refund_line_items", 0),
    ("refund_line_items", 0, "subtotal"),
    ("refund_line_items", 0, "total_tax"),
    ("refund_line_items", 1, "subtotal"),
    ("refund_line_items", 1, "total_tax"),
]


def set_path(body: dict[str, Any], path: Path, value: object) -> None:
    """Put `value` at `path` (or remove what is there), if the path still leads anywhere."""
    node: Any = body
    for step in path[:-1]:
        if isinstance(step, int):
            if not (isinstance(node, list) and step < len(node)):
                return
        elif not (isinstance(node, dict) and isinstance(node.get(step), dict | list)):
            return
        node = node[step]
    last = path[-1]
    if isinstance(last, int):
        if isinstance(node, list) and last < len(node):
            if value is MISSING:
                del node[last]
            else:
                node[last] = value
    elif isinstance(node, dict):
        if value is MISSING:
            node.pop(last, None)
        else:
            node[last] = value


Change = tuple[Path, object]


def mutations(paths: list[Path], values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Change]]:
    """Up to three fields replaced by any value, or removed."""
    return st.lists(st.tuples(st.sampled_from(paths), values | st.just(MISSING)), max_size=3)


def mutated(body: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    result = copy.deepcopy(body)
    for path, value in changes:
        set_path(result, path, value)
    return result


ANY_ORDER = order_bodies(valid_ids, ANY_TIME, valid_money)
ANY_REFUND = refund_bodies(valid_ids, valid_ids, valid_money)
ANY_ORDER_CHANGES = mutations(ORDER_PATHS, ANY_JSON)
ANY_REFUND_CHANGES = mutations(REFUND_PATHS, ANY_JSON)


ORDER_TOPIC_VALUES = st.sampled_from(ORDER_ONLY_TOPICS)
TOPIC_VALUES = st.sampled_from(TOPICS)


@st.composite
def webhooks(draw: st.DrawFn) -> tuple[str, bytes]:
    """A topic and a body: a valid order or refund with one or more fields replaced by any
    JSON value (or removed), sometimes sent under a topic of the other kind."""
    if draw(st.booleans()):
        body = mutated(draw(ANY_REFUND), draw(ANY_REFUND_CHANGES))
        topic = REFUND_TOPIC
    else:
        body = mutated(draw(ANY_ORDER), draw(ANY_ORDER_CHANGES))
        topic = draw(ORDER_TOPIC_VALUES)
    if draw(TENTHS) == 0:
        topic = draw(TOPIC_VALUES)
    return topic, encode(body, draw(st.booleans()))


# ---------------------------------------------------------------------------- bounds


def within_money_bounds(amount: Decimal, integer_digits: int = MONEY_INTEGER_DIGITS) -> bool:
    exponent = amount.as_tuple().exponent
    return (
        type(amount) is Decimal
        and amount.is_finite()
        and amount >= 0
        and isinstance(exponent, int)
        and exponent >= -MONEY_DECIMAL_PLACES
        and amount < 10**integer_digits
    )


def is_id(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_ID


def check_event(event: OrderEvent, topic: str, raw: bytes) -> None:
    assert event.shop == SHOP
    assert event.topic == topic
    facts = event.facts
    if isinstance(facts, OrderFacts):
        assert topic != REFUND_TOPIC
        assert is_id(facts.order_id)
        assert facts.customer is None or is_id(facts.customer)
        assert facts.financial_status is None or facts.financial_status in FINANCIAL_STATUSES
        assert all(type(f) is bool for f in (facts.cancelled, facts.test, facts.taxes_included))
        assert within_money_bounds(facts.subtotal)
        assert facts.total_tax is None or within_money_bounds(facts.total_tax)
        assert facts.total_tax is not None or not facts.taxes_included
    else:
        assert isinstance(facts, RefundFacts)
        assert topic == REFUND_TOPIC
        assert is_id(facts.refund_id)
        assert is_id(facts.order_id)
        # each line is bounded; their sum has at most a few more integer digits
        lines = len(json.loads(raw).get("refund_line_items") or [])
        digits = MONEY_INTEGER_DIGITS + len(str(max(lines, 1)))
        assert within_money_bounds(facts.subtotal, digits)
        assert within_money_bounds(facts.tax, digits)


def parse_or_refuse(shop: str | None, topic: str | None, raw: bytes) -> OrderEvent | None:
    """The event, or None if refused; any exception but InvalidEventError fails the test."""
    try:
        return parse_order_event(shop, topic, raw)
    except InvalidEventError as refusal:
        reason = str(refusal)
    assert 0 < len(reason) < 300, "a refusal says why, briefly"
    return None


# ---------------------------------------------------------------------------- 1. the decoder


@settings(max_examples=2_800, deadline=None, database=None)
@given(webhooks())
def test_any_field_of_a_webhook_decodes_within_bounds_or_is_refused(
    webhook: tuple[str, bytes],
) -> None:
    topic, raw = webhook

    event = parse_or_refuse(SHOP, topic, raw)

    if event is not None:
        check_event(event, topic, raw)


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """A valid body with arbitrary bytes put in or cut out somewhere."""
    raw = encode(draw(ANY_ORDER))
    start = draw(st.integers(0, len(raw)))
    end = draw(st.integers(start, min(len(raw), start + 8)))
    return raw[:start] + draw(st.binary(max_size=8)) + raw[end:]


raw_documents = st.one_of(
    st.binary(max_size=300),
    spliced(),
    st.builds(encode, ANY_JSON, st.booleans()),
    st.builds(encode, st.dictionaries(st.sampled_from(["id", "order_id", "customer"]), ANY_JSON)),
    st.builds(lambda v: b"\xef\xbb\xbf" + encode(v), ANY_JSON),
    st.builds(
        lambda v, codec: dump(v).encode(codec), ANY_JSON, st.sampled_from(["utf-16", "utf-32"])
    ),
)


@settings(max_examples=2_500, deadline=None, database=None)
@given(topic=st.sampled_from([*TOPICS, "orders/delete"]), raw=raw_documents)
def test_any_bytes_decode_within_bounds_or_are_refused(topic: str, raw: bytes) -> None:
    event = parse_or_refuse(SHOP, topic, raw)

    if event is not None:
        check_event(event, topic, raw)


# ---------------------------------------------------------------------------- 2. orders

# Only what a merchant may set: 0 to 10,000 with up to 4 places, read as the flow reads it.
rates = st.one_of(
    st.just("1"),
    *(
        st.builds(plain, st.integers(0, MAX_RATE * 10**places), st.just(places))
        for places in range(RATE_DECIMAL_PLACES + 1)
    ),
    st.sampled_from(["0", str(MAX_RATE), "0.0001", "9999.9999"]),
).map(fields.rate)
EXPIRY_TEXTS = ["none", "lot:1", "lot:30", "lot:3650", "inactivity:1", "inactivity:365"]
expiries = st.sampled_from(EXPIRY_TEXTS).map(Expiry.parse)
PENDING_DAYS = [0, 0, 3, MAX_PENDING_DAYS]
policies = st.builds(
    Policy,
    points_per_unit=rates,
    locale=st.sampled_from(["en", "ar"]),
    pending_days=st.sampled_from(PENDING_DAYS),
    expiry=expiries,
    warning_days=st.sampled_from([0, DEFAULT_WARNING_DAYS, MAX_WARNING_DAYS]),
)
# Refund ids drawn mostly from a few, so that the same refund comes round again.
SM_REFUND = refund_bodies(st.one_of(st.integers(1, 4), valid_ids), st.just(ORDER_ID), quick_money)
SM_STATUSES = st.one_of(st.none(), st.sampled_from(STATUSES))
SM_CUSTOMERS = st.sampled_from([207119551, 207119552, MAX_ID])
# A cancel ends what an order can earn: the cancel topic comes up one time in ten.
SM_TOPICS = st.sampled_from(
    [*(["orders/create", "orders/paid", "orders/updated"] * 3), "orders/cancelled"]
)


@st.composite
def sm_order_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Valid bodies for ORDER_ID, weighted toward orders that earn: mostly paid, with a
    customer, seldom a test or cancelled."""
    return {
        "id": ORDER_ID,
        "financial_status": "paid" if draw(TENTHS) < 7 else draw(SM_STATUSES),
        "cancelled_at": draw(SANE_TIME) if draw(TENTHS) == 0 else None,
        "test": draw(TENTHS) == 0,
        "taxes_included": draw(st.booleans()),
        "subtotal_price": draw(quick_money),
        "total_tax": draw(quick_money) if draw(TENTHS) < 9 else None,
        "customer": {"id": draw(SM_CUSTOMERS)} if draw(TENTHS) < 9 else None,
    }


SM_ORDER = sm_order_bodies()
# Every field but the one naming the order: the flow keys a state by order.
SM_REFUND_CHANGES = mutations([p for p in REFUND_PATHS if p != ("order_id",)], SANE_JSON)
SM_ORDER_CHANGES = mutations([p for p in ORDER_PATHS if p != ("id",)], SANE_JSON)


@st.composite
def order_updates(draw: st.DrawFn) -> OrderUpdate | None:
    """One update for ORDER_ID, from a valid or mutated body; None when it does not parse."""
    if draw(st.integers(0, 3)) == 0:
        body, changes, topic = draw(SM_REFUND), SM_REFUND_CHANGES, REFUND_TOPIC
    else:
        body, changes = draw(SM_ORDER), SM_ORDER_CHANGES
        topic = draw(SM_TOPICS)
    if draw(TENTHS) < 3:
        body = mutated(body, draw(changes))
    event = parse_or_refuse(SHOP, topic, encode(body))
    if event is None:
        return None
    return OrderUpdate(
        shop=draw(SHOPS),
        topic=event.topic,
        facts=event.facts,
        received_at=AT,
        policy=draw(policies),
    )


def check_order_outputs(state: OrderState, outputs: list[OrderOutput]) -> None:
    changes = [o for o in outputs if isinstance(o, PointsChange)]
    assert all(isinstance(o, PointsChange | Skipped) for o in outputs)
    earns = [c for c in changes if c.kind == Kind.EARN]
    reversals = [c for c in changes if c.kind == Kind.REVERSE]
    assert len(earns) <= 1, "an order earns at most once"
    for change in changes:
        assert type(change.points) is int
        assert 0 < change.points <= MAX_POINTS
        assert change.order_id == ORDER_ID
        assert is_id(change.customer)
        assert change.shop == SHOP
    earned = sum(c.points for c in earns)
    assert sum(c.points for c in reversals) <= earned, "never reverses more than it earned"
    keys = [c.key for c in reversals]
    assert len(keys) == len(set(keys)), "at most one reversal per refund id (and one cancel)"
    for reversal in reversals:
        expected = "cancel" if reversal.refund_id is None else f"refund:{reversal.refund_id}"
        assert reversal.key == expected
        if reversal.refund_id is None:
            assert (reversal.source, reversal.source_id) == (Source.CANCEL, str(ORDER_ID))
        else:
            assert (reversal.source, reversal.source_id) == (Source.REFUND, str(reversal.refund_id))
        assert reversal.terms == Terms(), "the terms stay with the points a reversal takes"
    for earn in earns:
        assert (earn.source, earn.source_id, earn.key) == (Source.ORDER, str(ORDER_ID), "earn")
        release_at = earn.terms.release_at
        assert release_at is None or release_at - earn.at in {
            timedelta(days=d) for d in PENDING_DAYS if d
        }
        assert str(earn.terms.expiry) in EXPIRY_TEXTS
    assert all(c.origin == f"order:{ORDER_ID}" for c in changes)
    assert len({c.customer for c in changes}) <= 1, "all of an order's changes go to one customer"
    assert state.earned == earned
    assert state.reversed == sum(c.points for c in reversals)
    assert 0 <= state.reversed <= state.earned <= MAX_POINTS


@settings(max_examples=1_200, deadline=None, database=None)
@given(st.lists(order_updates(), min_size=1, max_size=12))
def test_any_sequence_of_order_updates_keeps_the_order_invariants(
    updates: list[OrderUpdate | None],
) -> None:
    state: OrderState | None = None
    outputs: list[OrderOutput] = []
    refusals: list[str] = []
    for update in updates:
        if update is None:
            continue
        try:
            # as the flow does: on the state decoded from its row, so that a refused update
            # leaves the kept state as it was
            state, out = apply_order(kept_order(state), update)
        except InvalidEventError as refusal:
            refusals.append(str(refusal))
            continue
        outputs.extend(out)
        check_order_outputs(state, outputs)
    assert all("limit" in reason for reason in refusals), "only an over-limit earn is refused"


# ---------------------------------------------------------------------------- 3. command records

MERCHANT = str(ids.merchant_id(SHOP))
REDEMPTION_IDS = [str(ids.redemption_id(MERCHANT, f"key-{n}")) for n in range(4)]
ADJUSTMENT_IDS = [str(ids.redemption_id(MERCHANT, f"adjust-{n}")) for n in range(3)]
CUSTOMER = 207119551
points_values = st.one_of(
    st.integers(1, 1_000), st.integers(1, MAX_POINTS), st.sampled_from([1, MAX_POINTS])
)
# (Few draws per command: a dozen commands per example must stay cheap to generate.)
correlation_ids = st.sampled_from(
    [None, "req-1", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736", "svc:op.v1_2", "x" * 128]
)
moments = st.integers(946_684_800, 4_102_444_800).map(lambda s: datetime.fromtimestamp(s, UTC))
change_keys = st.sampled_from(["earn", "cancel", "refund:1", "refund:2", "refund:3"])
# Terms as the order stage attaches them: mostly none, sometimes pending, dated or both.
terms_values = st.one_of(
    st.just(Terms()),
    st.builds(
        Terms,
        release_at=st.one_of(st.none(), moments),
        expiry=expiries,
        warning_days=st.sampled_from([0, 1, DEFAULT_WARNING_DAYS, MAX_WARNING_DAYS]),
    ),
)


def change_of(kind: Kind, key: str, order_id: int, **rest: Any) -> PointsChange:
    """An order's change: its source follows from its business key."""
    refund_id = int(key.removeprefix("refund:")) if key.startswith("refund:") else None
    source, source_id = {
        "earn": (Source.ORDER, str(order_id)),
        "cancel": (Source.CANCEL, str(order_id)),
    }.get(key, (Source.REFUND, str(refund_id)))
    return PointsChange(
        customer=CUSTOMER,
        order_id=order_id,
        kind=kind,
        key=key,
        refund_id=refund_id,
        source=source,
        source_id=source_id,
        **rest,
    )


order_changes = st.builds(
    change_of,
    kind=st.sampled_from([Kind.EARN, Kind.REVERSE]),
    key=change_keys,
    order_id=st.integers(1, 3),  # few orders and keys: the same change comes round again
    shop=SHOPS,
    points=points_values,
    text_key=st.sampled_from(sorted(TEXT_KEYS)),
    locale=st.sampled_from(["en", "ar", "he", "fil"]),
    at=moments,
    correlation_id=correlation_ids,
    terms=terms_values,
)
bonus_changes = st.builds(
    PointsChange,
    shop=SHOPS,
    customer=st.just(CUSTOMER),
    source=st.sampled_from([Source.REFERRAL, Source.TIER]),
    source_id=st.sampled_from(["ref-1", "tier:gold", "x" * 200]),
    kind=st.sampled_from([Kind.BONUS, Kind.REVERSE]),
    points=points_values,
    text_key=st.sampled_from(["points.bonus.referral", "points.bonus.tier"]),
    locale=st.sampled_from(["en", "ar"]),
    at=moments,
    correlation_id=correlation_ids,
    terms=terms_values,
)
points_changes = st.one_of(order_changes, order_changes, bonus_changes)
redemptions = st.builds(
    Redemption,
    redemption_id=st.sampled_from(REDEMPTION_IDS),
    merchant_id=st.just(MERCHANT),
    customer=st.just(CUSTOMER),
    points=st.one_of(points_values, st.integers(MIN_INT64, MAX_INT64), st.sampled_from([0, -1])),
    reward_id=st.sampled_from(
        ["r", "reward-10-off", "\u0645\u0643\u0627\u0641\u0623\u0629", "x" * 200]
    ),
    idempotency_key=st.sampled_from(["k", "key-1", "x" * 255]),
    locale=st.sampled_from(["en", "ar", "he"]),
    at=moments,
    correlation_id=correlation_ids,
)
adjustments = st.builds(
    Adjustment,
    adjustment_id=st.sampled_from(ADJUSTMENT_IDS),
    merchant_id=st.just(MERCHANT),
    customer=st.just(CUSTOMER),
    points=st.one_of(
        st.integers(-MAX_ADJUSTMENT, -1),
        st.integers(1, MAX_ADJUSTMENT),
        st.sampled_from([-MAX_ADJUSTMENT, MAX_ADJUSTMENT]),
    ),
    reason=st.sampled_from(["goodwill", "\u05ea\u05d5\u05d3\u05d4", "x" * 200]),
    idempotency_key=st.sampled_from(["k", "x" * 255]),
    locale=st.sampled_from(["en", "he"]),
    at=moments,
    correlation_id=correlation_ids,
)
ticks = st.builds(Tick, merchant_id=st.just(MERCHANT), customer=st.just(CUSTOMER), at=moments)

CHANGE_KEYS = ["type", "shop", "customer", "order_id", "kind", "points", "key", "text_key"]
CHANGE_KEYS += ["locale", "at", "refund_id", "correlation_id", "source", "source_id"]
CHANGE_KEYS += ["release_at", "expiry", "warning_days"]
REDEEM_KEYS = ["type", "redemption_id", "merchant_id", "customer", "points", "reward_id"]
REDEEM_KEYS += ["idempotency_key", "locale", "at", "correlation_id"]
ADJUST_KEYS = ["type", "adjustment_id", "merchant_id", "customer", "points", "reason"]
ADJUST_KEYS += ["idempotency_key", "locale", "at", "correlation_id"]
TICK_KEYS = ["type", "merchant_id", "customer", "at"]


def field_changes(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(
        st.tuples(st.sampled_from(keys), values | st.just(MISSING)), min_size=1, max_size=2
    )


def legacy(change: PointsChange) -> bytes:
    """The record as written before changes named their source (no source, no terms)."""
    body = json.loads(encode_change(change))
    for key in ("source", "source_id", "release_at", "expiry", "warning_days"):
        body.pop(key, None)
    return encode(body)


def command_records(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """points.commands records: real encoded commands of every type (and legacy changes),
    sometimes with fields replaced by any JSON value or removed."""
    encoders: list[tuple[st.SearchStrategy[bytes], st.SearchStrategy[Any]]] = [
        (points_changes.map(encode_change), field_changes(CHANGE_KEYS, values)),
        (order_changes.map(legacy), field_changes(CHANGE_KEYS, values)),
        (redemptions.map(encode_redemption), field_changes(REDEEM_KEYS, values)),
        (adjustments.map(encode_adjustment), field_changes(ADJUST_KEYS, values)),
        (ticks.map(encode_tick), field_changes(TICK_KEYS, values)),
    ]
    # Weighted like the log: mostly changes and redemptions.
    choices = st.sampled_from([0, 0, 0, 1, 2, 2, 2, 3, 4])

    @st.composite
    def records(draw: st.DrawFn) -> bytes:
        raws, replacements = encoders[draw(choices)]
        raw = draw(raws)
        if draw(st.integers(0, 2)) == 0:
            body = json.loads(raw)
            for key, value in draw(replacements):
                set_path(body, (key,), value)
            raw = encode(body, draw(st.booleans()))
        return raw

    return records()


def check_command(item: Command) -> None:
    assert is_id(item.customer)
    assert item.at.tzinfo is not None
    if isinstance(item, Tick | TierChange):
        assert item.merchant_id == str(uuid.UUID(item.merchant_id))
        return
    assert fields.is_locale(item.locale)
    assert item.correlation_id is None or fields.is_correlation_id(item.correlation_id)
    if isinstance(item, PointsChange):
        assert item.kind in {Kind.EARN, Kind.REVERSE, Kind.BONUS}
        assert 0 < item.points <= MAX_POINTS
        assert item.refund_id is None or is_id(item.refund_id)
        assert fields.shop_domain(item.shop) == item.shop
        assert item.text_key in TEXT_KEYS
        assert item.terms.release_at is None or item.terms.release_at.tzinfo is not None
        assert 0 <= item.terms.warning_days <= MAX_WARNING_DAYS
        assert Expiry.parse(str(item.terms.expiry)) == item.terms.expiry
        if item.source in {Source.ORDER, Source.REFUND, Source.CANCEL}:
            assert is_id(item.order_id)
            assert item.key is not None
            assert item.event_id == str(ids.event_id(item.shop, item.order_id, item.key))
            assert item.origin == f"order:{item.order_id}"
        else:
            assert item.key is None
        assert decode_command(encode_change(item)) == item, "a decoded change round trips"
    elif isinstance(item, Redemption):
        assert type(item.points) is int
        assert MIN_INT64 <= item.points <= MAX_INT64
        assert 0 < len(item.reward_id) <= 200
        assert 0 < len(item.idempotency_key) <= 255
    else:
        assert isinstance(item, Adjustment)
        assert type(item.points) is int
        assert 0 < abs(item.points) <= MAX_ADJUSTMENT
        assert 0 < len(item.reason) <= 200


typed_objects = st.builds(
    lambda kind, rest: {"type": kind, **rest},
    st.sampled_from([CHANGE, REDEEM, ADJUST, TICK, "points.other", None]),
    st.dictionaries(
        st.sampled_from(sorted(set(CHANGE_KEYS + REDEEM_KEYS + ADJUST_KEYS))), ANY_JSON, max_size=12
    ),
)
any_commands = st.one_of(
    st.binary(max_size=200),
    st.builds(encode, ANY_JSON, st.booleans()),
    st.builds(encode, typed_objects, st.booleans()),
    command_records(ANY_JSON),
)


@settings(max_examples=2_300, deadline=None, database=None)
@given(any_commands)
def test_any_command_record_decodes_within_bounds_or_is_refused(raw: bytes) -> None:
    try:
        item = decode_command(raw)
    except InvalidEventError as refusal:
        reason = str(refusal)
    else:
        check_command(item)
        return
    assert 0 < len(reason) < 300, "a refusal says why, briefly"


@pytest.mark.parametrize("kind", [[], ["earn"], {"earn": 1}])
def test_a_change_whose_kind_is_not_text_is_refused(kind: object) -> None:
    body = json.loads(encode_change(_change(Kind.EARN, 5)))

    with pytest.raises(InvalidEventError, match="kind"):
        decode_command(encode({**body, "kind": kind}))


@pytest.mark.parametrize("source", [[], ["order"], {"order": 1}, 1.5])
def test_a_change_whose_source_is_not_text_is_refused(source: object) -> None:
    body = json.loads(encode_change(_change(Kind.EARN, 5)))

    with pytest.raises(InvalidEventError, match="unknown source"):
        decode_command(encode({**body, "source": source}))


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
@pytest.mark.parametrize("record", ["change", "redemption", "adjustment", "tick"])
def test_a_command_whose_time_is_out_of_range_in_utc_is_refused(at: str, record: str) -> None:
    if record == "change":
        raw = encode_change(_change(Kind.EARN, 5))
    elif record == "redemption":
        raw = encode_redemption(
            Redemption(REDEMPTION_IDS[0], MERCHANT, CUSTOMER, 5, "r", "k", "en", AT)
        )
    elif record == "adjustment":
        raw = encode_adjustment(
            Adjustment(ADJUSTMENT_IDS[0], MERCHANT, CUSTOMER, 5, "r", "k", "en", AT)
        )
    else:
        raw = encode_tick(Tick(MERCHANT, CUSTOMER, AT))

    with pytest.raises(InvalidEventError, match=r"^at\b"):
        decode_command(encode({**json.loads(raw), "at": at}))


def test_decode_command_of_nothing_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="not JSON"):
        decode_command(None)


# ---------------------------------------------------------------------------- 4. customers, records

WINDOW_REFUSAL = "day window in which duplicates are recognized"


def id_of(item: Command) -> str | None:
    """The id a command is remembered by (a tick has none)."""
    if isinstance(item, Redemption):
        return item.redemption_id
    if isinstance(item, Adjustment):
        return str(ids.event_id(item.merchant_id, Source.ADJUSTMENT.value, item.adjustment_id))
    if isinstance(item, Tick | TierChange):
        return None  # a tier assignment is ordered by its revision instead
    return item.event_id


starting_balances = st.one_of(
    st.none(),
    st.integers(0, 10_000),
    st.integers(MAX_INT64 - 2 * MAX_POINTS, MAX_INT64),
    st.integers(MIN_INT64, MIN_INT64 + 2 * MAX_POINTS),
    st.integers(MIN_INT64, MAX_INT64),
)


def check_application(
    before: CustomerState, after: CustomerState, item: Command, outputs: list[CustomerOutput]
) -> None:
    assert MIN_INT64 <= after.balance <= MAX_INT64
    entries = [o for o in outputs if isinstance(o, LedgerEntry)]
    assert after.seq == before.seq + len(entries)
    assert after.balance == before.balance + sum(e.spendable_delta for e in entries)
    assert after.pending == before.pending + sum(e.pending_delta for e in entries)
    assert [e.seq for e in entries] == list(range(before.seq + 1, after.seq + 1))
    assert all(e.points > 0 for e in entries)
    assert after.pending >= 0
    assert after.lots.total() <= max(0, after.balance)
    # Whatever fell due comes first; then the command's own entry, if it makes one.
    own = [e for e in entries if e.kind not in {Kind.RELEASE, Kind.EXPIRE}]
    assert entries[: len(entries) - len(own)] == [e for e in entries if e not in own]
    key = id_of(item)
    if key is not None:
        assert after.recent.seen(key, item.at)
    if isinstance(item, Redemption | Adjustment):
        outcome = outputs[-2] if isinstance(outputs[-1], BalanceSnapshot) else outputs[-1]
        assert isinstance(outcome, RedemptionOutcome | AdjustmentOutcome)
        if outcome.status == RedemptionStatus.COMPLETED:
            assert own == [outcome.entry]
            assert own[0].points == abs(item.points)
            if isinstance(item, Redemption) or item.points < 0:
                assert own[0].balance >= 0, "a spend or a deduction never goes below zero"
        else:
            assert outcome.status == RedemptionStatus.FAILED
            assert outcome.reason in {"invalid_points", "insufficient_points"}
            assert own == []
    elif isinstance(item, PointsChange):
        assert len(own) == 1
        assert own[0].points == item.points
        assert own[0].kind == item.kind
        assert own[0].event_id == item.event_id
    else:
        assert own == []


@settings(max_examples=1_200, deadline=None, database=None)
@given(
    balance=starting_balances, raws=st.lists(command_records(SANE_JSON), min_size=1, max_size=12)
)
def test_any_sequence_of_command_records_keeps_the_balance_invariants(
    balance: int | None, raws: list[bytes]
) -> None:
    state = None if balance is None else CustomerState(balance=balance, lifetime_earned=balance)
    refusals: list[str] = []
    for raw in raws:
        try:
            item = decode_command(raw)
        except InvalidEventError:
            continue
        for delivery in (1, 2):  # every command is delivered twice: the second does nothing
            before = copy.deepcopy(state)
            key = id_of(item)
            was_applied = before is not None and key is not None and key_seen(before, key)
            try:
                # as the flow does: on the state decoded from its row, so that a refused
                # command changes nothing
                after, outputs = apply_customer(kept_customer(state), item)
            except InvalidEventError as refusal:
                refusals.append(str(refusal))
                break
            if isinstance(item, Tick) and state is None:
                assert (after, outputs) == (None, [])
                break
            assert after is not None
            state = after
            if (was_applied or delivery == 2) and not isinstance(item, Tick):
                assert outputs == []
                assert state == before
            else:
                check_application(before or CustomerState(), state, item, outputs)
    assert all("64-bit integer range" in r or WINDOW_REFUSAL in r for r in refusals), refusals


def key_seen(state: CustomerState, key: str) -> bool:
    return fingerprint(key) in state.recent.keys


@pytest.mark.parametrize(
    ("balance", "kind", "points"),
    [
        (MAX_INT64 - 5, Kind.EARN, 6),
        (MAX_INT64, Kind.EARN, 1),
        (MAX_INT64 - MAX_POINTS + 1, Kind.EARN, MAX_POINTS),
        (MIN_INT64 + 5, Kind.REVERSE, 6),
        (MIN_INT64, Kind.REVERSE, 1),
    ],
)
def test_a_change_that_would_leave_int64_is_refused(balance: int, kind: Kind, points: int) -> None:
    state = CustomerState(balance=balance, seq=7)
    change = decode_command(encode_change(_change(kind, points)))

    with pytest.raises(InvalidEventError, match="would leave the 64-bit integer range") as caught:
        apply_customer(kept_customer(state), change)  # as the flow does: on a decoded copy

    assert str(balance) in str(caught.value)


@pytest.mark.parametrize(("balance", "points"), [(MAX_INT64 - 5, 6), (MAX_INT64, 1)])
def test_an_adjustment_that_would_leave_int64_is_refused(balance: int, points: int) -> None:
    adjustment = Adjustment(ADJUSTMENT_IDS[0], MERCHANT, CUSTOMER, points, "r", "k", "en", AT)

    with pytest.raises(InvalidEventError, match="would leave the 64-bit integer range"):
        apply_customer(CustomerState(balance=balance, seq=7), adjustment)


@pytest.mark.parametrize(
    ("balance", "kind", "points", "after"),
    [(MAX_INT64 - 5, Kind.EARN, 5, MAX_INT64), (MIN_INT64 + 5, Kind.REVERSE, 5, MIN_INT64)],
)
def test_a_change_that_reaches_the_int64_bound_exactly_is_applied(
    balance: int, kind: Kind, points: int, after: int
) -> None:
    state, outputs = apply_customer(CustomerState(balance=balance), _change(kind, points))

    assert state is not None
    assert state.balance == after
    assert [o.balance for o in outputs if isinstance(o, LedgerEntry | BalanceSnapshot)] == [
        after,
        after,
    ]


def _change(kind: Kind, points: int) -> PointsChange:
    return change_of(
        kind,
        "earn" if kind == Kind.EARN else "cancel",
        ORDER_ID,
        shop=SHOP,
        points=points,
        text_key="points.earned.order",
        locale="en",
        at=AT,
    )


# ---------------------------------------------------------------------------- 5. customers, model
# Commands of every kind in any interleaving, at increasing times with some late ones, and
# duplicates of earlier ones, checked against what the outputs themselves must add up to.

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MODEL_EXPIRIES = ["none", "none", "lot:1", "lot:3", "lot:10", "inactivity:2", "inactivity:10"]
# Minutes between commands: mostly within a day, sometimes weeks (ticks after downtime).
gaps = st.one_of(st.integers(0, 24 * 60), st.integers(0, 24 * 60), st.integers(0, 45 * 24 * 60))
lateness = st.sampled_from([0, 0, 0, 0, 1, 180, 3 * 24 * 60, 40 * 24 * 60])
model_points = st.one_of(st.integers(1, 300), st.integers(1, 3_000))
model_ops = st.one_of(
    st.tuples(
        st.just("earn"),
        model_points,
        st.sampled_from(MODEL_EXPIRIES),
        st.sampled_from([0, 0, 1, 5]),  # pending days
        st.sampled_from([0, 1, 3, 14]),  # warning days
        gaps,
        lateness,
    ),
    st.tuples(st.just("bonus"), model_points, st.sampled_from([0, 0, 2]), gaps, lateness),
    st.tuples(st.just("reverse"), st.integers(0, 99), st.integers(0, 4), gaps, lateness),
    st.tuples(
        st.just("redeem"),
        st.one_of(st.integers(1, 300), model_points, st.sampled_from([0, -1, MAX_POINTS + 1])),
        gaps,
        lateness,
    ),
    st.tuples(
        st.just("adjust"),
        st.one_of(
            model_points,
            model_points.map(lambda p: -p),
            st.sampled_from([0, MAX_ADJUSTMENT + 1, -MAX_ADJUSTMENT - 1]),
        ),
        gaps,
        lateness,
    ),
    st.tuples(st.just("tick"), gaps),
    st.tuples(st.just("tick"), gaps),
    st.tuples(st.just("again"), st.integers(0, 99)),
)


class Script:
    """Turns drawn ops into commands. Reversals name an earlier earn or bonus and never take
    more than it gave (as the order stage guarantees); duplicates repeat an earlier command."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.clock = T0
        self.origins: list[PointsChange] = []  # earns and bonuses, to reverse
        self.left: dict[str, int] = {}  # points of each origin not yet reversed

    def add(self, n: int, op: tuple[Any, ...]) -> None:
        kind, *args = op
        if kind == "again":
            earlier = [c for c in self.commands if not isinstance(c, Tick)]
            if earlier:
                self.commands.append(earlier[args[0] % len(earlier)])
            return
        if kind == "tick":
            self.clock += timedelta(minutes=args[0])
            self.commands.append(Tick(MERCHANT, CUSTOMER, self.clock))
            return
        *args, gap, late = args
        self.clock += timedelta(minutes=gap)
        at = self.clock - timedelta(minutes=late)
        command: Command | None
        if kind == "earn":
            command = self.earn(n, at, *args)
        elif kind == "bonus":
            command = self.bonus(n, at, *args)
        elif kind == "reverse":
            command = self.reverse(n, at, *args)
        elif kind == "redeem":
            command = Redemption(f"redemption-{n}", MERCHANT, CUSTOMER, args[0], "r", "k", "en", at)
        else:
            command = Adjustment(f"adjustment-{n}", MERCHANT, CUSTOMER, args[0], "r", "k", "en", at)
        if command is not None:
            self.commands.append(command)

    def earn(
        self, n: int, at: datetime, points: int, expiry: str, pending: int, warning: int
    ) -> PointsChange:
        release_at = at + timedelta(days=pending) if pending else None
        return self.origin(
            change_of(
                Kind.EARN,
                "earn",
                n + 1,
                shop=SHOP,
                points=points,
                text_key="points.earned.order",
                locale="en",
                at=at,
                terms=Terms(release_at, Expiry.parse(expiry), warning),
            )
        )

    def bonus(self, n: int, at: datetime, points: int, pending: int) -> PointsChange:
        return self.origin(
            PointsChange(
                shop=SHOP,
                customer=CUSTOMER,
                source=Source.REFERRAL,
                source_id=f"ref-{n}",
                kind=Kind.BONUS,
                points=points,
                text_key="points.bonus.referral",
                locale="en",
                at=at,
                terms=Terms(release_at=at + timedelta(days=pending)) if pending else Terms(),
            )
        )

    def origin(self, change: PointsChange) -> PointsChange:
        self.origins.append(change)
        self.left[change.origin] = change.points
        return change

    def reverse(self, n: int, at: datetime, target: int, fifths: int) -> PointsChange | None:
        """All that is left of an earlier earn or bonus (fifths 0), or a share of it."""
        open_origins = [o for o in self.origins if self.left[o.origin] > 0]
        if not open_origins:
            return None
        origin = open_origins[target % len(open_origins)]
        remaining = self.left[origin.origin]
        points = remaining if fifths == 0 else max(1, remaining * fifths // 5)
        if origin.source != Source.ORDER:  # a bonus is taken back once, whole or in part
            self.left[origin.origin] = 0
            return replace(origin, kind=Kind.REVERSE, points=points, at=at, terms=Terms())
        assert origin.order_id is not None
        key = "cancel" if points == remaining else f"refund:{n + 1}"  # a cancel ends an order
        self.left[origin.origin] = 0 if key == "cancel" else remaining - points
        return change_of(
            Kind.REVERSE,
            key,
            origin.order_id,
            shop=SHOP,
            points=points,
            text_key="points.reversed.refund",
            locale="en",
            at=at,
        )


def model_commands(ops: list[tuple[Any, ...]]) -> list[Command]:
    script = Script()
    for n, op in enumerate(ops):
        script.add(n, op)
    return script.commands


@dataclass
class Books:
    """What the outputs so far add up to: the oracle's side of every comparison."""

    balance: int = 0
    pending: int = 0
    lifetime: int = 0
    seq: int = 0
    version: int = 0
    latest: datetime | None = None  # the latest time of an applied command
    applied: set[str] = field(default_factory=set)
    entry_ids: set[str] = field(default_factory=set)
    held: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # origin -> points, when
    last: BalanceSnapshot | None = None

    def too_old(self, at: datetime) -> bool:
        """Whether a command at `at` is older than the window behind the latest command."""
        if self.latest is None:
            return False
        return _day(at) < _day(self.latest - WINDOW)

    def post(self, entry: LedgerEntry, now: datetime) -> None:
        assert entry.seq == self.seq + 1, "entries are numbered 1..n without a gap"
        assert entry.event_id not in self.entry_ids, "one entry per change, once"
        self.entry_ids.add(entry.event_id)
        self.seq += 1
        self.balance += entry.spendable_delta
        self.pending += entry.pending_delta
        assert entry.balance == self.balance, "the balance is the sum of the spendable deltas"
        assert entry.pending == (self.pending if entry.pending_delta else None)
        assert self.pending >= 0, "pending points are never negative"
        assert entry.points > 0
        kind, spendable, pending = entry.kind, entry.spendable_delta, entry.pending_delta
        if kind in {Kind.EARN, Kind.BONUS}:
            assert (spendable, pending) in {(entry.points, 0), (0, entry.points)}
            self.lifetime += entry.points
        elif kind == Kind.REVERSE:
            assert spendable <= 0
            assert pending <= 0
            assert -(spendable + pending) == entry.points
            self.lifetime -= entry.points
        elif kind == Kind.RELEASE:
            assert spendable == -pending == entry.points
            assert entry.source == Source.PENDING
            points, release_at = self.held.pop(entry.source_id)
            assert (entry.points, entry.at) == (points, release_at), "released when due"
            assert entry.at <= now
        elif kind == Kind.EXPIRE:
            assert spendable == -entry.points
            assert pending == 0
            assert entry.at <= now
            assert entry.source == Source.EXPIRY
            day = entry.at.date().isoformat()
            assert entry.source_id in {f"lot:{day}", f"inactivity:{day}"}
            if entry.source_id.startswith("lot:"):
                assert entry.at.time() == time(0), "a lot expires at the end of a UTC day"
        else:
            assert kind in {Kind.SPEND, Kind.ADJUST}
            assert pending == 0
            assert abs(spendable) == entry.points
        if kind in {Kind.SPEND, Kind.EXPIRE} or (kind == Kind.ADJUST and spendable < 0):
            assert entry.balance >= 0, "only a reversal takes the balance below zero"

    def hold(self, change: PointsChange, entry: LedgerEntry) -> None:
        """Follow the pending points of the change's origin."""
        points, release_at = self.held.get(change.origin, (0, change.at))
        points += entry.pending_delta
        if change.terms.release_at is not None and entry.pending_delta > 0:
            release_at = max(release_at, change.terms.release_at)
        if points:
            self.held[change.origin] = (points, release_at)
        else:
            self.held.pop(change.origin, None)


def _day(at: datetime) -> int:
    return int(at.timestamp()) // 86_400


def check_outputs(
    books: Books, state: CustomerState, item: Command, outputs: list[CustomerOutput]
) -> None:
    now = item.at
    own: list[LedgerEntry] = []
    results = 0
    for output in outputs:
        if isinstance(output, LedgerEntry):
            if output.kind not in {Kind.RELEASE, Kind.EXPIRE}:
                assert not own, "one entry of the command's own"
                assert not results, "the command's entry comes before its outcome"
                own.append(output)
            else:
                assert not own, "whatever fell due happens before the command"
            books.post(output, now)
            if isinstance(item, PointsChange) and own == [output]:
                assert output.at == item.at
                books.hold(item, output)
        elif isinstance(output, ExpiryWarning):
            assert output.at <= now < output.expires_at, "a warning comes before the expiry"
            assert output.points > 0
        elif isinstance(output, RedemptionOutcome | AdjustmentOutcome):
            results += 1
            spend = (
                output.redemption.points
                if isinstance(output, RedemptionOutcome)
                else -output.adjustment.points
            )
            limit = MAX_POINTS if isinstance(output, RedemptionOutcome) else MAX_ADJUSTMENT
            if output.status == Status.COMPLETED:
                assert output.entry is not None
                assert own == [output.entry]
                assert output.entry.spendable_delta == -spend
            elif output.reason == "insufficient_points":
                assert own == []
                assert output.entry is None
                assert 0 < spend <= limit
                assert books.balance < spend
            else:
                assert output.reason == "invalid_points"
                assert own == []
                assert not 0 < abs(spend) <= limit or (
                    isinstance(output, RedemptionOutcome) and spend < 0
                )
        else:
            assert isinstance(output, BalanceSnapshot)
            assert output is outputs[-1], "the snapshot comes last"
            assert (output.balance, output.pending, output.lifetime_earned, output.seq) == (
                books.balance,
                books.pending,
                books.lifetime,
                books.seq,
            )
            assert output.version == books.version + 1
            books.version += 1
            books.last = output
    if isinstance(item, PointsChange):
        assert [(e.event_id, e.kind) for e in own] == [(item.event_id, item.kind)]
    elif isinstance(item, Redemption | Adjustment):
        assert results == 1
    else:
        assert own == []
        assert results == 0
    # The state agrees with the books, and a snapshot came iff something it shows changed.
    assert (state.balance, state.pending, state.lifetime_earned, state.seq) == (
        books.balance,
        books.pending,
        books.lifetime,
        books.seq,
    )
    assert state.pending == sum(h.points for h in (state.held or {}).values())
    assert state.lots.total() <= max(0, state.balance), "lots never exceed the balance"
    assert all(lot.points > 0 for lot in state.lots.dated)
    assert [lot.expires_at for lot in state.lots.dated] == sorted(
        {lot.expires_at for lot in state.lots.dated}
    )
    assert state.pending == sum(points for points, _ in books.held.values())
    # A snapshot followed every command that changed what it shows: the last one still holds.
    # None: nothing ever changed (say, only refused redemptions), so the empty state holds.
    last = books.last
    if last is None:
        assert (state.seq, state.pending, state.lifetime_earned) == (0, 0, 0)
        assert (next_expiry(state), due_at(state)) == (None, None)
        return
    assert (last.balance, last.pending, last.lifetime_earned, last.seq) == (
        books.balance,
        books.pending,
        books.lifetime,
        books.seq,
    )
    assert (last.next_expiry, last.due_at) == (next_expiry(state), due_at(state))


def run_model(commands: list[Command]) -> list[list[CustomerOutput] | str]:
    books = Books()
    state: CustomerState | None = None
    results: list[list[CustomerOutput] | str] = []
    for item in commands:
        key = id_of(item)
        too_old = key is not None and books.too_old(item.at)
        try:
            after, outputs = apply_customer(kept_customer(state), item)
        except InvalidEventError as refusal:
            reason = str(refusal)
            results.append(reason)
            assert too_old, reason
            assert WINDOW_REFUSAL in reason
            continue
        assert not too_old, "a command older than the window is refused"
        results.append(outputs)
        if after is None:
            assert isinstance(item, Tick)
            assert state is None
            assert outputs == []
            continue
        if key is not None and key in books.applied:
            assert outputs == [], "a duplicate is applied once: it outputs nothing"
            assert after == state
            continue
        if key is not None:
            books.applied.add(key)
            books.latest = max(books.latest or item.at, item.at)
        state = after
        check_outputs(books, state, item, outputs)
    return results


@settings(max_examples=2_000, deadline=None, database=None)
@given(st.lists(model_ops, min_size=1, max_size=30))
def test_any_interleaving_of_commands_keeps_the_customer_invariants(
    ops: list[tuple[Any, ...]],
) -> None:
    commands = model_commands(ops)

    first = run_model(commands)

    assert run_model(commands) == first, "the same commands make the same outputs"
