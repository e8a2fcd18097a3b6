"""What the API talks to, opened once per process and shared by REST and gRPC handlers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from api.producer import AsyncProducer
from connectors.merchants import Merchant, merchant_by_shop
from connectors.translations import COLLECTION as TRANSLATIONS
from connectors.translations import merged
from loyalnest.app_secrets import Secrets
from loyalnest.settings import Settings

MAX_RECORD_BYTES = 2 * 1024 * 1024
MERCHANT_TTL = 30.0  # seconds a merchant (and its secrets) is cached in process


@dataclass
class MerchantCache:
    """Webhooks arrive for a handful of shops at high rates: look each up once in a while.

    When a shop's entry expires under load, the requests that find it stale share one lookup
    instead of each opening a PostgreSQL connection.
    """

    postgres_url: str
    key: str
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[float, Merchant | None]] = field(default_factory=dict)
    _lookups: dict[str, asyncio.Future[Merchant | None]] = field(default_factory=dict)

    async def get(self, shop: str) -> Merchant | None:
        hit = self._entries.get(shop)
        if hit is not None and hit[0] > self.clock():
            return hit[1]
        lookup = self._lookups.get(shop)
        if lookup is None:
            lookup = asyncio.ensure_future(self._refresh(shop))
            self._lookups[shop] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(shop, None))
        # shield: one caller giving up (a dropped connection) must not cancel the others' lookup
        return await asyncio.shield(lookup)

    async def _refresh(self, shop: str) -> Merchant | None:
        merchant = await asyncio.to_thread(self._load, shop)
        self._entries[shop] = (self.clock() + MERCHANT_TTL, merchant)
        return merchant

    def _load(self, shop: str) -> Merchant | None:
        with psycopg.connect(self.postgres_url) as conn:
            return merchant_by_shop(conn, self.key, shop)


@dataclass
class ApiContext:
    settings: Settings
    secrets: Secrets
    producer: AsyncProducer
    redis: aioredis.Redis
    mongo: AsyncMongoClient[dict[str, Any]]
    merchants: MerchantCache
    translations: dict[tuple[str, str], str]

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self.mongo[self.settings.mongo_database]

    @property
    def jwt_secret(self) -> str:
        return self.secrets.jwt_secret

    @classmethod
    async def open(cls, settings: Settings, secrets: Secrets) -> ApiContext:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url, serverSelectionTimeoutMS=3000
        )
        stored = [d async for d in mongo[settings.mongo_database][TRANSLATIONS].find()]
        return cls(
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
            redis=aioredis.Redis.from_url(
                settings.redis_url, socket_timeout=1, socket_connect_timeout=1
            ),
            mongo=mongo,
            merchants=MerchantCache(settings.postgres_url, secrets.secrets_key),
            translations=merged(stored),
        )

    async def close(self) -> None:
        self.producer.close()
        await self.redis.aclose()
        await self.mongo.close()
