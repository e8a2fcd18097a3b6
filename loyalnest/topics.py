"""The Kafka topics LoyalNest uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

SHOPIFY_ORDERS = "shopify.orders"
POINTS_COMMANDS = "points.commands"
POINTS_EARNED = "points.earned"
REWARD_REDEMPTION = "reward.redemption"
POINTS_DLQ = "points.dlq"
POINTS_REPLAY = "points.replay"

# Order webhooks and points commands are the source of truth the ledger is rebuilt from
# (replay from offset 0), so they are kept forever; derived events use the broker default.
KEEP_FOREVER = {"retention.ms": "-1"}
# Webhook bodies may be up to 1 MiB (the API's limit); leave room for key and headers.
LARGE_RECORDS = {"max.message.bytes": str(2 * 1024 * 1024)}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(SHOPIFY_ORDERS, KEEP_FOREVER | LARGE_RECORDS),
    TopicSpec(POINTS_COMMANDS, KEEP_FOREVER),
    TopicSpec(POINTS_EARNED),
    TopicSpec(REWARD_REDEMPTION),
    TopicSpec(POINTS_DLQ),
    TopicSpec(POINTS_REPLAY),
)


def prefixed(prefix: str) -> tuple[TopicSpec, ...]:
    """The system's topics under a name prefix (KAFKA_TOPIC_PREFIX)."""
    return tuple(TopicSpec(f"{prefix}{t.name}", t.config) for t in TOPICS)
