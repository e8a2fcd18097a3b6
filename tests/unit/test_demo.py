from __future__ import annotations

from typing import Any

from loyalnest.demo import segments_line


def test_the_segments_line_waits_for_every_customer_and_names_the_nonzero_segments() -> None:
    answers: list[dict[str, Any]] = [
        {"total": 0, "as_of": None, "segments": {"champions": 0}},
        {
            "total": 3,
            "as_of": "2026-11-22",
            "segments": {"champions": 1, "loyal": 0, "prospects": 2},
        },
    ]
    slept: list[float] = []

    line = segments_line(lambda: answers.pop(0), 3, 60, clock=lambda: 0.0, sleep=slept.append)

    assert line == "RFM segments of demo.myshopify.com as of 2026-11-22: champions 1, prospects 2"
    assert slept == [0.5]


def test_the_segments_line_says_when_the_flow_is_not_there_yet() -> None:
    times = iter([0.0, 61.0])

    line = segments_line(
        lambda: {"total": 0}, 3, 60, clock=lambda: next(times), sleep=lambda _: None
    )

    assert line == "RFM segments not ready after 60s (see .data/logs/rfm.log)"
