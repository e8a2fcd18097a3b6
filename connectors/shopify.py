"""Shopify webhooks as Kafka records on `shopify.orders`: the contract between ingest and flows.

The value is the webhook body as received with every personal value replaced by its keyed
hash (api/webhooks.py, loyalty/pii.py), so it is no longer the body Shopify signed: the
signature is checked at the edge and not kept. Shopify's other delivery headers travel as Kafka
headers, next to the merchant's earning terms at the time.

The key is shop:order. A refund webhook names its order but not its customer, so only the order
keeps an order's creation, payment, refunds and cancellation in one partition, in the order
received; the points flow then re-keys each resulting change by merchant:customer through
`points.commands`, which is where one customer's balance changes are ordered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import simplejson

from connectors.kafka import CORRELATION_HEADER
from loyalty import fields
from loyalty.errors import InvalidEventError
from loyalty.ids import normalize_shop
from loyalty.policy import (
    DEFAULT_WARNING_DAYS,
    MAX_PENDING_DAYS,
    MAX_WARNING_DAYS,
    Expiry,
    Policy,
    parse_days,
)
from loyalty.referral_terms import (
    DEFAULT_REFERRAL_TERMS,
    ReferralTerms,
    min_subtotal,
    referral_points,
    review_days,
)

# Shopify's delivery headers (HTTP on the webhook, Kafka headers on the record).
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_HEADER = "X-Shopify-Shop-Domain"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
API_VERSION_HEADER = "X-Shopify-API-Version"

# The delivery headers kept on the record. Not the HMAC: the record's body is the redacted one,
# which the signature no longer matches (a dead letter carrying it would fail any check).
FORWARDED_HEADERS = (
    TOPIC_HEADER,
    SHOP_HEADER,
    WEBHOOK_ID_HEADER,
    EVENT_ID_HEADER,
    TRIGGERED_AT_HEADER,
    API_VERSION_HEADER,
)
# The caller's tracing id: an HTTP header of webhooks and API requests, kept as a Kafka header.


# The merchant's terms when the webhook was accepted (loyalty.policy.Policy). Records written
# before a header existed lack it and get its default: the terms they were accepted under.
POINTS_PER_UNIT_HEADER = "LoyalNest-Points-Per-Unit"
LOCALE_HEADER = "LoyalNest-Locale"
PENDING_DAYS_HEADER = "LoyalNest-Pending-Days"
EXPIRY_HEADER = "LoyalNest-Expiry"
WARNING_DAYS_HEADER = "LoyalNest-Expiry-Warning-Days"
# The merchant's RFM lookback window in days (flows/rfm.py); absent: the default, 365.
RFM_LOOKBACK_HEADER = "LoyalNest-RFM-Lookback-Days"
# The merchant's referral terms (loyalty.referral_terms.ReferralTerms); absent: the defaults.
REFERRAL_ADVOCATE_HEADER = "LoyalNest-Referral-Advocate-Points"
REFERRAL_FRIEND_HEADER = "LoyalNest-Referral-Friend-Points"
REFERRAL_MIN_SUBTOTAL_HEADER = "LoyalNest-Referral-Min-Subtotal"
REFERRAL_REVIEW_DAYS_HEADER = "LoyalNest-Referral-Review-Days"


def order_key(shop: str, order_id: int | None) -> str:
    """shop:order, the key of everything about one order: its Kafka records, its flow state."""
    return f"{shop}:{order_id}"


def partition_key(shop: str, topic: str, body: Any) -> bytes:
    """shop:order — refunds carry `order_id`, every other order topic `id`.

    Never fails: a body without a usable id (on its way to the dead-letter topic) is keyed
    shop:None, so one malformed value cannot make a key of any size or shape."""
    field = "order_id" if topic == "refunds/create" else "id"
    order_id = body.get(field) if isinstance(body, dict) else None
    if isinstance(order_id, bool) or not isinstance(order_id, int):
        order_id = None
    return order_key(normalize_shop(shop), order_id).encode()


def kafka_headers(
    delivery: dict[str, str],
    correlation_id: str,
    policy: Policy | None = None,
    referral: ReferralTerms | None = None,
) -> list[tuple[str, str | bytes | None]]:
    """The Shopify delivery headers we keep, our correlation id and the merchant's terms."""
    policy = policy or Policy()
    lowered = {k.lower(): v for k, v in delivery.items()}
    kept: list[tuple[str, str | bytes | None]] = [
        (name, lowered[name.lower()].encode())
        for name in FORWARDED_HEADERS
        if name.lower() in lowered
    ]
    return [
        *kept,
        (CORRELATION_HEADER, correlation_id.encode()),
        *policy_headers(policy),
        *(referral_headers(referral) if referral is not None else []),
    ]


def policy_headers(policy: Policy) -> list[tuple[str, str | bytes | None]]:
    return [
        (POINTS_PER_UNIT_HEADER, str(policy.points_per_unit).encode()),
        (LOCALE_HEADER, policy.locale.encode()),
        (PENDING_DAYS_HEADER, str(policy.pending_days).encode()),
        (EXPIRY_HEADER, str(policy.expiry).encode()),
        (WARNING_DAYS_HEADER, str(policy.warning_days).encode()),
        (RFM_LOOKBACK_HEADER, str(policy.rfm_lookback_days).encode()),
    ]


def referral_headers(terms: ReferralTerms) -> list[tuple[str, str | bytes | None]]:
    return [
        (REFERRAL_ADVOCATE_HEADER, str(terms.advocate_points).encode()),
        (REFERRAL_FRIEND_HEADER, str(terms.friend_points).encode()),
        (REFERRAL_MIN_SUBTOTAL_HEADER, str(terms.min_subtotal).encode()),
        (REFERRAL_REVIEW_DAYS_HEADER, str(terms.review_days).encode()),
    ]


def read_referral_terms(header: Callable[[str], str | None]) -> ReferralTerms:
    """The referral terms a record carries, strictly; each one absent has its default."""
    default = DEFAULT_REFERRAL_TERMS
    advocate, friend = header(REFERRAL_ADVOCATE_HEADER), header(REFERRAL_FRIEND_HEADER)
    minimum, review = header(REFERRAL_MIN_SUBTOTAL_HEADER), header(REFERRAL_REVIEW_DAYS_HEADER)
    return ReferralTerms(
        advocate_points=(
            default.advocate_points
            if advocate is None
            else referral_points(advocate, REFERRAL_ADVOCATE_HEADER)
        ),
        friend_points=(
            default.friend_points
            if friend is None
            else referral_points(friend, REFERRAL_FRIEND_HEADER)
        ),
        min_subtotal=default.min_subtotal if minimum is None else min_subtotal(minimum),
        review_days=default.review_days if review is None else review_days(review),
    )


def read_policy(header: Callable[[str], str | None]) -> Policy:
    """The terms a record carries (`header(name)` reads one of its headers); strict, so a
    malformed term dead-letters the record instead of earning under made-up terms."""
    return _policy(*(header(name) for name in _POLICY_HEADERS))


_POLICY_HEADERS = (
    POINTS_PER_UNIT_HEADER,
    LOCALE_HEADER,
    PENDING_DAYS_HEADER,
    EXPIRY_HEADER,
    WARNING_DAYS_HEADER,
)


# A merchant's records all carry the same few terms: each distinct set is parsed once (a
# Policy is immutable, so sharing one is safe; a malformed set raises every time).
@lru_cache(maxsize=4096)
def _policy(
    raw_rate: str | None,
    raw_locale: str | None,
    pending: str | None,
    expiry: str | None,
    warning: str | None,
) -> Policy:
    locale = raw_locale or "en"
    if not fields.is_locale(locale):
        raise InvalidEventError(f"{LOCALE_HEADER} is not a language code: {fields.preview(locale)}")
    return Policy(
        points_per_unit=fields.rate(raw_rate) if raw_rate is not None else Policy.points_per_unit,
        locale=locale,
        pending_days=parse_days(pending, PENDING_DAYS_HEADER, MAX_PENDING_DAYS) if pending else 0,
        expiry=Expiry.parse(expiry) if expiry is not None else Expiry(),
        warning_days=(
            parse_days(warning, WARNING_DAYS_HEADER, MAX_WARNING_DAYS)
            if warning is not None
            else DEFAULT_WARNING_DAYS
        ),
    )


def encode_body(body: dict[str, Any]) -> bytes:
    """An order body as compact JSON; decimals (how strict parsing reads JSON fractions) are
    written exactly as they were read."""
    return simplejson.dumps(body, separators=(",", ":"), use_decimal=True).encode()


def sign(body: bytes, secret: str) -> str:
    """What Shopify sends as X-Shopify-Hmac-Sha256: base64 of HMAC-SHA256 over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
