"""The `loyalnest` command line refuses values that would reach the ledger malformed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loyalnest.cli import parser, produce_sample_orders
from loyalnest.settings import Settings

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
