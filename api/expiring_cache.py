"""A cache in process: bounded, expiring, single flight.

`get(key)` answers from the cache while the entry is fresh; when it is stale or missing, the
requests that ask meanwhile share one load instead of each querying. Absent things are cached
too (the loader's None), so requests for made-up keys cost one load per TTL, and the cache
holds at most `max_entries` keys, evicting the least recently used.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringCache(Generic[V]):
    """Values of `load(key)`, each kept `ttl` seconds (0: every get loads, one at a time)."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[V]],
        max_entries: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        on_size: Callable[[int], object] = lambda _size: None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("a cache needs room for at least one entry")
        self._load = load
        self._max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        self._on_size = on_size  # told the number of entries whenever it may have changed
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lookups: dict[str, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> V:
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self._clock():
            self._entries.move_to_end(key)
            return hit[1]
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._refresh(key))
            self._lookups[key] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(key, None))
        # shield: one caller giving up (a dropped connection) must not cancel the others' lookup
        return await asyncio.shield(lookup)

    def forget(self, key: str) -> None:
        """The next get loads again (this process changed the value)."""
        self._entries.pop(key, None)
        self._on_size(len(self._entries))

    async def _refresh(self, key: str) -> V:
        value = await self._load(key)
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        self._on_size(len(self._entries))
        return value
