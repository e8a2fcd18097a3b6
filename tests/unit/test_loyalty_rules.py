"""Points arithmetic: earn basis, flooring, refund basis and cumulative reversal targets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from loyalty.orders import InvalidEventError, read_order, read_refund
from loyalty.rules import earn_basis, floor_points, points_for, refund_basis, reversal_target

D = Decimal


# ---------------------------------------------------------------------------- floor_points


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0", 0),
        ("0.999", 0),
        ("0.0000001", 0),
        ("1.0", 1),
        ("1", 1),
        ("1.999999999", 1),
        ("199.99", 199),
        ("200.00", 200),
        ("15.075", 15),
    ],
)
def test_floor_points_rounds_down_to_a_whole_point(amount: str, expected: int) -> None:
    result = floor_points(D(amount))

    assert result == expected
    assert type(result) is int


def test_floor_points_floors_toward_negative_infinity() -> None:
    assert floor_points(D("-0.5")) == -1


# ---------------------------------------------------------------------------- points_for


@pytest.mark.parametrize(
    ("basis", "ppu", "expected"),
    [
        ("199.99", "1", 199),
        ("0.999", "1", 0),
        ("1.0", "1", 1),
        ("10.05", "1.5", 15),  # 15.075
        ("0.01", "1.5", 0),  # 0.015
        ("33.33", "1.5", 49),  # 49.995 must not round up to 50
        ("0.67", "1.5", 1),  # 1.005
        ("10.05", "0.1", 1),  # 1.005
        ("0.01", "0.1", 0),  # 0.001
        ("33.33", "0.1", 3),  # 3.333
        ("9.99", "0.1", 0),  # 0.999
        ("10.00", "0.1", 1),  # exactly 1, no binary-float drift
        ("100", "0.25", 25),
        ("3.99", "0.25", 0),
        ("50.50", "2", 101),
    ],
)
def test_points_for_multiplies_exactly_and_floors(basis: str, ppu: str, expected: int) -> None:
    assert points_for(D(basis), D(ppu)) == expected


@pytest.mark.parametrize(
    ("basis", "ppu"),
    [("0", "1"), ("0.00", "1.5"), ("-5", "1"), ("-0.01", "2"), ("100", "0"), ("100", "-1")],
)
def test_points_for_non_positive_basis_or_rate_earns_nothing(basis: str, ppu: str) -> None:
    assert points_for(D(basis), D(ppu)) == 0


def test_points_for_negative_basis_and_negative_rate_do_not_cancel_out() -> None:
    assert points_for(D("-10"), D("-1")) == 0


# ---------------------------------------------------------------------------- earn_basis


def order(subtotal: str, tax: str = "0.00", **extra: Any) -> dict[str, Any]:
    return {"id": 1, "subtotal_price": subtotal, "total_tax": tax, **extra}


def basis_of(body: dict[str, Any]) -> Decimal:
    return earn_basis(read_order(body))


def test_earn_basis_is_the_subtotal_when_taxes_are_not_included() -> None:
    assert basis_of(order("110.00", "10.00", taxes_included=False)) == D("110.00")


def test_earn_basis_without_a_taxes_included_field_keeps_the_tax() -> None:
    assert basis_of(order("110.00", "10.00")) == D("110.00")


def test_earn_basis_subtracts_the_tax_when_taxes_are_included() -> None:
    assert basis_of(order("110.00", "10.00", taxes_included=True)) == D("100.00")


@pytest.mark.parametrize("flag", ["true", 1, "yes"])
def test_taxes_included_must_be_a_json_boolean(flag: object) -> None:
    with pytest.raises(InvalidEventError, match="taxes_included must be true or false"):
        basis_of(order("110.00", "10.00", taxes_included=flag))


def test_earn_basis_with_taxes_included_does_not_need_the_tax_when_excluded() -> None:
    body = {"id": 1, "subtotal_price": "42.10", "taxes_included": False}

    assert basis_of(body) == D("42.10")


def test_earn_basis_with_taxes_included_needs_total_tax() -> None:
    body = {"id": 1, "subtotal_price": "42.10", "taxes_included": True}

    with pytest.raises(InvalidEventError, match="total_tax is missing"):
        basis_of(body)


@pytest.mark.parametrize(("subtotal", "tax"), [("5.00", "7.50"), ("0.00", "0.01"), ("1", "1.00")])
def test_earn_basis_is_never_negative(subtotal: str, tax: str) -> None:
    assert basis_of(order(subtotal, tax, taxes_included=True)) == D(0)


def test_a_negative_subtotal_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="subtotal_price must be a decimal amount"):
        basis_of(order("-3.00"))


def test_earn_basis_is_exact_decimal() -> None:
    basis = basis_of(order("0.30", "0.10", taxes_included=True))

    assert basis == D("0.20")
    assert isinstance(basis, Decimal)


def test_earn_basis_rejects_a_float_subtotal() -> None:
    with pytest.raises(InvalidEventError, match="subtotal_price must be a decimal amount"):
        basis_of({"id": 1, "subtotal_price": 10.5})


def test_earn_basis_rejects_a_missing_subtotal() -> None:
    with pytest.raises(InvalidEventError, match="subtotal_price is missing"):
        basis_of({"id": 1})


# ---------------------------------------------------------------------------- refund_basis


def refund(*lines: tuple[str, str | None]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for subtotal, tax in lines:
        line: dict[str, Any] = {"subtotal": subtotal}
        if tax is not None:
            line["total_tax"] = tax
        items.append(line)
    return {"id": 7, "order_id": 1, "refund_line_items": items}


def refunded(body: dict[str, Any], *, taxes_included: bool) -> Decimal:
    facts = read_refund(body)
    return refund_basis(facts.subtotal, facts.tax, taxes_included=taxes_included)


def test_refund_basis_sums_line_subtotals() -> None:
    body = refund(("10.05", "1.00"), ("0.01", "0.00"), ("33.33", "3.00"))

    assert refunded(body, taxes_included=False) == D("43.39")


def test_refund_basis_subtracts_line_tax_when_taxes_are_included() -> None:
    body = refund(("10.05", "1.00"), ("0.01", "0.00"), ("33.33", "3.00"))

    assert refunded(body, taxes_included=True) == D("39.39")


def test_refund_basis_lines_without_tax_keep_their_subtotal() -> None:
    body = refund(("20.00", None), ("10.00", "2.00"))

    assert refunded(body, taxes_included=True) == D("28.00")


@pytest.mark.parametrize(
    "body",
    [
        {"id": 7, "order_id": 1},
        {"id": 7, "order_id": 1, "refund_line_items": []},
        {"id": 7, "order_id": 1, "refund_line_items": None},
    ],
)
def test_refund_basis_without_lines_is_zero(body: dict[str, Any]) -> None:
    assert refunded(body, taxes_included=True) == D(0)


def test_refund_basis_is_never_negative() -> None:
    body = refund(("1.00", "5.00"))

    assert refunded(body, taxes_included=True) == D(0)


def test_refund_basis_rejects_lines_that_are_not_a_list() -> None:
    with pytest.raises(InvalidEventError, match="must be a list of objects"):
        refunded(
            {"id": 7, "order_id": 1, "refund_line_items": {"subtotal": "1.00"}},
            taxes_included=False,
        )


def test_refund_basis_rejects_lines_that_are_not_objects() -> None:
    with pytest.raises(InvalidEventError, match="must be a list of objects"):
        refunded({"id": 7, "order_id": 1, "refund_line_items": ["1.00"]}, taxes_included=False)


def test_refund_basis_rejects_a_line_without_a_subtotal() -> None:
    with pytest.raises(InvalidEventError, match="subtotal is missing"):
        refunded(
            {"id": 7, "order_id": 1, "refund_line_items": [{"total_tax": "1.00"}]},
            taxes_included=False,
        )


# ---------------------------------------------------------------------------- reversal_target


@pytest.mark.parametrize("refunded", ["0", "0.00", "-5.00"])
def test_reversal_target_of_nothing_refunded_is_zero(refunded: str) -> None:
    assert reversal_target(100, D("100.00"), D(refunded)) == 0


@pytest.mark.parametrize("earned", [0, -3])
def test_reversal_target_of_nothing_earned_is_zero(earned: int) -> None:
    assert reversal_target(earned, D("100.00"), D("100.00")) == 0


@pytest.mark.parametrize("refunded", ["100.00", "100.01", "1000"])
def test_reversal_target_of_a_full_or_over_refund_is_everything_earned(refunded: str) -> None:
    assert reversal_target(150, D("100.00"), D(refunded)) == 150


@pytest.mark.parametrize(
    ("earned", "basis", "refunded", "expected"),
    [
        (100, "100.00", "50.00", 50),
        (100, "100.00", "99.99", 99),  # 99.99 floors, never rounds up
        (100, "100.00", "0.01", 0),
        (199, "199.99", "100.00", 99),  # 99.5...
        (15, "10.05", "5.025", 7),  # 7.5
        (49, "33.33", "11.11", 16),  # 16.333...
        (3, "33.33", "33.32", 2),  # 2.9999...
        (1, "0.67", "0.66", 0),
    ],
)
def test_reversal_target_is_the_floored_proportion(
    earned: int, basis: str, refunded: str, expected: int
) -> None:
    assert reversal_target(earned, D(basis), D(refunded)) == expected


@pytest.mark.parametrize("basis", ["0", "0.00", "-1.00"])
def test_reversal_target_with_a_zero_basis_reverses_everything(basis: str) -> None:
    assert reversal_target(40, D(basis), D("0.01")) == 40


def test_reversal_target_is_never_above_earned_and_grows_with_the_refund() -> None:
    basis = D("123.45")
    previous = 0
    for cents in range(0, 20_000, 37):
        target = reversal_target(185, basis, D(cents) / 100)
        assert 0 <= target <= 185
        assert target >= previous
        previous = target
    assert previous == 185


def test_reversal_target_of_partial_refunds_adding_to_the_whole_is_everything() -> None:
    basis = D("33.33")
    parts = [D("11.11"), D("11.11"), D("11.11")]
    refunded = sum(parts, D(0))

    assert refunded == basis
    assert reversal_target(49, basis, refunded) == 49
