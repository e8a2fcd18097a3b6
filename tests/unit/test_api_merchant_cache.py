"""The API's merchant cache: one lookup per shop at a time, cached for MERCHANT_TTL, and never
more than its bound of shops, known or unknown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from api.merchant_cache import MERCHANT_TTL, MerchantCache
from connectors.merchants import Merchant


def merchant(shop: str) -> Merchant:
    return Merchant("m-" + shop, shop, Decimal(1), "en", "secret", None)


class Lookups:
    """Looks shops up in memory; each lookup waits at `gate` so callers can pile up behind it."""

    def __init__(self, failures: int = 0) -> None:
        self.loads: list[str] = []
        self.gate = asyncio.Event()
        self.failures = failures

    async def __call__(self, shop: str) -> Merchant | None:
        self.loads.append(shop)
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("postgres is down")
        return merchant(shop) if shop.startswith("known") else None


def cache_with(
    lookups: Lookups, max_entries: int = 100, clock: Callable[[], float] = time.monotonic
) -> MerchantCache:
    return MerchantCache(lookups, max_entries, clock=clock)


async def pile_up(
    cache: MerchantCache, lookups: Lookups, shops: list[str]
) -> list[Merchant | BaseException | None]:
    """Start all lookups, let them all reach the cache, then let the loads finish."""
    tasks = [asyncio.ensure_future(cache.get(shop)) for shop in shops]
    while len(lookups.loads) < len(set(shops)):
        await asyncio.sleep(0)  # until every distinct shop's lookup has started
    await asyncio.sleep(0)  # every task has now awaited its lookup
    lookups.gate.set()
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def test_concurrent_requests_for_a_stale_shop_share_one_lookup() -> None:
    async def run() -> tuple[Lookups, list[Merchant | BaseException | None]]:
        lookups = Lookups()
        results = await pile_up(cache_with(lookups), lookups, ["known-a"] * 20 + ["known-b"] * 5)
        return lookups, results

    lookups, results = asyncio.run(run())

    assert sorted(lookups.loads) == ["known-a", "known-b"]
    assert results == [merchant("known-a")] * 20 + [merchant("known-b")] * 5


def test_an_unknown_shop_is_cached_too() -> None:
    async def twice() -> tuple[Lookups, list[Merchant | None]]:
        lookups = Lookups()
        lookups.gate.set()
        cache = cache_with(lookups)
        return lookups, [await cache.get("nobody"), await cache.get("nobody")]

    lookups, results = asyncio.run(twice())

    assert results == [None, None]
    assert lookups.loads == ["nobody"]


def test_an_expired_entry_is_looked_up_again() -> None:
    clock = [1000.0]

    async def before_and_after_expiry() -> Lookups:
        lookups = Lookups()
        lookups.gate.set()
        cache = cache_with(lookups, clock=lambda: clock[0])
        await cache.get("known-a")
        clock[0] += MERCHANT_TTL - 1
        await cache.get("known-a")
        clock[0] += 2
        await cache.get("known-a")
        return lookups

    assert asyncio.run(before_and_after_expiry()).loads == ["known-a", "known-a"]


def test_a_failed_lookup_fails_every_waiter_and_the_next_request_tries_again() -> None:
    async def fail_then_succeed() -> tuple[
        Lookups, list[Merchant | BaseException | None], Merchant | None
    ]:
        lookups = Lookups(failures=1)
        cache = cache_with(lookups)
        failed = await pile_up(cache, lookups, ["known-a"] * 3)
        return lookups, failed, await cache.get("known-a")

    lookups, failed, retried = asyncio.run(fail_then_succeed())

    assert [type(r) for r in failed] == [ConnectionError] * 3
    assert retried == merchant("known-a")
    assert lookups.loads == ["known-a", "known-a"]


def test_the_cache_never_holds_more_than_its_bound() -> None:
    async def many_shops() -> tuple[MerchantCache, list[int]]:
        lookups = Lookups()
        lookups.gate.set()
        cache = cache_with(lookups, max_entries=50)
        sizes = []
        for n in range(500):
            await cache.get(f"unknown-{n}" if n % 2 else f"known-{n}")
            sizes.append(len(cache))
        return cache, sizes

    cache, sizes = asyncio.run(many_shops())

    assert max(sizes) == 50
    assert len(cache) == 50


def test_the_least_recently_used_shop_leaves_first() -> None:
    async def run() -> Lookups:
        lookups = Lookups()
        lookups.gate.set()
        cache = cache_with(lookups, max_entries=2)
        await cache.get("known-a")
        await cache.get("known-b")
        await cache.get("known-a")  # a is now more recent than b
        await cache.get("known-c")  # evicts b
        await cache.get("known-a")  # still cached
        await cache.get("known-b")  # looked up again
        return lookups

    assert asyncio.run(run()).loads == ["known-a", "known-b", "known-c", "known-b"]


def test_a_cache_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MerchantCache(Lookups(), 0)
