"""Parsing and validating Shopify order webhooks."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from loyalty.orders import ORDER_TOPICS, InvalidEventError, OrderEvent, money, parse_order_event

SHOP = "demo.myshopify.com"


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_valid_orders_create_body_is_parsed() -> None:
    raw = body(id=820982911946154508, total_price="199.65", currency="USD")

    event = parse_order_event(SHOP, "orders/create", raw)

    assert event == OrderEvent(
        shop=SHOP,
        topic="orders/create",
        body={"id": 820982911946154508, "total_price": "199.65", "currency": "USD"},
    )
    assert event.order_id == 820982911946154508


@pytest.mark.parametrize("topic", sorted(ORDER_TOPICS - {"refunds/create"}))
def test_every_order_topic_takes_the_order_id_from_id(topic: str) -> None:
    assert parse_order_event(SHOP, topic, body(id=5)).order_id == 5


def test_refunds_create_takes_the_order_id_from_order_id() -> None:
    event = parse_order_event(SHOP, "refunds/create", body(id=999, order_id=450789469))

    assert event.order_id == 450789469


def test_refunds_create_without_order_id_is_rejected_even_with_an_id() -> None:
    with pytest.raises(InvalidEventError, match="order_id must be an integer"):
        parse_order_event(SHOP, "refunds/create", body(id=999))


@pytest.mark.parametrize("shop", [None, ""])
def test_missing_shop_is_rejected(shop: str | None) -> None:
    with pytest.raises(InvalidEventError, match="missing shop domain"):
        parse_order_event(shop, "orders/create", body(id=1))


@pytest.mark.parametrize("topic", [None, "", "products/create", "ORDERS/CREATE", "orders/create "])
def test_unsupported_topic_is_rejected(topic: str | None) -> None:
    with pytest.raises(InvalidEventError, match="unsupported topic"):
        parse_order_event(SHOP, topic, body(id=1))


@pytest.mark.parametrize("raw", [None, b""])
def test_empty_body_is_rejected(raw: bytes | None) -> None:
    with pytest.raises(InvalidEventError, match="empty body"):
        parse_order_event(SHOP, "orders/create", raw)


@pytest.mark.parametrize("raw", [b"{not json", b'{"id": 1', b"\xff\xfe\xfa", b"   "])
def test_invalid_json_is_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidEventError, match=r"body is not (JSON|UTF-8)"):
        parse_order_event(SHOP, "orders/create", raw)


@pytest.mark.parametrize("raw", [b"[1, 2]", b"42", b'"id"', b"null"])
def test_json_that_is_not_an_object_is_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidEventError, match="body is not a JSON object"):
        parse_order_event(SHOP, "orders/create", raw)


@pytest.mark.parametrize(
    "raw",
    [
        body(name="#1001"),
        body(id=None),
        body(id="1001"),
        body(id=True),
        body(id=False),
        b'{"id": 1001.0}',
        body(id=[1001]),
    ],
    ids=["missing", "null", "string", "true", "false", "float", "list"],
)
def test_missing_or_non_integer_id_is_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidEventError, match="id must be an integer"):
        parse_order_event(SHOP, "orders/create", raw)


def test_json_floats_become_decimals_not_floats() -> None:
    event = parse_order_event(
        SHOP, "orders/create", b'{"id": 1, "total_price": 0.1, "lines": [{"price": 19.99}]}'
    )

    assert type(event.body["total_price"]) is Decimal
    assert event.body["total_price"] == Decimal("0.1")
    assert type(event.body["lines"][0]["price"]) is Decimal
    assert event.body["lines"][0]["price"] == Decimal("19.99")


def test_invalid_event_is_a_value_error() -> None:
    assert issubclass(InvalidEventError, ValueError)


# --- money ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("199.65", Decimal("199.65")),
        ("0.10", Decimal("0.10")),
        ("-5.00", Decimal("-5.00")),
        ("1000", Decimal("1000")),
        (12, Decimal("12")),
        (Decimal("0.1"), Decimal("0.1")),
    ],
)
def test_money_accepts_decimal_strings_exactly(value: object, expected: Decimal) -> None:
    amount = money({"total_price": value}, "total_price")

    assert type(amount) is Decimal
    assert amount == expected
    assert str(amount) == str(expected)


def test_money_keeps_a_json_float_parsed_by_parse_order_event_exact() -> None:
    event = parse_order_event(SHOP, "orders/create", b'{"id": 1, "total_price": 0.1}')

    assert money(event.body, "total_price") == Decimal("0.1")


@pytest.mark.parametrize("value", [0.1, 199.65, 1.0])
def test_money_rejects_a_float(value: float) -> None:
    with pytest.raises(
        InvalidEventError, match="total_price must be a decimal string, not a float"
    ):
        money({"total_price": value}, "total_price")


@pytest.mark.parametrize("fields", [{}, {"total_price": None}], ids=["absent", "null"])
def test_money_rejects_a_missing_value(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventError, match="total_price is missing"):
        money(fields, "total_price")


@pytest.mark.parametrize("value", ["abc", "", "1,00", "12.5 USD"])
def test_money_rejects_a_non_decimal_string(value: str) -> None:
    with pytest.raises(InvalidEventError, match="total_price is not a decimal amount"):
        money({"total_price": value}, "total_price")


@pytest.mark.parametrize("value", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf"])
def test_money_rejects_nan_and_infinity(value: str) -> None:
    with pytest.raises(InvalidEventError, match="total_price is not a finite amount"):
        money({"total_price": value}, "total_price")
