"""The benchmarks' reading of the whole machine's CPU (/proc/stat)."""

from __future__ import annotations

import os

import pytest

from bench.proc import MachineCpu


def test_busy_cores_is_the_busy_share_of_the_time_passed_times_the_cores() -> None:
    before = MachineCpu(busy=100.0, total=400.0)
    later = MachineCpu(busy=130.0, total=440.0)  # 30 of 40 CPU-seconds busy
    assert before.busy_cores(later) == pytest.approx(0.75 * (os.cpu_count() or 1))


def test_a_reading_of_this_machine_is_busy_for_part_of_its_time() -> None:
    first = MachineCpu.now()
    sum(range(200_000))  # some CPU time between the readings
    second = MachineCpu.now()
    assert 0 < first.busy <= first.total
    assert second.busy >= first.busy  # (iowait, counted in total, may step back)
    assert 0 <= first.busy_cores(second) <= (os.cpu_count() or 1)
