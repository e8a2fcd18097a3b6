"""`loyalnest rfm thresholds` against real PostgreSQL and Kafka: stored in program_settings,
and told to the RFM flow on rfm.commands."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from loyalnest import cli
from loyalnest.harness.deployment import fresh_postgres
from loyalnest.harness.shops import JWT_SECRET, SECRETS_KEY, Shop, add_merchants
from loyalnest.settings import Settings
from loyalnest.topics import RFM_COMMANDS
from loyalty import ids
from loyalty.rfm import Thresholds
from loyalty.rfm_commands import Settings as RfmSettings
from loyalty.rfm_commands import decode
from tests.integration.points_harness import read_log

pytestmark = pytest.mark.integration


@pytest.fixture
def environ(
    settings: Settings, admin: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, str]]:
    """The CLI's settings: a fresh database with one merchant, and rfm.commands under a
    private topic prefix."""
    prefix = f"rfm{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}{RFM_COMMANDS}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    try:
        with fresh_postgres(settings, "rfm") as url:
            add_merchants(url, Shop("cuts.myshopify.com", "s", Decimal(1)))
            for name, value in (
                ("POSTGRES_URL", url),
                ("KAFKA_TOPIC_PREFIX", prefix),
                ("JWT_SECRET", JWT_SECRET),
                ("LOYALNEST_SECRETS_KEY", SECRETS_KEY),
            ):
                monkeypatch.setenv(name, value)
            yield Settings(), url
    finally:
        admin.delete_topics([topic])[topic].result(30)


def stored(url: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT rfm_thresholds FROM program_settings").fetchone()
    return None if row is None else row[0]


def test_thresholds_are_stored_and_sent_then_cleared(
    environ: tuple[Settings, str], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, url = environ
    cuts = [
        "--recency-days",
        "7,30,90,180",
        "--frequency",
        "2,3,5,10",
        "--monetary",
        "50,100,250.50,500",
    ]

    assert cli.main(["rfm", "thresholds", "--shop", "cuts.myshopify.com", *cuts]) == 0
    assert cli.main(["rfm", "thresholds", "--shop", "cuts.myshopify.com", "--clear"]) == 0

    merchant = str(ids.merchant_id("cuts.myshopify.com"))
    thresholds = Thresholds(
        (7, 30, 90, 180),
        (2, 3, 5, 10),
        (Decimal(50), Decimal(100), Decimal("250.50"), Decimal(500)),
    )
    records = [decode(r.value) for r in read_log(settings, settings.topic(RFM_COMMANDS))]
    assert records == [RfmSettings(merchant, thresholds), RfmSettings(merchant, None)]
    assert stored(url) is None  # cleared
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed[0]["rfm_thresholds"]["monetary"] == ["50", "100", "250.50", "500"]
    assert printed[1]["rfm_thresholds"] is None


def test_an_unknown_shop_or_bad_cut_points_change_nothing(
    environ: tuple[Settings, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _settings, url = environ
    unknown = ["rfm", "thresholds", "--shop", "nobody.myshopify.com", "--clear"]
    descending = ["rfm", "thresholds", "--shop", "cuts.myshopify.com", "--recency-days", "9,8,7,6"]
    descending += ["--frequency", "1,2,3,4", "--monetary", "1,2,3,4"]

    assert cli.main(unknown) == 2
    assert cli.main(descending) == 2
    assert cli.main(["rfm", "thresholds", "--shop", "cuts.myshopify.com"]) == 2

    errors = capsys.readouterr().err
    assert "no merchant nobody.myshopify.com" in errors
    assert "recency-days needs four strictly ascending cut points" in errors
    assert "give --recency-days, --frequency and --monetary, or --clear" in errors
    assert stored(url) is None
