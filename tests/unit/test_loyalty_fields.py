"""Strict readers of decoded JSON values: ids, flags, text, times, money, rates, domains."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from loyalty import fields
from loyalty.errors import InvalidEventError
from loyalty.json_input import loads
from loyalty.limits import MAX_ID

D = Decimal
MISSING = object()
"""A key left out of the body altogether (as opposed to a JSON null)."""


def body_with(key: str, value: object) -> dict[str, Any]:
    return {} if value is MISSING else {key: value}


def error_of(read: Any, *args: Any) -> str:
    with pytest.raises(InvalidEventError) as caught:
        read(*args)
    return str(caught.value)


# ---------------------------------------------------------------------------- preview


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "'abc'"), (5, "5"), (None, "None"), (True, "True"), (D("1.5"), "Decimal('1.5')")],
)
def test_preview_of_a_short_value_is_its_repr(value: object, expected: str) -> None:
    assert fields.preview(value) == expected


def test_preview_of_a_repr_of_exactly_40_characters_is_not_cut() -> None:
    value = "x" * 38  # its repr has the two quotes: 40 characters

    assert fields.preview(value) == repr(value)


@pytest.mark.parametrize(
    "value",
    [
        "a" * 1_000_000,
        "ر" * 1_000_000,
        b"\xff" * 1_000_000,
        list(range(100_000)),
        {str(n): n for n in range(10_000)},
        D("9" * 5_000),
        [2**64] * 10,
        "x" * 39,
    ],
    ids=["1MB-ascii", "1M-arabic", "1MB-bytes", "list", "dict", "5000-digit-decimal", "ints", "41"],
)
def test_preview_is_never_longer_than_41_characters(value: object) -> None:
    shown = fields.preview(value)

    assert len(shown) <= fields.PREVIEW + 1
    assert shown.endswith("…")
    assert shown[:-1] == repr(value)[: fields.PREVIEW]


# ---------------------------------------------------------------------------- identifier


@pytest.mark.parametrize("value", [1, 2, 820982911946154508, MAX_ID])
def test_identifier_accepts_a_positive_64_bit_integer(value: int) -> None:
    result = fields.identifier({"id": value}, "id")

    assert result == value
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [True, False, "5", "820982911946154508", 5.0, D("5"), D("5.0"), None, MISSING, [5], {"id": 5}],
    ids=[
        "true",
        "false",
        "str",
        "long-str",
        "float",
        "decimal",
        "decimal-5.0",
        "null",
        "absent",
        "list",
        "object",
    ],
)
def test_identifier_refuses_what_is_not_a_json_integer(value: object) -> None:
    message = error_of(fields.identifier, body_with("order_id", value), "order_id")

    assert message.startswith("order_id must be an integer id, got ")


@pytest.mark.parametrize("value", [0, -1, -(2**63), 2**63, 2**64, 10**19, 10**30])
def test_identifier_refuses_an_integer_outside_1_to_2_63_minus_1(value: int) -> None:
    message = error_of(fields.identifier, {"id": value}, "id")

    assert message == f"id must be an id from 1 to 2^63-1, got {value}"


@pytest.mark.parametrize("value", [True, -5, "5", None, 2**63])
def test_identifier_names_the_field_by_its_label(value: object) -> None:
    message = error_of(fields.identifier, {"id": value}, "id", "customer.id")

    assert message.startswith("customer.id must be ")


def test_identifier_reads_a_20_digit_json_integer_as_out_of_range() -> None:
    body = loads(b'{"id": 99999999999999999999}')

    assert "id must be an id from 1 to 2^63-1" in error_of(fields.identifier, body, "id")


# ---------------------------------------------------------------------------- checked_id


@pytest.mark.parametrize("value", [1, MAX_ID])
def test_checked_id_returns_an_id_in_range(value: int) -> None:
    assert fields.checked_id("refund_id", value) == value


@pytest.mark.parametrize("value", [0, -1, MAX_ID + 1, 10**30])
def test_checked_id_refuses_an_id_out_of_range_naming_the_field(value: int) -> None:
    message = error_of(fields.checked_id, "refund_id", value)

    assert message.startswith("refund_id must be an id from 1 to 2^63-1, got ")


# ---------------------------------------------------------------------------- parse_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), ("42", 42), ("820982911946154508", 820982911946154508), (str(MAX_ID), MAX_ID)],
)
def test_parse_id_reads_ascii_digits_of_a_64_bit_id(text: str, expected: int) -> None:
    assert fields.parse_id(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1\n",
        "1.0",
        "1e3",
        "1_000",
        "abc",
        "²",
        "\u0661\u0660\u0660",
        "\uff11\uff10\uff10",
        "\U0001d7cf",
        str(MAX_ID + 1),
        "9" * 19 + "0",
        str(10**30),
        "1" * 5_000,
    ],
)
def test_parse_id_returns_none_for_anything_else(text: str) -> None:
    assert fields.parse_id(text) is None


# ---------------------------------------------------------------------------- flag


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), (None, False), (MISSING, False)]
)
def test_flag_reads_a_json_boolean_and_treats_absent_or_null_as_false(
    value: object, expected: bool
) -> None:
    assert fields.flag(body_with("test", value), "test") is expected


@pytest.mark.parametrize("value", ["true", "false", "True", 1, 0, "", "1", [], {}, D("1")])
def test_flag_refuses_anything_but_a_json_boolean(value: object) -> None:
    message = error_of(fields.flag, {"test": value}, "test")

    assert message == f"test must be true or false, got {fields.preview(value)}"


# ---------------------------------------------------------------------------- optional_text


@pytest.mark.parametrize(
    ("value", "expected"), [("paid", "paid"), ("", ""), (None, None), (MISSING, None)]
)
def test_optional_text_reads_a_string_or_absent(value: object, expected: str | None) -> None:
    assert fields.optional_text(body_with("note", value), "note") == expected


@pytest.mark.parametrize("value", [1, True, D("1.5"), ["paid"], {"a": 1}])
def test_optional_text_refuses_a_non_string(value: object) -> None:
    message = error_of(fields.optional_text, {"note": value}, "note")

    assert message.startswith("note must be a string, got ")


# ---------------------------------------------------------------------------- optional_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-02T10:00:00Z", datetime(2024, 5, 2, 10, 0, tzinfo=UTC)),
        ("2024-05-02T10:00:00+00:00", datetime(2024, 5, 2, 10, 0, tzinfo=UTC)),
        ("2024-05-02T12:30:00+02:30", datetime(2024, 5, 2, 10, 0, tzinfo=UTC)),
        ("2024-05-02T06:00:00-04:00", datetime(2024, 5, 2, 10, 0, tzinfo=UTC)),
        ("2024-05-02T10:00:00.123456Z", datetime(2024, 5, 2, 10, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_optional_time_reads_an_iso_time_with_offset_as_utc(text: str, expected: datetime) -> None:
    value = fields.optional_time({"cancelled_at": text}, "cancelled_at")

    assert value == expected
    assert value is not None
    assert value.tzinfo is UTC


@pytest.mark.parametrize("value", [None, MISSING])
def test_optional_time_absent_or_null_is_none(value: object) -> None:
    assert fields.optional_time(body_with("cancelled_at", value), "cancelled_at") is None


@pytest.mark.parametrize(
    "text",
    ["2024-05-02T10:00:00", "2024-05-02", "yesterday", "", "2024-13-01T00:00:00Z", "now" * 5_000],
)
def test_optional_time_refuses_a_time_without_offset_or_not_a_time(text: str) -> None:
    message = error_of(fields.optional_time, {"cancelled_at": text}, "cancelled_at")

    assert message.startswith("cancelled_at must be an ISO-8601 time with offset, got ")
    assert len(message) < 120


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-01:00",  # in UTC: the year 10000
        "0001-01-01T00:00:00+01:00",  # in UTC: the year 0
    ],
)
def test_optional_time_refuses_a_time_whose_utc_value_is_out_of_range(text: str) -> None:
    message = error_of(fields.optional_time, {"cancelled_at": text}, "cancelled_at")

    assert message.startswith("cancelled_at ")
    assert len(message) < 120


@pytest.mark.parametrize("value", [1714644000, True, ["2024-05-02T10:00:00Z"]])
def test_optional_time_refuses_a_non_string(value: object) -> None:
    message = error_of(fields.optional_time, {"cancelled_at": value}, "cancelled_at")

    assert message.startswith("cancelled_at must be a string, got ")


# ---------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.50", "10.50"),
        ("199.65", "199.65"),
        ("0", "0"),
        ("0.00", "0.00"),
        ("1000", "1000"),
        ("0.00000001", "0.00000001"),
        ("999999999999999", "999999999999999"),
        ("999999999999999.99999999", "999999999999999.99999999"),
        (0, "0"),
        (12, "12"),
        (10**15 - 1, "999999999999999"),
        (D("0.1"), "0.1"),
        (D("10.50"), "10.50"),
        (D("999999999999999.99999999"), "999999999999999.99999999"),
    ],
)
def test_money_keeps_the_exact_digits_of_an_accepted_amount(value: object, expected: str) -> None:
    amount = fields.money({"subtotal_price": value}, "subtotal_price")

    assert type(amount) is Decimal
    assert amount.as_tuple() == D(expected).as_tuple()  # the same digits and places


@pytest.mark.parametrize(
    "number",
    ["0.1", "19.99", "10.50", "0.000001", "0.0000001", "0.00000001", "0.00000000", "1E+3"],
)
def test_money_accepts_a_json_number_with_up_to_8_places(number: str) -> None:
    body = loads(b'{"total_tax": ' + number.encode() + b"}")

    amount = fields.money(body, "total_tax")

    assert amount.as_tuple() == D(number).as_tuple()


@pytest.mark.parametrize(
    "value",
    [
        "\u0661\u0660\u0660",  # Arabic-Indic digits
        "\u06f1\u06f0\u06f0",  # extended Arabic-Indic digits
        "\uff11\uff10\uff10",  # full-width digits
        "१००",  # Devanagari digits
        "\U0001d7cf\U0001d7ce\U0001d7ce",  # mathematical digits
        "1_000",
        "1,000",
        "1e3",
        "1E3",
        "1E+3",
        "-1.00",
        "-0",
        "-0.00",
        "+1.00",
        " 1.00",
        "1.00 ",
        "1.00\n",
        "\t1",
        "1.",
        ".5",
        "1..0",
        "",
        "0x10",
        "12.5 USD",
        "$12.50",
        "1" * 16,
        "1" * 16 + ".00",
        "1.123456789",
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        "9" * 5_000,
        "1e1000000000",
        D("1E+400"),
        D("9" * 5_000),
        D("1" * 16),
        D("1.123456789"),
        D("-1"),
        D("-0"),
        D("NaN"),
        D("Infinity"),
        1.5,
        1.0,
        0.0,
        True,
        False,
        -1,
        10**15,
        2**63,
        [1],
        {"amount": "1.00"},
    ],
)
def test_money_refuses_anything_but_a_bounded_plain_decimal(value: object) -> None:
    message = error_of(fields.money, {"subtotal_price": value}, "subtotal_price")

    assert message.startswith('subtotal_price must be a decimal amount such as "12.34" ')
    assert "15 digits before the point and 8 after" in message
    assert message.endswith(f"got {fields.preview(value)}")
    assert len(message) < 200


@pytest.mark.parametrize("number", [b"1e400", b"1E+400", b"1e1000000000", b"1" * 5_000 + b".5"])
def test_money_refuses_a_huge_or_exponent_json_number(number: bytes) -> None:
    body = loads(b'{"subtotal_price": ' + number + b"}")

    message = error_of(fields.money, body, "subtotal_price")

    assert message.startswith("subtotal_price must be a decimal amount")


@pytest.mark.parametrize("value", [None, MISSING])
def test_money_refuses_an_absent_or_null_amount(value: object) -> None:
    message = error_of(fields.money, body_with("subtotal_price", value), "subtotal_price")

    assert message == "subtotal_price is missing"


# ---------------------------------------------------------------------------- optional_money


@pytest.mark.parametrize("value", [None, MISSING])
def test_optional_money_absent_or_null_is_none(value: object) -> None:
    assert fields.optional_money(body_with("total_tax", value), "total_tax") is None


def test_optional_money_reads_a_present_amount_exactly() -> None:
    assert str(fields.optional_money({"total_tax": "1.50"}, "total_tax")) == "1.50"


@pytest.mark.parametrize("value", ["-1.00", "1e3", 1.5, True, "", "\u0661"])
def test_optional_money_refuses_a_present_invalid_amount(value: object) -> None:
    message = error_of(fields.optional_money, {"total_tax": value}, "total_tax")

    assert message.startswith("total_tax must be a decimal amount")


# ---------------------------------------------------------------------------- rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("1", "1"),
        ("1.5", "1.5"),
        ("0.0001", "0.0001"),
        ("9999.9999", "9999.9999"),
        ("10000", "10000"),
        ("10000.0000", "10000.0000"),
    ],
)
def test_rate_reads_points_per_unit_from_0_to_10000(text: str, expected: str) -> None:
    value = fields.rate(text)

    assert type(value) is Decimal
    assert value == D(expected)


@pytest.mark.parametrize(
    "text",
    [
        "10000.0001",
        "10001",
        "99999",
        "100000",
        "1.00001",
        "0.00001",
        "-1",
        "-0",
        "+1",
        "\u0661",
        "\uff11",
        "\u0663.\u0665",
        "1e3",
        "1_0",
        "",
        " 1",
        "1 ",
        "1.",
        ".5",
        "NaN",
        "Infinity",
        "1" * 5_000,
    ],
)
def test_rate_refuses_out_of_range_over_precise_negative_or_non_ascii(text: str) -> None:
    message = error_of(fields.rate, text)

    assert message.startswith(
        "points per unit must be a decimal from 0 to 10000 with at most 4 decimal places, got "
    )
    assert len(message) < 200


# ---------------------------------------------------------------------------- shop_domain


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("demo.myshopify.com", "demo.myshopify.com"),
        ("Demo.MyShopify.COM", "demo.myshopify.com"),
        ("  demo.myshopify.com \n", "demo.myshopify.com"),
        ("a.myshopify.com", "a.myshopify.com"),
        ("my-shop-2.myshopify.com", "my-shop-2.myshopify.com"),
        ("0.myshopify.com", "0.myshopify.com"),
        ("a" * 63 + ".myshopify.com", "a" * 63 + ".myshopify.com"),
    ],
)
def test_shop_domain_accepts_a_myshopify_domain_normalized(value: str, expected: str) -> None:
    assert fields.shop_domain(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "demo.myshopify.co",
        "demo.myshopify.net",
        "demo.shopify.com",
        "demo.com",
        "myshopify.com",
        ".myshopify.com",
        "-demo.myshopify.com",
        "de mo.myshopify.com",
        "demo_shop.myshopify.com",
        "demo.shop.myshopify.com",
        "demo.myshopify.com.evil.com",
        "demo.myshopify.com/",
        "https://demo.myshopify.com",
        "demo.myshopify.com:443",
        "démo.myshopify.com",
        "demo\x00.myshopify.com",
        "a" * 64 + ".myshopify.com",
        "a" * 15_000 + ".myshopify.com",
        "demo.myshopify.com" + " x" * 7_500,
        "   ",
    ],
)
def test_shop_domain_refuses_anything_else_with_a_bounded_message(value: str) -> None:
    message = error_of(fields.shop_domain, value)

    assert message == f"not a myshopify.com shop domain: {fields.preview(value)}"
    assert len(message) < 100


@pytest.mark.parametrize("value", [None, ""])
def test_shop_domain_refuses_an_empty_or_missing_domain(value: str | None) -> None:
    assert error_of(fields.shop_domain, value) == "missing shop domain"


# ---------------------------------------------------------------------------- is_locale


@pytest.mark.parametrize("value", ["en", "ar", "he", "fil"])
def test_is_locale_accepts_two_or_three_lower_case_letters(value: str) -> None:
    assert fields.is_locale(value)


@pytest.mark.parametrize(
    "value", ["", "e", "EN", "En", "engl", "en-US", "en_US", "e1", "é", "عر", "en\n", " en"]
)
def test_is_locale_refuses_anything_else(value: str) -> None:
    assert not fields.is_locale(value)


# ---------------------------------------------------------------------------- is_correlation_id


@pytest.mark.parametrize(
    "value",
    [
        "a",
        "req-1",
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "svc:op.v1_2",
        "x" * 128,
    ],
)
def test_is_correlation_id_accepts_1_to_128_safe_characters(value: str) -> None:
    assert fields.is_correlation_id(value)


@pytest.mark.parametrize(
    "value", ["", "x" * 129, "a b", "a/b", "a\nb", "a\n", "é", "\u0661", "a\x00", "<script>"]
)
def test_is_correlation_id_refuses_anything_else(value: str) -> None:
    assert not fields.is_correlation_id(value)


# ---------------------------------------------------------------------------- object_field


@pytest.mark.parametrize(
    ("value", "expected"), [({"id": 5}, {"id": 5}), ({}, {}), (None, None), (MISSING, None)]
)
def test_object_field_reads_an_object_or_absent(
    value: object, expected: dict[str, Any] | None
) -> None:
    assert fields.object_field(body_with("customer", value), "customer") == expected


@pytest.mark.parametrize("value", ["5", 5, True, [{"id": 5}], D("5")])
def test_object_field_refuses_a_non_object(value: object) -> None:
    message = error_of(fields.object_field, {"customer": value}, "customer")

    assert message == f"customer must be an object, got {fields.preview(value)}"


# ---------------------------------------------------------------------------- list_of_objects


@pytest.mark.parametrize(
    ("value", "expected"),
    [([{"a": 1}, {}], [{"a": 1}, {}]), ([], []), (None, []), (MISSING, [])],
)
def test_list_of_objects_reads_a_list_of_objects_or_absent_as_empty(
    value: object, expected: list[dict[str, Any]]
) -> None:
    assert fields.list_of_objects(body_with("refund_line_items", value), "refund_line_items") == (
        expected
    )


@pytest.mark.parametrize(
    "value", [{"a": 1}, "[]", 1, True, [{"a": 1}, 2], [None], [[{"a": 1}]], ["x" * 1_000_000]]
)
def test_list_of_objects_refuses_anything_else(value: object) -> None:
    message = error_of(fields.list_of_objects, {"refund_line_items": value}, "refund_line_items")

    assert message.startswith("refund_line_items must be a list of objects, got ")
    assert len(message) < 120
