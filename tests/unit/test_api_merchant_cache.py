"""The API's merchant cache: one lookup per shop at a time, cached for MERCHANT_TTL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from decimal import Decimal

from api.context import MERCHANT_TTL, MerchantCache
from connectors.merchants import Merchant


def merchant(shop: str) -> Merchant:
    return Merchant("m-" + shop, shop, Decimal(1), "en", "secret", None)


class CountingCache(MerchantCache):
    """Looks shops up in memory; the lookup waits at `gate` so callers can pile up behind it."""

    def __init__(self, failures: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("postgresql://unused", "key", clock)
        self.loads: list[str] = []
        self.gate = threading.Event()
        self.failures = failures

    def _load(self, shop: str) -> Merchant | None:
        self.loads.append(shop)
        assert self.gate.wait(10)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("postgres is down")
        return merchant(shop) if shop.startswith("known") else None


async def pile_up(cache: CountingCache, shops: list[str]) -> list[Merchant | BaseException | None]:
    """Start all lookups, let them all reach the cache, then let the loads finish."""
    tasks = [asyncio.ensure_future(cache.get(shop)) for shop in shops]
    while len(cache.loads) < len(set(shops)):
        await asyncio.sleep(0.001)  # the loads run in threads; wait until each has started
    await asyncio.sleep(0)  # every task has now awaited its lookup
    cache.gate.set()
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def test_concurrent_requests_for_a_stale_shop_share_one_lookup() -> None:
    cache = CountingCache()

    results = asyncio.run(pile_up(cache, ["known-a"] * 20 + ["known-b"] * 5))

    assert sorted(cache.loads) == ["known-a", "known-b"]
    assert results == [merchant("known-a")] * 20 + [merchant("known-b")] * 5


def test_an_unknown_shop_is_cached_too() -> None:
    cache = CountingCache()
    cache.gate.set()

    async def twice() -> list[Merchant | None]:
        return [await cache.get("nobody"), await cache.get("nobody")]

    assert asyncio.run(twice()) == [None, None]
    assert cache.loads == ["nobody"]


def test_an_expired_entry_is_looked_up_again() -> None:
    clock = [1000.0]
    cache = CountingCache(clock=lambda: clock[0])
    cache.gate.set()

    async def before_and_after_expiry() -> None:
        await cache.get("known-a")
        clock[0] += MERCHANT_TTL - 1
        await cache.get("known-a")
        clock[0] += 2
        await cache.get("known-a")

    asyncio.run(before_and_after_expiry())

    assert cache.loads == ["known-a", "known-a"]


def test_a_failed_lookup_fails_every_waiter_and_the_next_request_tries_again() -> None:
    cache = CountingCache(failures=1)

    async def fail_then_succeed() -> tuple[list[Merchant | BaseException | None], Merchant | None]:
        failed = await pile_up(cache, ["known-a"] * 3)
        return failed, await cache.get("known-a")

    failed, retried = asyncio.run(fail_then_succeed())

    assert [type(r) for r in failed] == [ConnectionError] * 3
    assert retried == merchant("known-a")
    assert cache.loads == ["known-a", "known-a"]
