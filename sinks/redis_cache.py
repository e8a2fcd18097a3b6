"""Refresh the Redis balance cache from the points flow (best effort: the cache is optional)."""

from __future__ import annotations

import logging

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.balance_cache import BalanceCache, CachedBalance

log = logging.getLogger(__name__)

CacheUpdate = tuple[str, int, CachedBalance]
"""(merchant_id, Shopify customer id, the new balance)."""

ERRORS = Counter("loyalnest_balance_cache_errors_total", "Failed balance cache refreshes")


class _Partition(StatelessSinkPartition[CacheUpdate]):
    def __init__(self, client: redis.Redis, cache: BalanceCache) -> None:
        self._client = client
        self._cache = cache

    def write_batch(self, items: list[CacheUpdate]) -> None:
        # Only the newest balance per customer matters; older ones would be refused anyway.
        newest: dict[tuple[str, int], CacheUpdate] = {}
        for item in items:
            newest[(item[0], item[1])] = item
        try:
            self._cache.put_many(self._client, list(newest.values()))
        except redis.RedisError as exc:
            # A stale entry expires within the TTL and reads fall back to MongoDB: the ledger,
            # not the cache, is the truth, so a cache outage must not stop the flow.
            ERRORS.inc()
            log.warning("balance cache refresh failed for %d customers: %s", len(newest), exc)

    def close(self) -> None:
        self._client.close()


class BalanceCacheSink(DynamicSink[CacheUpdate]):
    """Entries live `ttl_seconds` (BALANCE_CACHE_SECONDS): the bound on a stale read."""

    def __init__(self, url: str, prefix: str, ttl_seconds: int) -> None:
        self._url = url
        self._prefix = prefix
        self._ttl_seconds = ttl_seconds

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[CacheUpdate]:
        # One attempt per batch: a stalled Redis holds the flow up for one timeout, not for a
        # series of retries, and the entry it could not refresh expires within the TTL.
        client = redis.Redis.from_url(
            self._url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        return _Partition(client, BalanceCache(self._prefix, self._ttl_seconds))
