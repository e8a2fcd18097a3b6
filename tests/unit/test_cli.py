"""The `loyalnest` command line refuses values that would reach the ledger malformed, naming
the flag (exit status 2), and `points adjust` waits for its outcome, bounded."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from loyalnest.cli import main, parser, produce_sample_orders
from loyalnest.points_adjust import POLL_SECONDS, outcome_status, wait_for_decision
from loyalnest.settings import Settings
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


class RecordingProducer:
    """Stands in for the Kafka producer: keeps what was produced, acknowledges everything."""

    def __init__(self) -> None:
        self.topics: list[str] = []

    def produce(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes,
        headers: list[tuple[str, str | bytes | None]],
        on_delivery: Callable[[object, object], None],
    ) -> None:
        self.topics.append(topic)
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        return 0


def test_sample_orders_go_to_the_prefixed_orders_topic() -> None:
    settings = Settings(_env_file=None, kafka_topic_prefix="run42.")
    producer = RecordingProducer()

    sent = produce_sample_orders(settings, "demo.myshopify.com", 3, 7, lambda _s: producer)

    assert sent == 3
    assert producer.topics == ["run42.shopify.orders"] * 3


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


def test_merchants_add_takes_the_referral_terms() -> None:
    args = parser().parse_args(
        [
            *ADD,
            "--referral-advocate-points",
            "1000000",
            "--referral-friend-points=250",
            "--referral-min-subtotal",
            "25.5",
            "--referral-review-days",
            "30",
        ]
    )

    assert args.referral_advocate_points == 1_000_000
    assert args.referral_friend_points == 250
    assert args.referral_min_subtotal == Decimal("25.50")
    assert str(args.referral_min_subtotal) == "25.50"
    assert args.referral_review_days == 30


def test_merchants_add_without_referral_flags_leaves_them_unset() -> None:
    args = parser().parse_args(ADD)

    assert (
        args.referral_advocate_points,
        args.referral_friend_points,
        args.referral_min_subtotal,
        args.referral_review_days,
    ) == (None, None, None, None)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--referral-advocate-points", "1000001", "referral advocate points must be an integer"),
        ("--referral-advocate-points", "-5", "referral advocate points must be an integer"),
        ("--referral-friend-points", "1e3", "referral friend points must be an integer"),
        ("--referral-friend-points", "\u0661", "referral friend points must be an integer"),
        ("--referral-min-subtotal", "-1", "referral minimum subtotal must be a decimal"),
        ("--referral-min-subtotal", "1.005", "referral minimum subtotal must be a decimal"),
        ("--referral-min-subtotal", "NaN", "referral minimum subtotal must be a decimal"),
        ("--referral-min-subtotal", "12345678901", "referral minimum subtotal must be a decimal"),
        ("--referral-min-subtotal", "01", "referral minimum subtotal must be a decimal"),
        ("--referral-review-days", "366", "referral review days must be an integer from 0 to 365"),
    ],
)
def test_merchants_add_refuses_bad_referral_terms_naming_the_flag(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([*ADD, f"{flag}={value}"])

    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


# ------------------------------------------------------------------------- points adjust

ADJUST = ["points", "adjust", "--shop", "a.myshopify.com", "--customer", "42"]


def test_points_adjust_reads_its_flags() -> None:
    args = parser().parse_args(
        [*ADJUST, "--points", "-20", "--reason", "Damaged return", "--idempotency-key", "k-1"]
    )

    assert (args.shop, args.customer, args.points, args.reason) == (
        "a.myshopify.com",
        42,
        -20,
        "Damaged return",
    )
    assert (args.idempotency_key, args.wait) == ("k-1", 10.0)


def test_points_adjust_defaults_to_a_new_key_and_ten_seconds() -> None:
    args = parser().parse_args([*ADJUST, "--points", "+50", "--reason", "r", "--wait", "2.5"])

    assert (args.points, args.idempotency_key, args.wait) == (50, None, 2.5)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--points", "0", "points must be a non-zero integer"),
        ("--points", "1000001", "points must be a non-zero integer"),
        ("--points", "-1000001", "points must be a non-zero integer"),
        ("--points", "1.5", "points must be a signed integer"),
        ("--points", "1_000", "points must be a signed integer"),
        ("--points", "\u0665", "points must be a signed integer"),
        ("--points", "five", "points must be a signed integer"),
        ("--reason", "", "reason must be a string of 1 to 200 characters"),
        ("--reason", "r" * 201, "reason must be a string of 1 to 200 characters"),
        ("--customer", "0", "not a Shopify customer id"),
        ("--customer", "abc", "not a Shopify customer id"),
        ("--idempotency-key", "k" * 256, "must be 1 to 255 printable ASCII characters"),
        ("--idempotency-key", "caf\u00e9", "must be 1 to 255 printable ASCII characters"),
        ("--wait", "-1", "must be a number of seconds from 0 to 600"),
        ("--wait", "nan", "must be a number of seconds from 0 to 600"),
        ("--wait", "601", "must be a number of seconds from 0 to 600"),
        ("--wait", "soon", "must be a number of seconds from 0 to 600"),
    ],
)
def test_points_adjust_refuses_bad_values_naming_the_flag(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    given = {"--customer": "42", "--points": "5", "--reason": "r", flag: value}
    argv = [
        "points",
        "adjust",
        "--shop",
        "a.myshopify.com",
        *(f"{k}={v}" for k, v in given.items()),
    ]

    with pytest.raises(SystemExit) as exited:
        parser().parse_args(argv)

    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["--points", "--reason", "--customer", "--shop"])
def test_points_adjust_requires_shop_customer_points_and_reason(
    missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    given = {"--shop": "a.myshopify.com", "--customer": "42", "--points": "5", "--reason": "r"}
    del given[missing]

    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["points", "adjust", *(f"{k}={v}" for k, v in given.items())])

    assert exited.value.code == 2
    assert missing in capsys.readouterr().err


class Clock:
    """Time that moves only when the code under test pauses."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_waiting_ends_as_soon_as_the_adjustment_is_decided() -> None:
    reads = iter([{"status": "pending"}, {"status": "pending"}, {"status": "completed"}])
    clock = Clock()

    document = wait_for_decision(lambda: next(reads), 10, clock, clock.pause)

    assert document == {"status": "completed"}
    assert clock.pauses == [POLL_SECONDS, POLL_SECONDS]


def test_waiting_is_bounded_and_returns_the_pending_adjustment() -> None:
    clock = Clock()

    document = wait_for_decision(lambda: {"status": "pending"}, 1.05, clock, clock.pause)

    assert document == {"status": "pending"}
    assert clock.now == pytest.approx(1.05)
    assert max(clock.pauses) <= POLL_SECONDS


def test_no_wait_reads_once() -> None:
    clock = Clock()

    assert wait_for_decision(lambda: {"status": "pending"}, 0, clock, clock.pause) == {
        "status": "pending"
    }
    assert clock.pauses == []


@pytest.mark.parametrize(
    ("document", "status", "said"),
    [
        ({"status": "completed"}, 0, ""),
        ({"status": "failed", "reason": "insufficient_points"}, 1, "failed: insufficient_points"),
        ({"status": "pending"}, 3, "--idempotency-key k-1"),
    ],
)
def test_the_exit_status_follows_the_outcome(
    document: dict[str, str], status: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert outcome_status(document, "k-1") == status
    assert said in capsys.readouterr().err


def test_dlq_replay_takes_the_list_filters_a_dry_run_and_a_rate() -> None:
    args = parser().parse_args(
        [
            "dlq",
            "replay",
            "--topic",
            "points.dlq",
            "--reason",
            "unknown",
            "--step",
            "decode",
            "--shop",
            "A.myshopify.com",
            "--since",
            "2026-05-01",
            "--until",
            "2026-05-02T00:00:00+02:00",
            "--dry-run",
            "--rate",
            "250",
            "--max-attempt",
            "2",
        ]
    )

    assert (args.topic, args.reason, args.step, args.shop) == (
        "points.dlq",
        "unknown",
        "decode",
        "a.myshopify.com",
    )
    assert args.since == datetime(2026, 5, 1, tzinfo=UTC)
    assert args.until == datetime(2026, 5, 1, 22, tzinfo=UTC)
    assert (args.dry_run, args.rate, args.max_attempt) == (True, 250.0, 2)


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "replay", "--rate", "0"],
        ["dlq", "replay", "--rate", "nan"],
        ["dlq", "list", "--since", "yesterday"],
        ["dlq", "list", "--max-attempt", "0"],
        ["dlq", "show"],
    ],
)
def test_dlq_refuses_what_it_cannot_use(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_flows_scale_names_a_registered_flow_and_a_count() -> None:
    args = parser().parse_args(["flows", "scale", "points", "2"])

    assert (args.command, args.action, args.flow, args.processes) == ("flows", "scale", "points", 2)
    with pytest.raises(SystemExit):
        parser().parse_args(["flows", "scale", "clock", "2"])  # a job, not a flow


def test_flows_scale_records_the_count_and_list_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOYALNEST_DATA_DIR", str(tmp_path))

    assert main(["flows", "scale", "rfm", "2"]) == 0
    assert "rfm: 1 → 2 process(es); applies at the next start" in capsys.readouterr().out
    assert main(["flows", "scale", "rfm", "99"]) == 2
    assert "KAFKA_TOPIC_PARTITIONS" in capsys.readouterr().err
    assert main(["flows", "list"]) == 0
    assert json.loads(capsys.readouterr().out)["rfm"] == 2
