"""Shopify order webhooks decoded into typed, bounded facts, or refused with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from loyalty.orders import (
    FINANCIAL_STATUSES,
    ORDER_TOPICS,
    PAID_STATUSES,
    InvalidEventError,
    OrderEvent,
    OrderFacts,
    RefundFacts,
    parse_order_event,
    read_facts,
    read_order,
    read_refund,
)

D = Decimal
SHOP = "demo.myshopify.com"
ORDER_ID = 820982911946154508
CUSTOMER = 115310627314723954
BIG = 2**63
ORDER_TOPICS_ONLY = sorted(ORDER_TOPICS - {"refunds/create"})

VALID_ORDER: dict[str, Any] = {
    "id": ORDER_ID,
    "financial_status": "paid",
    "cancelled_at": None,
    "test": False,
    "taxes_included": False,
    "subtotal_price": "199.65",
    "total_tax": "12.34",
    "customer": {"id": CUSTOMER, "email": "c@example.com"},
    "currency": "USD",
}
VALID_REFUND: dict[str, Any] = {
    "id": 509562969,
    "order_id": ORDER_ID,
    "refund_line_items": [{"subtotal": "10.00", "total_tax": "1.00"}],
}
# The same bodies as JSON text fragments, so that a test can put any JSON text (a number
# Python's json module would not write, such as 1e400) in place of one field.
ORDER_JSON = {key: json.dumps(value) for key, value in VALID_ORDER.items()}
REFUND_JSON = {key: json.dumps(value) for key, value in VALID_REFUND.items()}


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def order(**changes: Any) -> dict[str, Any]:
    return {**VALID_ORDER, **changes}


def without(source: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k != key}


def json_object(fragments: dict[str, str]) -> bytes:
    return ("{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fragments.items()) + "}").encode()


def order_json(**fragments: str) -> bytes:
    """The valid order as JSON text with some fields' text replaced."""
    return json_object({**ORDER_JSON, **fragments})


def refund_json(**fragments: str) -> bytes:
    return json_object({**REFUND_JSON, **fragments})


def refused(read: Any, *args: Any) -> str:
    with pytest.raises(InvalidEventError) as caught:
        read(*args)
    return str(caught.value)


# ---------------------------------------------------------------------------- parse_order_event


def test_a_valid_order_body_becomes_typed_facts() -> None:
    event = parse_order_event(SHOP, "orders/create", body(**VALID_ORDER))

    assert event == OrderEvent(
        shop=SHOP,
        topic="orders/create",
        facts=OrderFacts(
            order_id=ORDER_ID,
            customer=CUSTOMER,
            financial_status="paid",
            cancelled=False,
            test=False,
            taxes_included=False,
            subtotal=D("199.65"),
            total_tax=D("12.34"),
        ),
    )
    assert event.order_id == ORDER_ID


def test_a_valid_refund_body_becomes_typed_facts() -> None:
    event = parse_order_event(SHOP, "refunds/create", body(**VALID_REFUND))

    assert event == OrderEvent(
        shop=SHOP,
        topic="refunds/create",
        facts=RefundFacts(
            refund_id=509562969, order_id=ORDER_ID, subtotal=D("10.00"), tax=D("1.00")
        ),
    )


def test_only_what_the_rules_read_is_kept() -> None:
    event = parse_order_event(SHOP, "orders/create", body(**order(note="x" * 10_000, lines=[1])))

    assert isinstance(event.facts, OrderFacts)
    assert not hasattr(event.facts, "note")
    assert not hasattr(event, "body")


@pytest.mark.parametrize("shop", ["Demo.MyShopify.com", "  demo.myshopify.com\n"])
def test_the_shop_domain_is_normalized(shop: str) -> None:
    assert parse_order_event(shop, "orders/create", body(**VALID_ORDER)).shop == SHOP


@pytest.mark.parametrize("topic", ORDER_TOPICS_ONLY)
def test_every_order_topic_takes_the_order_id_from_id(topic: str) -> None:
    event = parse_order_event(SHOP, topic, body(**order(id=5)))

    assert event.order_id == 5
    assert event.topic == topic
    assert isinstance(event.facts, OrderFacts)


def test_refunds_create_takes_the_order_id_from_order_id_and_its_own_id_from_id() -> None:
    event = parse_order_event(SHOP, "refunds/create", body(id=999, order_id=450789469))

    assert event.order_id == 450789469
    assert isinstance(event.facts, RefundFacts)
    assert event.facts.refund_id == 999


def test_refunds_create_without_order_id_is_refused_even_with_an_id() -> None:
    message = refused(parse_order_event, SHOP, "refunds/create", body(id=999))

    assert message == "order_id must be an integer id, got None"


def test_an_order_body_with_only_an_order_id_is_refused() -> None:
    raw = body(**without(order(order_id=ORDER_ID), "id"))

    assert (
        refused(parse_order_event, SHOP, "orders/paid", raw) == "id must be an integer id, got None"
    )


@pytest.mark.parametrize("shop", [None, ""])
def test_missing_shop_is_refused(shop: str | None) -> None:
    message = refused(parse_order_event, shop, "orders/create", body(**VALID_ORDER))

    assert message == "missing shop domain"


@pytest.mark.parametrize("shop", ["evil.com", "demo.myshopify.com.evil.com", "x" * 15_000])
def test_a_shop_that_is_not_a_myshopify_domain_is_refused(shop: str) -> None:
    message = refused(parse_order_event, shop, "orders/create", body(**VALID_ORDER))

    assert message.startswith("not a myshopify.com shop domain: ")
    assert len(message) < 100


@pytest.mark.parametrize(
    "topic", [None, "", "products/create", "ORDERS/CREATE", "orders/create ", "x" * 10_000]
)
def test_unsupported_topic_is_refused(topic: str | None) -> None:
    message = refused(parse_order_event, SHOP, topic, body(**VALID_ORDER))

    assert message.startswith("unsupported topic ")
    assert len(message) < 80


@pytest.mark.parametrize("raw", [None, b""])
def test_empty_body_is_refused(raw: bytes | None) -> None:
    assert refused(parse_order_event, SHOP, "orders/create", raw) == "empty body"


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"id": 1', b"\xff\xfe\xfa", b"   ", b"\xef\xbb\xbf{}", b"[" * 200_000]
)
def test_a_body_that_is_not_json_is_refused(raw: bytes) -> None:
    assert refused(parse_order_event, SHOP, "orders/create", raw).startswith("not JSON")


@pytest.mark.parametrize("topic", sorted(ORDER_TOPICS))
@pytest.mark.parametrize("raw", [b"[1, 2]", b"42", b'"id"', b"null", b"true", b"1.5", b"[]"])
def test_json_that_is_not_an_object_is_refused(topic: str, raw: bytes) -> None:
    assert refused(parse_order_event, SHOP, topic, raw) == "body is not a JSON object"


@pytest.mark.parametrize(
    "value",
    [None, "1001", True, False, 1001.0, [1001], {"id": 1001}],
    ids=["null", "string", "true", "false", "float", "list", "object"],
)
def test_a_non_integer_order_id_is_refused(value: object) -> None:
    message = refused(parse_order_event, SHOP, "orders/create", body(**order(id=value)))

    assert message.startswith("id must be an integer id, got ")


@pytest.mark.parametrize("value", [0, -1, BIG, 2**64, 10**20 - 1])
def test_an_order_id_outside_1_to_2_63_minus_1_is_refused(value: int) -> None:
    message = refused(parse_order_event, SHOP, "orders/create", body(**order(id=value)))

    assert message == f"id must be an id from 1 to 2^63-1, got {value}"


def test_json_numbers_in_a_body_are_read_exactly() -> None:
    raw = order_json(subtotal_price="0.1", total_tax="19.99")

    facts = parse_order_event(SHOP, "orders/create", raw).facts

    assert isinstance(facts, OrderFacts)
    assert facts.subtotal == D("0.1")
    assert facts.total_tax == D("19.99")


def test_invalid_event_is_a_value_error() -> None:
    assert issubclass(InvalidEventError, ValueError)


# ---------------------------------------------------------------------------- read_facts


def test_read_facts_reads_a_refund_only_for_the_refund_topic() -> None:
    assert isinstance(read_facts("refunds/create", VALID_REFUND), RefundFacts)
    assert isinstance(read_facts("orders/updated", VALID_ORDER), OrderFacts)


@pytest.mark.parametrize("value", [[VALID_ORDER], "order", 1, None])
def test_read_facts_refuses_a_body_that_is_not_an_object(value: object) -> None:
    assert refused(read_facts, "orders/create", value) == "body is not a JSON object"


# ---------------------------------------------------------------------------- read_order: customer


@pytest.mark.parametrize("changes", [{"customer": None}, {}], ids=["null", "absent"])
def test_an_order_without_a_customer_is_a_guest_checkout(changes: dict[str, Any]) -> None:
    source = without(VALID_ORDER, "customer") if not changes else order(**changes)

    assert read_order(source).customer is None


def test_the_customer_is_read_from_its_id() -> None:
    assert read_order(order(customer={"id": 5})).customer == 5


@pytest.mark.parametrize(
    "customer",
    [{"id": True}, {"id": -5}, {"id": 0}, {"id": "5"}, {"id": 5.0}, {}, {"id": None}, {"id": BIG}],
    ids=["true", "negative", "zero", "string", "float", "empty", "null-id", "2^63"],
)
def test_a_customer_object_must_name_a_valid_id(customer: dict[str, Any]) -> None:
    message = refused(read_order, order(customer=customer))

    assert message.startswith("customer.id must be ")


@pytest.mark.parametrize("customer", [5, "5", True, [{"id": 5}]])
def test_a_customer_that_is_not_an_object_is_refused(customer: object) -> None:
    assert refused(read_order, order(customer=customer)).startswith("customer must be an object")


# ---------------------------------------------------------------------------- read_order: status


@pytest.mark.parametrize("status", sorted(FINANCIAL_STATUSES))
def test_every_shopify_financial_status_is_read(status: str) -> None:
    facts = read_order(order(financial_status=status))

    assert facts.financial_status == status
    assert facts.paid is (status in PAID_STATUSES)


def test_paid_statuses_are_paid_partially_refunded_and_refunded() -> None:
    assert {"paid", "partially_refunded", "refunded"} == PAID_STATUSES


@pytest.mark.parametrize("changes", [{"financial_status": None}, {}], ids=["null", "absent"])
def test_an_order_without_a_financial_status_is_not_paid(changes: dict[str, Any]) -> None:
    source = without(VALID_ORDER, "financial_status") if not changes else order(**changes)
    facts = read_order(source)

    assert facts.financial_status is None
    assert not facts.paid


@pytest.mark.parametrize("status", ["PAID", "Paid", "paid ", "captured", "", "x" * 10_000])
def test_a_financial_status_shopify_does_not_send_is_refused(status: str) -> None:
    message = refused(read_order, order(financial_status=status))

    assert message.startswith("financial_status is not Shopify's: ")
    assert len(message) < 100


@pytest.mark.parametrize("status", [["paid"], {"a": 1}, {"status": "paid"}, 1, True])
def test_a_financial_status_that_is_not_a_string_is_refused(status: object) -> None:
    assert refused(read_order, order(financial_status=status)).startswith(
        "financial_status must be a string, got "
    )


# ---------------------------------------------------------------------------- read_order: flags


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (None, False)])
def test_test_is_a_json_boolean(value: bool | None, expected: bool) -> None:
    assert read_order(order(test=value)).test is expected


@pytest.mark.parametrize("key", ["test", "taxes_included"])
@pytest.mark.parametrize("value", ["true", "false", 1, 0, "yes"])
def test_a_flag_that_is_not_a_json_boolean_is_refused(key: str, value: object) -> None:
    assert refused(read_order, order(**{key: value})).startswith(f"{key} must be true or false")


# ---------------------------------------------------------------------------- read_order: cancel


@pytest.mark.parametrize(
    "cancelled_at",
    ["2024-05-02T10:00:00Z", "2024-05-02T10:00:00-04:00", "2024-05-02T10:00:00.5+00:00"],
)
def test_an_iso_cancelled_at_with_offset_cancels_the_order(cancelled_at: str) -> None:
    assert read_order(order(cancelled_at=cancelled_at)).cancelled is True


@pytest.mark.parametrize("changes", [{"cancelled_at": None}, {}], ids=["null", "absent"])
def test_an_order_without_cancelled_at_is_not_cancelled(changes: dict[str, Any]) -> None:
    source = without(VALID_ORDER, "cancelled_at") if not changes else order(**changes)

    assert read_order(source).cancelled is False


@pytest.mark.parametrize(
    "cancelled_at",
    ["2024-05-02T10:00:00", "2024-05-02", "yesterday", "", "true", 1714644000, True, ["x"]],
)
def test_a_cancelled_at_that_is_not_an_iso_time_with_offset_is_refused(
    cancelled_at: object,
) -> None:
    assert refused(read_order, order(cancelled_at=cancelled_at)).startswith("cancelled_at must be ")


# ---------------------------------------------------------------------------- read_order: money


def test_money_fields_keep_their_digits() -> None:
    facts = read_order(order(subtotal_price="10.50", total_tax="0.10"))

    assert str(facts.subtotal) == "10.50"
    assert str(facts.total_tax) == "0.10"


def test_the_subtotal_is_required() -> None:
    assert refused(read_order, without(VALID_ORDER, "subtotal_price")) == (
        "subtotal_price is missing"
    )


def test_total_tax_is_optional_when_taxes_are_not_included() -> None:
    facts = read_order(without(order(taxes_included=False), "total_tax"))

    assert facts.total_tax is None
    assert facts.taxes_included is False


@pytest.mark.parametrize(
    "source",
    [without(order(taxes_included=True), "total_tax"), order(taxes_included=True, total_tax=None)],
    ids=["absent", "null"],
)
def test_total_tax_is_required_when_taxes_are_included(source: dict[str, Any]) -> None:
    assert refused(read_order, source) == "total_tax is missing and taxes are included in prices"


def test_total_tax_with_taxes_included_is_read() -> None:
    facts = read_order(order(taxes_included=True, total_tax="5.00"))

    assert facts.taxes_included is True
    assert facts.total_tax == D("5.00")


@pytest.mark.parametrize("key", ["subtotal_price", "total_tax"])
@pytest.mark.parametrize("value", ["-1.00", "1e3", 1.5, "\u0661\u0660\u0660", "", True, ["1"]])
def test_an_invalid_amount_is_refused_naming_its_field(key: str, value: object) -> None:
    assert refused(read_order, order(**{key: value})).startswith(f"{key} must be a decimal amount")


# ---------------------------------------------------------------------------- read_refund


def test_a_refund_sums_its_lines_exactly() -> None:
    facts = read_refund(
        {
            "id": 1,
            "order_id": 2,
            "refund_line_items": [
                {"subtotal": "0.10", "total_tax": "0.01"},
                {"subtotal": "0.20", "total_tax": "0.02"},
                {"subtotal": "33.33333333"},
                {"subtotal": "33.33333333", "total_tax": None},
            ],
        }
    )

    assert facts.subtotal == D("66.96666666")
    assert facts.tax == D("0.03")  # 0.01 + 0.02, not 0.030000000000000002


def test_a_refund_of_many_maximal_lines_is_summed_without_rounding() -> None:
    line = {"subtotal": "999999999999999.99999999", "total_tax": "0.00000001"}

    facts = read_refund({"id": 1, "order_id": 2, "refund_line_items": [line] * 1_000})

    assert facts.subtotal == D("999999999999999.99999999") * 1_000
    assert facts.tax == D("0.00001")


@pytest.mark.parametrize(
    "changes",
    [{"refund_line_items": []}, {"refund_line_items": None}, {}],
    ids=["empty", "null", "absent"],
)
def test_a_refund_without_lines_refunds_nothing(changes: dict[str, Any]) -> None:
    facts = read_refund({"id": 1, "order_id": 2, **changes})

    assert facts.subtotal == 0
    assert facts.tax == 0


@pytest.mark.parametrize(
    "lines",
    [{"subtotal": "1.00"}, "[]", [{"subtotal": "1.00"}, "x"], [None], [[{"subtotal": "1"}]]],
)
def test_refund_line_items_must_be_a_list_of_objects(lines: object) -> None:
    message = refused(read_refund, {"id": 1, "order_id": 2, "refund_line_items": lines})

    assert message.startswith("refund_line_items must be a list of objects")


def test_a_refund_line_needs_a_subtotal() -> None:
    message = refused(read_refund, {"id": 1, "order_id": 2, "refund_line_items": [{}]})

    assert message == "subtotal is missing"


@pytest.mark.parametrize(
    "line",
    [{"subtotal": "-1.00"}, {"subtotal": "1e400"}, {"subtotal": "1.00", "total_tax": "-0.01"}],
)
def test_a_refund_line_with_an_invalid_amount_is_refused(line: dict[str, Any]) -> None:
    message = refused(read_refund, {"id": 1, "order_id": 2, "refund_line_items": [line]})

    assert "must be a decimal amount" in message


@pytest.mark.parametrize(
    ("key", "value"), [("id", 0), ("id", BIG), ("order_id", -1), ("order_id", True)]
)
def test_a_refund_needs_valid_refund_and_order_ids(key: str, value: object) -> None:
    message = refused(read_refund, {**VALID_REFUND, key: value})

    assert message.startswith(f"{key} must be an ")


# ---------------------------------------------------------------------------- hostile bodies

HOSTILE_ORDERS: dict[str, tuple[bytes, str]] = {
    "status-list": (order_json(financial_status='["paid"]'), "financial_status must be a string"),
    "status-object": (order_json(financial_status='{"a": 1}'), "financial_status must be a string"),
    "subtotal-20-digits": (order_json(subtotal_price='"99999999999999999999"'), "subtotal_price"),
    "subtotal-16-digits": (order_json(subtotal_price='"1000000000000000"'), "subtotal_price"),
    "subtotal-exponent-text": (order_json(subtotal_price='"1e400"'), "subtotal_price"),
    "subtotal-exponent-number": (order_json(subtotal_price="1e400"), "subtotal_price"),
    "subtotal-huge-exponent-text": (order_json(subtotal_price='"1e1000000000"'), "subtotal_price"),
    "subtotal-huge-exponent-number": (order_json(subtotal_price="1e1000000000"), "subtotal_price"),
    "subtotal-exponent-beyond-decimal": (
        order_json(subtotal_price="1e1000000000000000000"),
        "not JSON",
    ),
    "subtotal-5000-digit-text": (order_json(subtotal_price=f'"{"9" * 5_000}"'), "subtotal_price"),
    "subtotal-5000-digit-number": (order_json(subtotal_price="9" * 5_000), "not JSON"),
    "subtotal-5000-digit-fraction": (
        order_json(subtotal_price="9" * 5_000 + ".5"),
        "subtotal_price",
    ),
    "subtotal-nan-text": (order_json(subtotal_price='"NaN"'), "subtotal_price"),
    "subtotal-nan-number": (order_json(subtotal_price="NaN"), "not JSON"),
    "subtotal-infinity-number": (order_json(subtotal_price="-Infinity"), "not JSON"),
    "subtotal-arabic-indic": (
        order_json(subtotal_price='"\\u0661\\u0660\\u0660"'),
        "subtotal_price",
    ),
    "subtotal-number-too-big": (order_json(subtotal_price="1.0e15"), "subtotal_price"),
    "tax-4301-digits": (order_json(total_tax="9" * 4_301), "not JSON: an integer longer"),
    "id-2^63": (order_json(id=str(BIG)), "id must be an id from 1 to 2^63-1"),
    "id-20-digits": (order_json(id="99999999999999999999"), "id must be an id from 1 to 2^63-1"),
    "id-10^30": (order_json(id=str(10**30)), "not JSON: an integer longer than 20 digits"),
    "id-exponent": (order_json(id="1e3"), "id must be an integer id"),
    "customer-id-2^63": (order_json(customer=f'{{"id": {BIG}}}'), "customer.id must be an id"),
    "customer-id-2^64": (order_json(customer=f'{{"id": {2**64}}}'), "customer.id must be an id"),
    "customer-id-true": (order_json(customer='{"id": true}'), "customer.id must be an integer id"),
    "test-string": (order_json(test='"true"'), "test must be true or false"),
    "cancelled-at-number": (order_json(cancelled_at="1714644000"), "cancelled_at must be"),
    "cancelled-at-year-10000": (
        order_json(cancelled_at='"9999-12-31T23:59:59-01:00"'),
        "cancelled_at",
    ),
    "cancelled-at-year-0": (order_json(cancelled_at='"0001-01-01T00:00:00+01:00"'), "cancelled_at"),
    "status-lone-surrogate": (
        order_json(financial_status='"pa\\ud800id"'),
        "lone UTF-16 surrogate",
    ),
    "note-nested-1000": (order_json(note="[" * 1_000 + "]" * 1_000), "not JSON: nested"),
    "note-nested-33": (order_json(note="[" * 32 + "]" * 32), "not JSON: nested deeper than 32"),
}
HOSTILE_REFUNDS: dict[str, tuple[bytes, str]] = {
    "refund-id-10^30": (refund_json(id=str(10**30)), "not JSON: an integer longer than 20 digits"),
    "refund-id-2^63": (refund_json(id=str(BIG)), "id must be an id from 1 to 2^63-1"),
    "order-id-2^64": (refund_json(order_id=str(2**64)), "order_id must be an id from 1 to 2^63-1"),
    "line-1e400-number": (
        refund_json(refund_line_items='[{"subtotal": 1e400}]'),
        "subtotal must be",
    ),
    "line-1e400-text": (
        refund_json(refund_line_items='[{"subtotal": "1e400"}]'),
        "subtotal must be",
    ),
    "line-huge-exponent": (
        refund_json(refund_line_items='[{"subtotal": "1e1000000000"}]'),
        "subtotal must be",
    ),
    "line-5000-digits": (
        refund_json(refund_line_items=f'[{{"subtotal": "{"9" * 5_000}"}}]'),
        "subtotal must be",
    ),
    "line-tax-negative": (
        refund_json(refund_line_items='[{"subtotal": "1.00", "total_tax": -1}]'),
        "total_tax must be",
    ),
    "lines-object": (
        refund_json(refund_line_items='{"subtotal": "1"}'),
        "refund_line_items must be",
    ),
}


@pytest.mark.parametrize(("raw", "reason"), list(HOSTILE_ORDERS.values()), ids=list(HOSTILE_ORDERS))
@pytest.mark.parametrize("topic", ORDER_TOPICS_ONLY)
def test_a_hostile_order_body_is_refused_with_its_reason(
    raw: bytes, reason: str, topic: str
) -> None:
    message = refused(parse_order_event, SHOP, topic, raw)  # any other exception fails here

    assert reason in message
    assert len(message) < 250


@pytest.mark.parametrize(
    ("raw", "reason"), list(HOSTILE_REFUNDS.values()), ids=list(HOSTILE_REFUNDS)
)
def test_a_hostile_refund_body_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    message = refused(parse_order_event, SHOP, "refunds/create", raw)

    assert reason in message
    assert len(message) < 250


def test_the_hostile_fragments_are_valid_in_a_valid_body() -> None:
    """The hostile bodies differ from these only in the field under test."""
    assert isinstance(parse_order_event(SHOP, "orders/create", order_json()).facts, OrderFacts)
    assert isinstance(parse_order_event(SHOP, "refunds/create", refund_json()).facts, RefundFacts)


@pytest.mark.parametrize(
    ("times", "placed_at"),
    [
        (
            {"processed_at": "2026-03-01T23:30:00-05:00", "created_at": "2026-02-27T10:00:00Z"},
            datetime(2026, 3, 2, 4, 30, tzinfo=UTC),
        ),
        ({"created_at": "2026-02-27T10:00:00+00:00"}, datetime(2026, 2, 27, 10, tzinfo=UTC)),
        (
            {"processed_at": None, "created_at": "2026-02-27T10:00:00Z"},
            datetime(2026, 2, 27, 10, tzinfo=UTC),
        ),
        ({}, None),
    ],
    ids=["processed_at first, in UTC", "created_at", "processed_at null", "neither"],
)
def test_an_order_is_placed_when_processed_else_when_created(
    times: dict[str, Any], placed_at: datetime | None
) -> None:
    facts = read_order({**VALID_ORDER, **times})

    assert facts.placed_at == placed_at


def test_an_order_time_without_offset_is_refused() -> None:
    with pytest.raises(
        InvalidEventError, match="processed_at must be an ISO-8601 time with offset"
    ):
        read_order({**VALID_ORDER, "processed_at": "2026-03-01T10:00:00"})
