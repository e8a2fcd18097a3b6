"""Topic specs: dead letters are kept and sized like the sources they come from."""

from __future__ import annotations

from loyalnest.topics import (
    CUSTOMERS_DLQ,
    DEAD_LETTER_BYTES,
    ORDER_ARCHIVE_DLQ,
    POINTS_COMMANDS,
    POINTS_DLQ,
    POINTS_REPLAY,
    REFERRAL_COMMANDS,
    REFERRAL_DLQ,
    REFERRAL_FRIENDS,
    RFM_COMMANDS,
    RFM_DLQ,
    SHOPIFY_ORDERS,
    SOURCE_RECORD_BYTES,
    TIERS_DLQ,
    TOPICS,
)

SPECS = {t.name: t.config for t in TOPICS}
SOURCES = (
    SHOPIFY_ORDERS,
    POINTS_COMMANDS,
    POINTS_REPLAY,
    RFM_COMMANDS,
    REFERRAL_COMMANDS,
    REFERRAL_FRIENDS,
)
DEAD_LETTER_TOPICS = tuple(name for name in SPECS if name.endswith(".dlq"))


def test_every_flows_dead_letter_topic_is_specified() -> None:
    assert set(DEAD_LETTER_TOPICS) == {
        POINTS_DLQ,
        ORDER_ARCHIVE_DLQ,
        RFM_DLQ,
        CUSTOMERS_DLQ,
        REFERRAL_DLQ,
        TIERS_DLQ,
    }


def test_every_topic_a_flow_reads_has_an_explicit_record_limit() -> None:
    assert {SPECS[t]["max.message.bytes"] for t in SOURCES} == {str(SOURCE_RECORD_BYTES)}


def test_a_dead_letter_topic_holds_the_largest_source_record_plus_headers() -> None:
    for topic in DEAD_LETTER_TOPICS:
        assert int(SPECS[topic]["max.message.bytes"]) == DEAD_LETTER_BYTES
    assert DEAD_LETTER_BYTES - SOURCE_RECORD_BYTES >= 16 * 1024  # reason ≤ 1 KB + short values


def test_dead_letters_are_kept_as_long_as_the_sources() -> None:
    for topic in DEAD_LETTER_TOPICS:
        assert SPECS[topic]["retention.ms"] == SPECS[SHOPIFY_ORDERS]["retention.ms"] == "-1"
