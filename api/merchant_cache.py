"""Merchants (and their webhook secrets) cached in process (api/expiring_cache.py).

Webhooks arrive for a handful of shops at high rates, so each shop is looked up once in a
while. Unknown shops are cached too (as None), or every forged request would cost a database
query; and so that made-up shop names cannot grow memory, the cache holds at most
`max_entries` shops, known or not, evicting the least recently used.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from api.expiring_cache import ExpiringCache
from connectors.merchants import Merchant

MERCHANT_TTL = 30.0  # seconds a merchant (and its secrets) is cached in process
MAX_ENTRIES = 10_000

Loader = Callable[[str], Awaitable[Merchant | None]]


class MerchantCache(ExpiringCache[Merchant | None]):
    def __init__(
        self,
        load: Loader,
        max_entries: int = MAX_ENTRIES,
        ttl: float = MERCHANT_TTL,
        clock: Callable[[], float] = time.monotonic,
        on_size: Callable[[int], object] = lambda _size: None,
    ) -> None:
        super().__init__(load, max_entries, ttl, clock, on_size)
