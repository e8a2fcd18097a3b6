"""In-memory stand-ins for what the API talks to, and the real app built on them.

`FakeStores` gives an `ApiContext` whose MongoDB, Redis, Kafka producer and merchant lookups
are dictionaries and lists, so a Starlette TestClient can drive every route in-process and a
test can both arrange and inspect what the stores hold. Each fake can be told to fail the way
the real one does when its server is away.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import grpc
import psycopg
import redis
from pymongo.errors import DuplicateKeyError, ServerSelectionTimeoutError
from starlette.testclient import TestClient

from api.app import create_app
from api.context import ApiContext
from api.producer import Headers, ProduceError
from connectors.customer_records import CustomerRow, CustomerView
from connectors.merchants import Merchant
from connectors.referral_links import ReferralLink
from connectors.referral_records import Page, ReferralRow
from connectors.store import merged
from connectors.tier_configs import TierVersion, UnknownMerchantError
from connectors.tier_reads import StoredCounts, StoredRow, StoredTier
from connectors.tier_records import metric_document
from loyalnest import tokens
from loyalnest.app_secrets import Secrets
from loyalnest.settings import Settings
from loyalty import ids
from loyalty.pii import PersonalData
from loyalty.referral_fraud import Identity
from loyalty.tier_config import TierConfig
from loyalty.tier_preview import StoredCustomer

JWT_SECRET = "unit-test-jwt-secret-0123456789abcdef"
SHOP = "shop-a.myshopify.com"
OTHER_SHOP = "shop-b.myshopify.com"
MERCHANT = str(ids.merchant_id(SHOP))
OTHER_MERCHANT = str(ids.merchant_id(OTHER_SHOP))
PREFIX = "unit."
SECRETS_KEY = "unit-secrets-key-" + "k" * 32
TIER_ROW_AT = datetime(2026, 6, 1, tzinfo=UTC)  # when FakeTiers.keep says the flow wrote a row


def token(*scopes: str, shop: str = SHOP) -> str:
    return tokens.issue(
        JWT_SECRET,
        str(ids.merchant_id(shop)),
        shop,
        set(scopes),
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
    )


def auth(*scopes: str, shop: str = SHOP) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*scopes, shop=shop)}"}


def _matches(document: dict[str, Any], query: dict[str, Any]) -> bool:
    return all(document.get(k) == v for k, v in query.items())


@dataclass
class FakeCollection:
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    reads: int = 0

    def _check(self) -> None:
        if self.down:
            raise ServerSelectionTimeoutError("no servers (fake)")

    async def insert_one(self, document: dict[str, Any]) -> None:
        self._check()
        if document["_id"] in self.documents:
            raise DuplicateKeyError("E11000 duplicate key (fake)")
        self.documents[document["_id"]] = dict(document)

    async def find_one(
        self, query: dict[str, Any], projection: object = None
    ) -> dict[str, Any] | None:
        self._check()
        self.reads += 1
        found = next((d for d in self.documents.values() if _matches(d, query)), None)
        return dict(found) if found is not None else None


@dataclass
class FakeDatabase:
    collections: dict[str, FakeCollection] = field(default_factory=dict)

    def __getitem__(self, name: str) -> FakeCollection:
        return self.collections.setdefault(name, FakeCollection())


@dataclass
class FakeMongo:
    """The client: `client[database][collection]`, one database."""

    database: FakeDatabase = field(default_factory=FakeDatabase)

    def __getitem__(self, _name: str) -> FakeDatabase:
        return self.database

    async def close(self) -> None:
        pass


@dataclass
class Sent:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


@dataclass
class FakeProducer:
    sent: list[Sent] = field(default_factory=list)
    failing: bool = False

    async def send(self, topic: str, *, key: bytes, value: bytes, headers: Headers) -> None:
        if self.failing:
            raise ProduceError("Local: Message timed out (fake)")
        self.sent.append(Sent(topic, key, value, headers))

    def close(self) -> None:
        pass


@dataclass
class FakeRedis:
    hashes: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    down: bool = False
    fills: list[tuple[Any, ...]] = field(default_factory=list)
    filled: threading.Event = field(default_factory=threading.Event)

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        if self.down:
            raise redis.ConnectionError("connection refused (fake)")
        return dict(self.hashes.get(key, {}))

    async def hget(self, key: str, name: str) -> bytes | None:
        if self.down:
            raise redis.ConnectionError("connection refused (fake)")
        return self.hashes.get(key, {}).get(name.encode())

    async def eval(self, _script: str, _numkeys: int, *args: Any) -> int:
        if self.down:
            raise redis.ConnectionError("connection refused (fake)")
        self.fills.append(args)
        self.filled.set()
        return 1

    async def set(self, key: str, value: bytes, ex: int | None = None) -> None:
        if self.down:
            raise redis.ConnectionError("connection refused (fake)")

    async def delete(self, key: str) -> None:
        if self.down:
            raise redis.ConnectionError("connection refused (fake)")

    async def aclose(self) -> None:
        pass


@dataclass
class FakeMerchants:
    merchants: dict[str, Merchant] = field(default_factory=dict)

    async def get(self, shop: str) -> Merchant | None:
        return self.merchants.get(shop)


def merchant(shop: str, locale: str = "en") -> Merchant:
    return Merchant(str(ids.merchant_id(shop)), shop, Decimal(1), locale, "secret", None)


@dataclass
class FakeLinks:
    """referral_links as a dict of (merchant, code) -> link; `down` fails like a lost pool."""

    links: dict[tuple[str, str], ReferralLink] = field(default_factory=dict)
    identities: dict[tuple[str, int], Identity] = field(default_factory=dict)
    referral_counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise psycopg.OperationalError("connection refused")

    async def claim(self, merchant_id: str, advocate: int, code: str) -> ReferralLink | None:
        existing = await self.by_advocate(merchant_id, advocate)
        if existing is not None:
            return existing
        if (merchant_id, code) in self.links:
            return None
        link = ReferralLink(code, advocate, datetime(2026, 11, 22, 8, tzinfo=UTC))
        self.links[(merchant_id, code)] = link
        return replace(self._known(merchant_id, link), created=True)

    async def by_advocate(self, merchant_id: str, advocate: int) -> ReferralLink | None:
        self._check()
        found = [
            v for (m, _), v in self.links.items() if m == merchant_id and v.advocate == advocate
        ]
        return self._known(merchant_id, found[0]) if found else None

    async def by_code(self, merchant_id: str, code: str) -> ReferralLink | None:
        self._check()
        link = self.links.get((merchant_id, code))
        if link is None:
            return None
        counts = dict(self.referral_counts.get((merchant_id, code), {}))
        return replace(self._known(merchant_id, link), referrals=counts)

    def _known(self, merchant_id: str, link: ReferralLink) -> ReferralLink:
        """The link with its advocate's hashes, as the customers table would join them."""
        who = self.identities.get((merchant_id, link.advocate))
        if who is None:
            return link
        address = next(iter(who.address_hashes), None)
        return replace(
            link, email_hash=who.email_hash, name_hash=who.name_hash, address_hash=address
        )


@dataclass
class FakeReferrals:
    """referrals as a list of rows; `down` fails like a lost pool."""

    rows: list[ReferralRow] = field(default_factory=list)
    down: bool = False

    async def by_id(self, merchant_id: str, referral_id: str) -> ReferralRow | None:
        if self.down:
            raise psycopg.OperationalError("connection refused")
        found = [
            r for r in self.rows if (r.merchant_id, r.referral_id) == (merchant_id, referral_id)
        ]
        return found[0] if found else None

    async def by_advocate(
        self, merchant_id: str, advocate: int, before: Page, limit: int
    ) -> list[ReferralRow]:
        if self.down:
            raise psycopg.OperationalError("connection refused")
        mine = [
            r
            for r in self.rows
            if r.merchant_id == merchant_id
            and r.advocate == advocate
            and (r.created_at, r.referral_id) < before
        ]
        return sorted(mine, key=lambda r: (r.created_at, r.referral_id), reverse=True)[:limit]


@dataclass
class FakeCustomers:
    """customers as a dict of (merchant, email hash) -> row; `emails` holds the raw emails."""

    rows: dict[tuple[str, str], CustomerRow] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    asked_with_email: list[bool] = field(default_factory=list)

    async def create_by_email(self, merchant_id: str, email: str, email_hash: str) -> CustomerRow:
        found = self.rows.get((merchant_id, email_hash))
        if found is not None:
            return replace(found, created=False)
        at = datetime(2026, 11, 22, 8, tzinfo=UTC)
        row = CustomerRow(
            str(ids.email_customer_id(merchant_id, email_hash)),
            merchant_id,
            None,
            email_hash,
            None,
            None,
            at,
            at,
            created=True,
        )
        self.rows[(merchant_id, email_hash)] = row
        self.emails[row.customer_id] = email
        return row

    async def get(
        self, merchant_id: str, customer_id: str, with_email: bool
    ) -> CustomerView | None:
        self.asked_with_email.append(with_email)
        for (merchant, _), row in self.rows.items():
            if (merchant, row.customer_id) == (merchant_id, customer_id):
                email = self.emails.get(customer_id) if with_email else None
                return CustomerView(**(asdict(row) | {"email": email}))
        return None


@dataclass
class FakeCustomerEvents:
    announced: list[CustomerRow] = field(default_factory=list)

    async def announce(self, rows: list[CustomerRow]) -> None:
        self.announced.extend(rows)


@dataclass
class FakePii:
    """The customers' personal data writer as a list of (merchant, data) kept."""

    saved: list[tuple[str, PersonalData]] = field(default_factory=list)

    def keep(self, merchant_id: str, data: PersonalData) -> None:
        self.saved.append((merchant_id, data))

    async def close(self) -> None:
        pass


@dataclass
class FakeTiers:
    """VIP tiers (connectors/tier_reads.TierStore) as dicts; `down` fails like a lost pool.

    A save adds the next version in force from `effective_at` (the database would set it 10 s
    after the save: a test sets it in the past or the future) and is recorded in `saves`; a
    merchant not in `merchants` is unknown, as one missing from the merchants table."""

    history: dict[str, list[TierVersion]] = field(default_factory=dict)
    rows: dict[tuple[str, int], StoredTier] = field(default_factory=dict)
    tallies: dict[str, StoredCounts] = field(default_factory=dict)
    merchants: set[str] = field(default_factory=lambda: {MERCHANT, OTHER_MERCHANT})
    effective_at: datetime = datetime(2026, 6, 15, 12, 0, 10, tzinfo=UTC)
    saves: list[tuple[str, TierConfig]] = field(default_factory=list)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise psycopg.OperationalError("connection refused")

    def keep(
        self,
        merchant_id: str,
        customer: int,
        stored: StoredCustomer,
        updated_at: datetime = TIER_ROW_AT,
    ) -> None:
        """A customer_tiers row, as the tiers flow writes it."""
        self.rows[(merchant_id, customer)] = StoredTier(stored, updated_at)

    async def versions(self, merchant_id: str) -> list[TierVersion]:
        self._check()
        return list(self.history.get(merchant_id, []))

    async def save(self, merchant_id: str, config: TierConfig) -> TierVersion:
        self._check()
        if merchant_id not in self.merchants:
            raise UnknownMerchantError(f"no merchant {merchant_id}")
        mine = self.history.setdefault(merchant_id, [])
        version = TierVersion(len(mine) + 1, self.effective_at, config)
        mine.append(version)
        self.saves.append((merchant_id, config))
        return version

    async def customer(self, merchant_id: str, customer: int) -> StoredTier | None:
        self._check()
        return self.rows.get((merchant_id, customer))

    async def counts(self, merchant_id: str) -> StoredCounts | None:
        self._check()
        return self.tallies.get(merchant_id)

    async def customers(self, merchant_id: str) -> list[StoredRow]:
        """The rows as PostgreSQL gives them: the tier and the metric document as text."""
        self._check()
        return [
            (c.tier, json.dumps(metric_document(c.points, c.spent, c.paid)))
            for (m, _), row in self.rows.items()
            if m == merchant_id
            for c in (row.customer,)
        ]


@dataclass
class FakeStores:
    mongo: FakeMongo = field(default_factory=FakeMongo)
    redis: FakeRedis = field(default_factory=FakeRedis)
    producer: FakeProducer = field(default_factory=FakeProducer)
    merchants: FakeMerchants = field(
        default_factory=lambda: FakeMerchants(
            {SHOP: merchant(SHOP), OTHER_SHOP: merchant(OTHER_SHOP)}
        )
    )
    links: FakeLinks = field(default_factory=FakeLinks)
    pii: FakePii = field(default_factory=FakePii)
    referrals: FakeReferrals = field(default_factory=FakeReferrals)
    customers: FakeCustomers = field(default_factory=FakeCustomers)
    customer_events: FakeCustomerEvents = field(default_factory=FakeCustomerEvents)
    tiers: FakeTiers = field(default_factory=FakeTiers)

    def collection(self, name: str) -> FakeCollection:
        return self.mongo.database[name]

    def context(self) -> ApiContext:
        ctx = ApiContext(
            settings=settings(),
            secrets=Secrets(jwt_secret=JWT_SECRET, secrets_key=SECRETS_KEY),
            producer=cast(Any, self.producer),
            redis=cast(Any, self.redis),
            mongo=cast(Any, self.mongo),
            pool=cast(Any, None),
            merchants=cast(Any, self.merchants),
            translations=merged([]),
            translations_loaded=True,
        )
        ctx.referral_links = self.links  # the cached properties, set before first use
        ctx.customer_pii = self.pii
        ctx.referrals = self.referrals
        ctx.customers = self.customers
        ctx.customer_events = cast(Any, self.customer_events)
        ctx.tiers = self.tiers  # ctx.tier_versions, made on first use, reads it
        return ctx

    @contextmanager
    def client(self) -> Iterator[TestClient]:
        ctx = self.context()
        with TestClient(create_app(ctx.settings, ctx), raise_server_exceptions=False) as http:
            yield http


def settings() -> Settings:
    return Settings(
        _env_file=None,  # no .env; the values given here win over the environment
        kafka_topic_prefix=PREFIX,
        mongo_database="unit",
        redis_key_prefix="unit:",
    )


# ----------------------------------------------------------------------------------- gRPC


class AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class FakeCall:
    """The servicer context of one call: its metadata, and abort() as gRPC does it (raises)."""

    metadata: tuple[tuple[str, str], ...]

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise AbortedError(code, message)


def call(*scopes: str, shop: str = SHOP) -> Any:
    return FakeCall((("authorization", f"Bearer {token(*scopes, shop=shop)}"),))
