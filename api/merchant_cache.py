"""Merchants (and their webhook secrets) cached in process: bounded, expiring, single flight.

Webhooks arrive for a handful of shops at high rates, so each shop is looked up once in a
while. Unknown shops are cached too (as None), or every forged request would cost a database
query; and so that made-up shop names cannot grow memory, the cache holds at most
`max_entries` shops, known or not, evicting the least recently used.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from connectors.merchants import Merchant

MERCHANT_TTL = 30.0  # seconds a merchant (and its secrets) is cached in process
MAX_ENTRIES = 10_000

Loader = Callable[[str], Awaitable[Merchant | None]]


class MerchantCache:
    """`get(shop)` answers from the cache while the entry is fresh; when it is stale or
    missing, the requests that ask meanwhile share one lookup instead of each querying."""

    def __init__(
        self,
        load: Loader,
        max_entries: int = MAX_ENTRIES,
        ttl: float = MERCHANT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("the merchant cache needs room for at least one entry")
        self._load = load
        self._max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Merchant | None]] = OrderedDict()
        self._lookups: dict[str, asyncio.Future[Merchant | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, shop: str) -> Merchant | None:
        hit = self._entries.get(shop)
        if hit is not None and hit[0] > self._clock():
            self._entries.move_to_end(shop)
            return hit[1]
        lookup = self._lookups.get(shop)
        if lookup is None:
            lookup = asyncio.ensure_future(self._refresh(shop))
            self._lookups[shop] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(shop, None))
        # shield: one caller giving up (a dropped connection) must not cancel the others' lookup
        return await asyncio.shield(lookup)

    async def _refresh(self, shop: str) -> Merchant | None:
        merchant = await self._load(shop)
        self._entries[shop] = (self._clock() + self._ttl, merchant)
        self._entries.move_to_end(shop)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return merchant
