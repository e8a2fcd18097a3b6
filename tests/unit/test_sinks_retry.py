"""RetryPolicy.call: how every sink retries a write the server may not have applied."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from sinks.retry import RetryPolicy


class Flaky:
    """Fails with ConnectionError `failures` times, then returns "done"."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.resets = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"lost #{self.calls}")
        return "done"

    def reset(self) -> None:
        self.resets += 1


def retries(sink: str) -> float:
    return REGISTRY.get_sample_value("loyalnest_sink_retries_total", {"sink": sink}) or 0.0


def test_it_retries_with_backoff_resets_and_counts_each_retry() -> None:
    write, slept = Flaky(failures=2), list[float]()
    before = retries("test-a")

    result = RetryPolicy(attempts=4, base_delay=0.5).call(
        "test-a",
        write,
        transient=(ConnectionError,),
        failed=RuntimeError,
        reset=write.reset,
        sleep=slept.append,
    )

    assert result == "done"
    assert (write.calls, write.resets, slept) == (3, 2, [0.5, 1.0])
    assert retries("test-a") == before + 2


def test_past_the_last_attempt_it_raises_the_sinks_error_from_the_last_one() -> None:
    write, slept = Flaky(failures=9), list[float]()

    with pytest.raises(RuntimeError, match="gave up after retries: lost #3") as raised:
        RetryPolicy(attempts=3).call(
            "test-b", write, transient=(ConnectionError,), failed=RuntimeError, sleep=slept.append
        )

    assert isinstance(raised.value.__cause__, ConnectionError)
    assert (write.calls, slept) == (3, [1.0, 2.0])


def test_an_error_that_is_not_transient_is_not_retried() -> None:
    def refuse() -> str:
        raise ValueError("a bad document")

    with pytest.raises(ValueError, match="a bad document"):
        RetryPolicy().call("test-c", refuse, transient=(ConnectionError,), failed=RuntimeError)
