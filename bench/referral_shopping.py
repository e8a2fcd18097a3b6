"""The referral benchmark's shopping: one merchant's paid orders, 7% of them naming an
advocate's referral code, produced as the API produces them (redacted, with the merchant's
points and referral terms in the headers), and what the referrals flow must decide for them,
worked out from the orders themselves (never from the flow).

The first orders are the advocates' own (plain) ones; each advocate's code is announced on
`referral.commands` (as `POST /v1/referrals/codes` does) before any order is produced. Every
other order is its own new customer's, so a referred order is its friend's first: one referral
per referred friend. The code travels as Shopify carries it, in turn a discount code, a cart
note attribute `referral_code`, or `ref=CODE` in the landing site; some plain orders carry a
discount code that is not a referral code, and some a landing site without one.

Among the referred orders, a few are what a live program sees: a friend using the advocate's
own email (a variant: case, `+tag`; blocked `self_referral`), a code nobody owns (`unknown_code`),
and, by their random subtotal, orders below the merchant's minimum (`below_minimum`). Each of
these is decided by the order alone, whatever order the partitions are read in, so the
expected outcome is exact. Customers' names, emails, addresses and browser IPs are distinct,
so no other referral is blocked by accident.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer

from bench.kit import produce_patiently
from connectors.shopify import SHOP_HEADER, TOPIC_HEADER, encode_body, kafka_headers, partition_key
from loyalnest.harness.deployment import Deployment
from loyalnest.harness.shops import SECRETS_KEY
from loyalnest.samples import order_body
from loyalnest.topics import REFERRAL_COMMANDS, SHOPIFY_ORDERS
from loyalty import ids
from loyalty.pii import Hasher, merchant_key, personal_data, redact_order
from loyalty.policy import Expiry, Policy
from loyalty.referral_codes import NOTE_ATTRIBUTE, advocate_code
from loyalty.referral_commands import encode_code_created, referral_key
from loyalty.referral_fraud import Identity
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import CodeCreated, Reason, Status

SHOP = "bench-referrals.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
# The points flow's costlier terms, as bench/pipeline.py runs it.
POLICY = Policy(pending_days=2, expiry=Expiry.parse("lot:365"))
# Both rewards paid, and a minimum some random subtotals (5.00 to 500.00) fall below.
TERMS = ReferralTerms(
    advocate_points=500, friend_points=50, min_subtotal=Decimal("20.00"), review_days=0
)
# The API's hashes for this merchant, under the harness's secrets key.
HASHER = Hasher(merchant_key(SECRETS_KEY, MERCHANT))
REFERRED_SHARE = 0.07
FRIENDS_PER_ADVOCATE = 10
SELF_SHARE = 0.04  # of the referred orders: the advocate's own email, another account
UNKNOWN_SHARE = 0.04  # of the referred orders: a code of the right shape nobody owns
PLAIN_DISCOUNT = "SUMMER10"  # not a referral code's shape (0 and 1 are not in its alphabet)
FIRST_CUSTOMER = 4_000_000
FIRST_ORDER = 80_000_000
START = datetime(2026, 5, 1, tzinfo=UTC)
CODE_AT = START - timedelta(days=30)

Outcome = tuple[Status, Reason | None]


@dataclass(frozen=True)
class Advocate:
    customer: int
    code: str
    identity: Identity  # as the customers table knows it (the API announces it with the code)


@dataclass(frozen=True)
class Referred:
    """A referred order: its friend, the code it names, and what the flow must decide."""

    friend: int
    order_id: int
    code: str
    expected: Outcome


@dataclass(frozen=True)
class Shopping:
    advocates: list[Advocate]
    records: list[tuple[bytes, bytes]]  # key and redacted body, in the order they are produced
    referred: dict[int, Referred]  # by friend

    @property
    def orders(self) -> int:
        return len(self.records)

    def outcomes(self) -> Counter[Outcome]:
        return Counter(r.expected for r in self.referred.values())

    @property
    def completed(self) -> int:
        return self.outcomes()[(Status.COMPLETED, None)]

    @property
    def friend_records(self) -> int:
        """What the flow's friend stage takes in: every order's news (each is a customer's
        paid, non-test order), and a verdict for every referred order that asked its code
        (all but those below the minimum, blocked before asking)."""
        below = self.outcomes()[(Status.BLOCKED, Reason.BELOW_MINIMUM)]
        return self.orders + len(self.referred) - below

    @property
    def rewards(self) -> int:
        """Reward commands the completed referrals post (each paying reward is one)."""
        paying = (TERMS.advocate_points > 0) + (TERMS.friend_points > 0)
        return self.completed * paying


def email(customer: int) -> str:
    return f"Shopper.{customer}@example.com"


def raw_body(rng: random.Random, n: int, customer: int) -> dict[str, Any]:
    """A paid order with its customer's personal data, as Shopify sends it (before the API)."""
    order_id = FIRST_ORDER + n
    body = order_body(rng, order_id, customer, START + timedelta(seconds=n))
    body["processed_at"] = body["created_at"]
    address = {
        "address1": f"{customer} Market Street",
        "city": "Springfield",
        "zip": f"{customer % 100_000:05d}",
        "country_code": "US",
        "phone": f"+1555{customer % 10_000_000:07d}",
    }
    body["email"] = email(customer)
    body["browser_ip"] = f"10.{customer >> 16 & 255}.{customer >> 8 & 255}.{customer & 255}"
    body["customer"] = {
        "id": customer,
        "email": email(customer),
        "first_name": "Shopper",
        "last_name": f"No{customer}",
        "default_address": address,
    }
    body["shipping_address"] = {"first_name": "Shopper", "last_name": f"No{customer}", **address}
    return body


def with_code(body: dict[str, Any], code: str, n: int) -> None:
    """Name `code` where Shopify carries it: a discount code, a note attribute, or a link."""
    where = n % 4
    if where in (0, 1):
        body["discount_codes"] = [{"code": code.lower(), "amount": "0.00", "type": "fixed_amount"}]
    elif where == 2:
        body["note_attributes"] = [{"name": NOTE_ATTRIBUTE, "value": code}]
    else:
        body["landing_site"] = f"/products/mug?utm_source=friend&ref={code}"


def with_plain_extras(body: dict[str, Any], rng: random.Random) -> None:
    roll = rng.random()
    if roll < 0.10:
        body["discount_codes"] = [
            {"code": PLAIN_DISCOUNT, "amount": "5.00", "type": "fixed_amount"}
        ]
    elif roll < 0.20:
        body["landing_site"] = "/collections/all?utm_source=newsletter"


def advocates_of(count: int) -> tuple[list[Advocate], list[dict[str, Any]]]:
    """`count` advocates, each with their own first order (raw) and their code."""
    rng = random.Random(11)
    advocates, bodies, codes = [], [], set()
    for n in range(count):
        customer = FIRST_CUSTOMER + n
        body = raw_body(rng, n, customer)
        personal = personal_data(body, HASHER)
        assert personal is not None
        addresses = frozenset({personal.address_hash}) if personal.address_hash else frozenset()
        identity = Identity(customer, personal.email_hash, personal.name_hash, addresses)
        attempt = 0
        while (code := advocate_code(HASHER.key, customer, attempt)) in codes:
            attempt += 1  # as the API does on a collision (connectors/referral_links.py)
        codes.add(code)
        advocates.append(Advocate(customer, code, identity))
        bodies.append(body)
    return advocates, bodies


def shopping(orders: int, seed: int = 7) -> Shopping:
    """`orders` paid orders, REFERRED_SHARE of them naming a code (rounded; at least one)."""
    referred_count = max(1, round(orders * REFERRED_SHARE))
    advocate_count = max(1, referred_count // FRIENDS_PER_ADVOCATE)
    if orders < advocate_count + referred_count:
        raise ValueError(f"{orders} orders are too few for {referred_count} referred ones")
    advocates, raw = advocates_of(advocate_count)
    rng = random.Random(seed)
    codes = {a.code for a in advocates}
    picked = set(rng.sample(range(advocate_count, orders), referred_count))
    referred: dict[int, Referred] = {}
    for n in range(advocate_count, orders):
        customer = FIRST_CUSTOMER + n
        body = raw_body(rng, n, customer)
        if n in picked:
            referred[customer] = refer(rng, body, n, advocates, codes)
        else:
            with_plain_extras(body, rng)
        raw.append(body)
    return Shopping(advocates, [record(b) for b in raw], referred)


def record(raw: dict[str, Any]) -> tuple[bytes, bytes]:
    """What the API produces for an order webhook: its key and its body, redacted."""
    body = redact_order(raw, HASHER)
    return partition_key(SHOP, "orders/create", body), encode_body(body)


def refer(
    rng: random.Random, body: dict[str, Any], n: int, advocates: list[Advocate], codes: set[str]
) -> Referred:
    """Make `body` a referred order, and say what the flow must decide for it."""
    advocate = rng.choice(advocates)
    roll = rng.random()
    code = advocate.code
    expected: Outcome = (Status.COMPLETED, None)
    if roll < SELF_SHARE:
        # Another account of the advocate: the same mailbox, written differently.
        variant = email(advocate.customer).upper().replace("@", "+friend@")
        body["email"] = body["customer"]["email"] = variant
        expected = (Status.BLOCKED, Reason.SELF_REFERRAL)
    elif roll < SELF_SHARE + UNKNOWN_SHARE:
        attempt = 0
        while (code := advocate_code(b"no-such-advocate", n, attempt)) in codes:
            attempt += 1
        expected = (Status.BLOCKED, Reason.UNKNOWN_CODE)
    with_code(body, code, n)
    if Decimal(body["subtotal_price"]) < TERMS.min_subtotal:
        expected = (Status.BLOCKED, Reason.BELOW_MINIMUM)  # decided before the code is asked
    return Referred(body["customer"]["id"], body["id"], code, expected)


def kafka_producer(env: Deployment) -> Producer:
    return Producer(
        {
            "bootstrap.servers": env.settings.kafka_bootstrap_servers,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )


def announce_codes(env: Deployment, advocates: list[Advocate]) -> None:
    """Each advocate's code on `referral.commands`, as the API announces it."""
    producer = kafka_producer(env)
    topic = env.topic(REFERRAL_COMMANDS)
    for advocate in advocates:
        created = CodeCreated(MERCHANT, advocate.code, advocate.identity, CODE_AT)
        value = encode_code_created(created)
        produce_patiently(producer, topic, value, referral_key(MERCHANT, advocate.code))
    if producer.flush(120):
        raise RuntimeError("codes not all produced")


def produce(env: Deployment, made: Shopping) -> None:
    """The codes, then the orders as `orders/create` records with the API's headers."""
    announce_codes(env, made.advocates)
    producer = kafka_producer(env)
    delivery = {TOPIC_HEADER: "orders/create", SHOP_HEADER: SHOP}
    headers = kafka_headers(delivery, "bench-referrals", POLICY, TERMS)
    topic = env.topic(SHOPIFY_ORDERS)
    for key, value in made.records:
        produce_patiently(producer, topic, value, key, headers)
    if producer.flush(120):
        raise RuntimeError("orders not all produced")
