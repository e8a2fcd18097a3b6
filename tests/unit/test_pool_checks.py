"""The API pool asks PostgreSQL whether a connection lives only when it idled long enough."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from psycopg_pool import AsyncConnectionPool

from connectors.pool_checks import IdleCheck


class Conn:
    """A stand-in connection (weak-referenceable, as psycopg's are)."""


def test_only_a_connection_unused_for_a_while_or_never_returned_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[object] = []

    async def check_connection(conn: object) -> None:
        asked.append(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", check_connection)
    now = [100.0]
    idle = IdleCheck(idle_seconds=5, clock=lambda: now[0])
    fresh, used = cast(Any, Conn()), cast(Any, Conn())

    async def run() -> None:
        await idle.check(fresh)  # never seen: asked
        await idle.reset(used)
        now[0] += 4.9
        await idle.check(used)  # returned 4.9 s ago: trusted
        now[0] += 0.2
        await idle.check(used)  # 5.1 s: asked

    asyncio.run(run())

    assert asked == [fresh, used]
