"""Checking the API's PostgreSQL connections before use, but only those that may have gone
stale.

The pool hands out connections that may be dead (PostgreSQL restarted, a firewall dropped an
idle socket); asking the server before every use avoids a failed request, but costs a round
trip per use, which made the referral endpoints' queries about twice as expensive. A
connection returned moments ago was alive then: only one idle for longer than `idle_seconds`
is asked.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

IDLE_SECONDS = 5.0

Connection = AsyncConnection[Any]


class IdleCheck:
    """`check` and `reset` for an AsyncConnectionPool."""

    def __init__(
        self, idle_seconds: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._returned: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    async def check(self, conn: Connection) -> None:
        returned = self._returned.get(conn)
        if returned is not None and self._clock() - returned < self._idle_seconds:
            return
        await AsyncConnectionPool.check_connection(conn)

    async def reset(self, conn: Connection) -> None:
        self._returned[conn] = self._clock()
