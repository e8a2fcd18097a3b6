"""A flow's CPU niceness from FLOW_NICE_BY_FLOW, in a real child process (raising niceness
needs no privilege), and the warning when lowering it is not allowed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from loyalnest import priority
from loyalnest.settings import Settings

CHILD = """
import os, threading
from loyalnest.priority import apply_priority
from loyalnest.settings import Settings
ran_with = apply_priority(Settings(_env_file=None), "{flow}")
seen = []
worker = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))
worker.start(); worker.join()
print(ran_with, seen[0])
"""


def niceness_in_child(flow: str, by_flow: dict[str, int]) -> tuple[int, int]:
    env = {**os.environ, "FLOW_NICE_BY_FLOW": json.dumps(by_flow)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(flow=flow)],
        env=env,
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def test_a_named_flow_runs_with_its_niceness_and_so_do_the_threads_it_starts() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    wanted = min(19, base + 3)
    assert niceness_in_child("rfm", {"rfm": wanted}) == (wanted, wanted)


def test_a_flow_not_named_keeps_its_niceness() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert niceness_in_child("points", {"rfm": min(19, base + 3)}) == (base, base)


def test_a_niceness_without_privilege_is_a_warning_not_a_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(_which: int, _who: int, _value: int) -> None:
        raise PermissionError("not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)
    monkeypatch.setenv("FLOW_NICE_BY_FLOW", '{"tiers": -5}')
    with caplog.at_level(logging.WARNING, "loyalnest.priority"):
        ran_with = priority.apply_priority(Settings(_env_file=None), "tiers")

    assert ran_with == os.getpriority(os.PRIO_PROCESS, 0)
    assert "niceness -5 needs privilege" in caplog.text


def test_the_tiers_flow_runs_first_by_default_and_out_of_range_values_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOW_NICE_BY_FLOW", raising=False)
    assert Settings(_env_file=None).flow_nice_by_flow == {"tiers": -5}
    monkeypatch.setenv("FLOW_NICE_BY_FLOW", '{"tiers": -21}')
    with pytest.raises(ValueError, match="greater than or equal to -20"):
        Settings(_env_file=None)
