"""A cache fill after a miss never keeps a value longer than BALANCE_CACHE_SECONDS after it
was read from MongoDB, counting the longest the fill may take to land."""

from __future__ import annotations

from api.balances import fill_ttl_ms
from api.context import REDIS_TIMEOUT


def test_a_prompt_fill_lives_the_ttl_less_one_redis_timeout() -> None:
    assert fill_ttl_ms(5, read_at=100.0, now=100.0) == int((5 - REDIS_TIMEOUT) * 1000)


def test_time_spent_since_the_read_is_taken_off() -> None:
    assert fill_ttl_ms(5, read_at=100.0, now=102.5) == int((2.5 - REDIS_TIMEOUT) * 1000)


def test_a_fill_that_could_outlive_the_bound_is_not_made() -> None:
    assert fill_ttl_ms(5, read_at=100.0, now=104.0) <= 0
    assert fill_ttl_ms(1, read_at=100.0, now=100.0) <= 0
