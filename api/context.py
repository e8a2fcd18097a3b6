"""What the API talks to, opened once per process and shared by REST and gRPC handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Gauge
from psycopg_pool import AsyncConnectionPool
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.customer_events import CustomerEvents
from api.expiring_cache import ExpiringCache
from api.merchant_cache import MerchantCache
from api.producer import AsyncProducer
from connectors.balance_cache import BalanceCache
from connectors.customer_pii import PiiKeeper, PiiWriter, postgres_write
from connectors.customer_records import CustomerStore, PooledCustomers
from connectors.merchants import Merchant, Pool, merchant_by_shop_pooled
from connectors.pool_checks import IdleCheck
from connectors.referral_cache import ReferralCache
from connectors.referral_links import LinkStore, PooledLinks
from connectors.referral_records import PooledReferrals, ReferralReads
from connectors.rfm_records import StoredPicture, stored_picture
from connectors.store import RFM_MERCHANTS, TRANSLATIONS, merged
from connectors.tier_configs import TierVersion
from connectors.tier_reads import PooledTiers, TierStore
from loyalnest.app_secrets import Secrets
from loyalnest.settings import Settings
from loyalty.i18n import DEFAULT_LOCALE

log = logging.getLogger("loyalnest.api.context")

MAX_RECORD_BYTES = 2 * 1024 * 1024
MONGO_TIMEOUT_MS = 3000  # server selection: how long a request waits for an absent MongoDB
REDIS_TIMEOUT = 1.0  # seconds; one attempt, no retries (see ApiContext.open)
# PostgreSQL connections: merchant lookups are cached, but referral and customer calls query
# on every request.
POOL_SIZE = 8
POOL_TIMEOUT = 3.0  # seconds a lookup waits for a connection before it is a 503
TRANSLATIONS_RETRY = 5.0  # seconds between attempts to load them while MongoDB is away
BALANCE_TEXT = "points.balance"

MERCHANT_CACHE_ENTRIES = Gauge(
    "loyalnest_merchant_cache_entries",
    "Shops (known or unknown) in the merchant caches",
    multiprocess_mode="livesum",  # with API_WORKERS > 1: the sum over live processes
)


@dataclass
class ApiContext:
    settings: Settings
    secrets: Secrets
    producer: AsyncProducer
    redis: aioredis.Redis
    mongo: AsyncMongoClient[dict[str, Any]]
    pool: Pool
    merchants: MerchantCache
    translations: dict[tuple[str, str], str]
    translations_loaded: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _locales: tuple[object, frozenset[str]] = (None, frozenset())  # (of which translations, ...)

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self.mongo[self.settings.mongo_database]

    @cached_property
    def balance_cache(self) -> BalanceCache:
        return BalanceCache(self.settings.redis_key_prefix, self.settings.balance_cache_seconds)

    @cached_property
    def pictures(self) -> ExpiringCache[StoredPicture | None]:
        """Merchants' RFM pictures, each read at most once per RFM_PICTURE_SECONDS: segment
        counts are then answered from memory, and a customer's read is one query."""

        async def load(merchant_id: str) -> StoredPicture | None:
            document = await self.db[RFM_MERCHANTS].find_one({"_id": merchant_id})
            return None if document is None else stored_picture(document)

        return ExpiringCache(
            load, self.settings.merchant_cache_entries, self.settings.rfm_picture_seconds
        )

    @cached_property
    def tiers(self) -> TierStore:
        """VIP tiers in PostgreSQL: versions, customers' stored tiers, counts."""
        return PooledTiers(self.pool)

    @cached_property
    def tier_versions(self) -> ExpiringCache[list[TierVersion]]:
        """Merchants' tier versions, each read at most once per TIER_CONFIG_SECONDS."""
        return ExpiringCache(
            self.tiers.versions,
            self.settings.merchant_cache_entries,
            self.settings.tier_config_seconds,
        )

    @cached_property
    def customer_pii(self) -> PiiKeeper:
        """Customers' personal data, written behind to PostgreSQL (the only place raw PII is
        kept)."""
        write = postgres_write(self.pool, self.secrets.secrets_key, self.customer_events.announce)
        return PiiWriter(write)

    @cached_property
    def customer_events(self) -> CustomerEvents:
        return CustomerEvents(self.settings, self.producer)

    @cached_property
    def customers(self) -> CustomerStore:
        """Core's customers, in PostgreSQL."""
        return PooledCustomers(self.pool, self.secrets.secrets_key)

    @cached_property
    def referral_cache(self) -> ReferralCache:
        return ReferralCache(self.settings.redis_key_prefix, self.settings.referral_cache_seconds)

    @cached_property
    def referrals(self) -> ReferralReads:
        """Referrals as the referrals flow stored them, in PostgreSQL."""
        return PooledReferrals(self.pool)

    @cached_property
    def referral_links(self) -> LinkStore:
        """Advocates' referral codes, in PostgreSQL."""
        return PooledLinks(self.pool)

    @property
    def jwt_secret(self) -> str:
        return self.secrets.jwt_secret

    @property
    def locales(self) -> frozenset[str]:
        """The locales a request may ask for: those a balance can be described in. Derived
        once per set of translations, not on every request that names or defaults a locale."""
        source, locales = self._locales
        if source is not self.translations:
            locales = frozenset(loc for key, loc in self.translations if key == BALANCE_TEXT)
            self._locales = (self.translations, locales)
        return locales

    async def merchant_locale(self, shop: str) -> str:
        """The merchant's default locale if it is one we can serve, else en (also when the
        merchant row is gone)."""
        merchant = await self.merchants.get(shop)
        if merchant is None or merchant.locale not in self.locales:
            return DEFAULT_LOCALE
        return merchant.locale

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` without anyone waiting for it; kept referenced until it ends (the loop
        holds tasks only weakly), cancelled on close."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @classmethod
    async def open(cls, settings: Settings, secrets: Secrets) -> ApiContext:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS
        )
        idle = IdleCheck()  # a restarted server's dead sockets, asked only after idling
        pool: Pool = AsyncConnectionPool(
            settings.postgres_url,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=POOL_TIMEOUT,
            # Every call is one statement, or statements that need no transaction together:
            # autocommit spares each a BEGIN and a COMMIT round trip.
            kwargs={"connect_timeout": int(POOL_TIMEOUT), "autocommit": True},
            check=idle.check,
            reset=idle.reset,
            open=False,
        )
        await pool.open(wait=False)  # PostgreSQL may be down now: lookups are then 503s

        async def load(shop: str) -> Merchant | None:
            return await merchant_by_shop_pooled(pool, secrets.secrets_key, shop)

        ctx = cls(
            settings=settings,
            secrets=secrets,
            producer=AsyncProducer(
                {
                    "bootstrap.servers": settings.kafka_bootstrap_servers,
                    "message.timeout.ms": 4000,
                    # a 1 MiB webhook body plus its key and headers must fit in one record
                    "message.max.bytes": MAX_RECORD_BYTES,
                }
            ),
            # One attempt per command: a request never waits more than REDIS_TIMEOUT for the
            # cache (reads then fall back to MongoDB), and a cache fill that timed out is
            # dropped with its connection, never applied late (see api.balances).
            redis=aioredis.Redis.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            ),
            mongo=mongo,
            pool=pool,
            merchants=MerchantCache(
                load, settings.merchant_cache_entries, on_size=MERCHANT_CACHE_ENTRIES.set
            ),
            translations=merged([]),
        )
        if not await ctx.load_translations():
            log.warning("MongoDB unavailable: built-in translations until it answers")
            ctx.background(ctx.keep_loading_translations())
        return ctx

    async def load_translations(self) -> bool:
        """The stored descriptions over the built-in ones; False if MongoDB did not answer."""
        try:
            stored = [d async for d in self.db[TRANSLATIONS].find()]
        except ConnectionFailure as exc:
            log.warning("could not load translations: %s", exc)
            return False
        self.translations = merged(stored)
        self.translations_loaded = True
        return True

    async def keep_loading_translations(self) -> None:
        while not await self.load_translations():
            await asyncio.sleep(TRANSLATIONS_RETRY)
        log.info("translations loaded from MongoDB")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if "customer_pii" in self.__dict__:  # made: write what it still holds
            await self.customer_pii.close()
        self.producer.close()
        await self.redis.aclose()
        await self.mongo.close()
        await self.pool.close()
