"""The `loyalnest` command line refuses values that would reach the ledger malformed."""

from __future__ import annotations

import pytest

from loyalnest.cli import parser
from loyalty.policy import Expiry, ExpiryMode

ADD = ["merchants", "add", "--shop", "a.myshopify.com", "--webhook-secret", "s"]


@pytest.mark.parametrize("locale", ["en", "he", "fil"])
def test_merchants_add_takes_a_language_code(locale: str) -> None:
    assert parser().parse_args([*ADD, "--locale", locale]).locale == locale


@pytest.mark.parametrize("locale", ["EN", "he-IL", "e", "english", "", "x" * 300])
def test_merchants_add_refuses_anything_else(
    locale: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([*ADD, "--locale", locale])

    assert exited.value.code == 2
    assert "not a language code" in capsys.readouterr().err


@pytest.mark.parametrize(("rate", "expected"), [("1", "1"), ("1.5", "1.5"), ("10000", "10000")])
def test_merchants_add_takes_a_bounded_rate(rate: str, expected: str) -> None:
    assert str(parser().parse_args([*ADD, "--points-per-unit", rate]).points_per_unit) == expected


@pytest.mark.parametrize("rate", ["10000.0001", "50000", "-1", "1.23456", "1e3", "NaN", "\u0661"])
def test_merchants_add_refuses_a_rate_the_flow_would_refuse(
    rate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args([*ADD, "--points-per-unit", rate])

    assert "points per unit" in capsys.readouterr().err


def test_merchants_add_normalizes_the_shop_domain() -> None:
    assert parser().parse_args([*ADD[:2], "--shop", " A.MyShopify.com ", *ADD[4:]]).shop == (
        "a.myshopify.com"
    )


@pytest.mark.parametrize("shop", ["evil.example.com", "a.myshopify.com.evil.io", "x" * 300])
def test_merchants_add_refuses_a_shop_that_is_not_a_myshopify_domain(
    shop: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args([*ADD[:2], "--shop", shop, *ADD[4:]])

    assert "shop domain" in capsys.readouterr().err


# ------------------------------------------------------------------- program settings flags


def test_merchants_add_takes_the_program_settings() -> None:
    args = parser().parse_args(
        [*ADD, "--pending-days", "7", "--expiry", "lot:30", "--expiry-warning-days", "3"]
    )

    assert (args.pending_days, args.expiry, args.expiry_warning_days) == (
        7,
        Expiry(ExpiryMode.LOT, 30),
        3,
    )


def test_merchants_add_without_settings_flags_leaves_them_unset() -> None:
    # None: keep what is stored (a new merchant gets the defaults), never reset to a default.
    args = parser().parse_args(ADD)

    assert (args.pending_days, args.expiry, args.expiry_warning_days) == (None, None, None)


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ("none", Expiry()),
        ("inactivity:365", Expiry(ExpiryMode.INACTIVITY, 365)),
        ("lot:3650", Expiry(ExpiryMode.LOT, 3650)),
    ],
)
def test_merchants_add_takes_each_expiry_form(expiry: str, expected: Expiry) -> None:
    assert parser().parse_args([*ADD, "--expiry", expiry]).expiry == expected


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--pending-days", "366", "pending days must be an integer from 0 to 365"),
        ("--pending-days", "-1", "pending days must be an integer from 0 to 365"),
        ("--pending-days", "7.5", "pending days must be an integer from 0 to 365"),
        ("--pending-days", "\u0667", "pending days must be an integer from 0 to 365"),
        ("--expiry", "lot:0", "expiry must be none, inactivity:DAYS or lot:DAYS"),
        ("--expiry", "lot:3651", "expiry must be none, inactivity:DAYS or lot:DAYS"),
        ("--expiry", "lot", "expiry must be none, inactivity:DAYS or lot:DAYS"),
        ("--expiry", "never", "expiry must be none, inactivity:DAYS or lot:DAYS"),
        ("--expiry", "LOT:30", "expiry must be none, inactivity:DAYS or lot:DAYS"),
        ("--expiry-warning-days", "400", "expiry warning days must be an integer from 0 to 365"),
        ("--expiry-warning-days", "x", "expiry warning days must be an integer from 0 to 365"),
    ],
)
def test_merchants_add_refuses_bad_settings_naming_the_flag(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([*ADD, f"{flag}={value}"])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: {message}" in err
