"""The Kafka topics LoyalNest uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

SHOPIFY_ORDERS = "shopify.orders"
POINTS_COMMANDS = "points.commands"
POINTS_EARNED = "points.earned"
REWARD_REDEMPTION = "reward.redemption"
POINTS_EXPIRING = "points.expiring"
CLOCK_TICKS = "clock.ticks"
POINTS_DLQ = "points.dlq"
POINTS_REPLAY = "points.replay"
ORDER_ARCHIVE_DLQ = "order_archive.dlq"
RFM_COMMANDS = "rfm.commands"
RFM_UPDATED = "rfm.updated"
RFM_DLQ = "rfm.dlq"
CUSTOMERS_DLQ = "customers.dlq"
REFERRAL_COMMANDS = "referral.commands"
REFERRAL_FRIENDS = "referral.friends"
REFERRAL_DLQ = "referral.dlq"
REFERRAL_COMPLETED = "referral.completed"
REFERRAL_REVOKED = "referral.revoked"
VIP_TIER_ASSIGNED = "vip_tier.assigned"
TIERS_DLQ = "tiers.dlq"
DLQ_REPLAYED = "dlq.replayed"
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"

# Order webhooks and points commands are the source of truth the ledger is rebuilt from
# (replay from offset 0), so they are kept forever; derived events use the broker default.
# Dead letters are kept as long as the sources they came from.
KEEP_FOREVER = {"retention.ms": "-1"}
# Every topic a flow reads takes records up to this size (a 1 MiB webhook body, the API's
# limit, plus key and headers fits with room to spare); set explicitly, so that a broker with
# a larger default cannot accept a record whose dead letter would not fit.
SOURCE_RECORD_BYTES = 2 * 1024 * 1024
SOURCE_RECORDS = {"max.message.bytes": str(SOURCE_RECORD_BYTES)}
# A dead letter is a source record plus the dead-letter headers (a bounded reason and a few
# short values): any record that fits its source topic fits its dead-letter topic.
DEAD_LETTER_BYTES = SOURCE_RECORD_BYTES + 64 * 1024
DEAD_LETTERS = KEEP_FOREVER | {"max.message.bytes": str(DEAD_LETTER_BYTES)}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(SHOPIFY_ORDERS, KEEP_FOREVER | SOURCE_RECORDS),
    TopicSpec(POINTS_COMMANDS, KEEP_FOREVER | SOURCE_RECORDS),
    TopicSpec(POINTS_EARNED),
    TopicSpec(REWARD_REDEMPTION),
    TopicSpec(POINTS_EXPIRING),
    # The clock job's ticks, for flows that age with time as a whole (RFM); one partition keeps
    # them in order. The points flow gets its ticks per customer on points.commands.
    TopicSpec(CLOCK_TICKS, KEEP_FOREVER),
    TopicSpec(POINTS_DLQ, DEAD_LETTERS),
    TopicSpec(POINTS_REPLAY, SOURCE_RECORDS),
    TopicSpec(ORDER_ARCHIVE_DLQ, DEAD_LETTERS),
    # The RFM flow's own log of time and settings (day ticks, rescoring ticks, thresholds):
    # kept forever, as its decisions are replayed from it.
    TopicSpec(RFM_COMMANDS, KEEP_FOREVER | SOURCE_RECORDS),
    TopicSpec(RFM_UPDATED),
    TopicSpec(RFM_DLQ, DEAD_LETTERS),
    TopicSpec(CUSTOMERS_DLQ, DEAD_LETTERS),
    # Referral codes as the API gives them out (key merchant:code): the log the referrals
    # flow learns codes' advocates from, so it is kept forever.
    TopicSpec(REFERRAL_COMMANDS, KEEP_FOREVER | SOURCE_RECORDS),
    # The referrals flow's other log (key merchant:friend): friends' orders and the codes'
    # verdicts, which the friend's state decides from; kept forever for the same reason.
    TopicSpec(REFERRAL_FRIENDS, KEEP_FOREVER | SOURCE_RECORDS),
    TopicSpec(REFERRAL_DLQ, DEAD_LETTERS),
    TopicSpec(REFERRAL_COMPLETED),
    TopicSpec(REFERRAL_REVOKED),
    TopicSpec(VIP_TIER_ASSIGNED),
    TopicSpec(TIERS_DLQ, DEAD_LETTERS),
    # Which dead letters `loyalnest dlq replay` has re-driven, one record per dead letter: a
    # compacted topic keeps each key's latest record for good.
    TopicSpec(DLQ_REPLAYED, {"cleanup.policy": "compact"}),
    TopicSpec(CUSTOMER_CREATED),
    TopicSpec(CUSTOMER_UPDATED),
)


def prefixed(prefix: str) -> tuple[TopicSpec, ...]:
    """The system's topics under a name prefix (KAFKA_TOPIC_PREFIX)."""
    return tuple(TopicSpec(f"{prefix}{t.name}", t.config) for t in TOPICS)


# The dead-letter topics (`loyalnest dlq` reads them all unless told one).
DEAD_LETTER_TOPICS = tuple(t.name for t in TOPICS if t.config == DEAD_LETTERS)
