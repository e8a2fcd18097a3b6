"""Avro contracts in `avro/`, and the registry subjects they are registered under."""

from __future__ import annotations

from pathlib import Path

from loyalnest.topics import (
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    POINTS_EARNED,
    POINTS_EXPIRING,
    REFERRAL_COMPLETED,
    REFERRAL_REVOKED,
    REWARD_REDEMPTION,
    RFM_UPDATED,
    VIP_TIER_ASSIGNED,
)

AVRO_DIR = Path(__file__).resolve().parents[1] / "avro"

# Confluent's default TopicNameStrategy: the value schema of topic T is subject "T-value".
TOPIC_SCHEMAS: dict[str, str] = {
    POINTS_EARNED: "points_earned.avsc",
    REWARD_REDEMPTION: "reward_redemption.avsc",
    POINTS_EXPIRING: "points_expiring.avsc",
    RFM_UPDATED: "rfm_updated.avsc",
    REFERRAL_COMPLETED: "referral_completed.avsc",
    REFERRAL_REVOKED: "referral_revoked.avsc",
    CUSTOMER_CREATED: "customer_created.avsc",
    CUSTOMER_UPDATED: "customer_updated.avsc",
    VIP_TIER_ASSIGNED: "vip_tier_assigned.avsc",
}


def value_subject(topic: str) -> str:
    return f"{topic}-value"


def schema_text(topic: str) -> str:
    return (AVRO_DIR / TOPIC_SCHEMAS[topic]).read_text()
