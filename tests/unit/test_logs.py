"""One JSON object per log line, carrying the correlation id of what is being handled."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from loyalnest import logs


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the root logger writes, as configured by `logs.configure` (restored after)."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    out = io.StringIO()
    logs.configure("INFO")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    yield out
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


def logged(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_time_level_logger_and_message(
    lines: io.StringIO,
) -> None:
    logging.getLogger("loyalnest.test").info("order %s applied", 42)

    (line,) = logged(lines)
    assert line["level"] == "INFO"
    assert line["logger"] == "loyalnest.test"
    assert line["message"] == "order 42 applied"
    assert line["correlation_id"] is None
    assert str(line["time"]).endswith("+00:00")  # ISO 8601, UTC


def test_lines_logged_inside_correlated_carry_its_id_and_only_those(lines: io.StringIO) -> None:
    log = logging.getLogger("loyalnest.test")
    with logs.correlated("wh-123"):
        log.warning("inside")
        assert logs.current_correlation() == "wh-123"
    log.warning("after")

    assert [line["correlation_id"] for line in logged(lines)] == ["wh-123", None]


def test_an_id_passed_as_extra_wins_over_the_current_one(lines: io.StringIO) -> None:
    with logs.correlated("current"):
        logging.getLogger("x").info("m", extra={logs.CORRELATION_FIELD: "given"})

    assert logged(lines)[0]["correlation_id"] == "given"


def test_an_exception_is_kept_in_the_same_line(lines: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")

    (line,) = logged(lines)
    assert "ValueError: boom" in str(line["exc_info"])


def test_configure_replaces_the_handlers_and_text_format_is_plain() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.correlation_id = "c1"

    assert logs.formatter("text").format(record).endswith("INFO x [c1] hello")
    assert json.loads(logs.formatter("json").format(record))["message"] == "hello"
