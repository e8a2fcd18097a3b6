"""Log lines for every long-running job (the API, each flow, the supervisor, the rounds): one JSON
object per line, with the correlation id of the record or request being handled.

A webhook's `X-Correlation-Id` travels with the order through Kafka headers; a flow step sets it
(`correlated`) while it handles that record, and every line logged meanwhile carries it, so one
id finds a customer's order in the API's log and in every flow's. `LOYALNEST_LOG_FORMAT=text`
gives plain lines for a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from loyalnest.settings import Settings

LogFormat = Literal["json", "text"]

CORRELATION_FIELD = "correlation_id"
_correlation: ContextVar[str | None] = ContextVar(CORRELATION_FIELD, default=None)

# The keys of every JSON line besides "time" (ISO 8601, UTC): how bad, who said it, what, and
# for which request.
_JSON_FIELDS = ("levelname", "name", "message", CORRELATION_FIELD)
_RENAMED = {"levelname": "level", "name": "logger"}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"


def current_correlation() -> str | None:
    """The correlation id of what is being handled now, if it has one."""
    return _correlation.get()


@contextmanager
def correlated(correlation_id: str | None) -> Iterator[None]:
    """Lines logged inside carry `correlation_id` (None: none)."""
    token = _correlation.set(correlation_id)
    try:
        yield
    finally:
        _correlation.reset(token)


class CorrelationFilter(logging.Filter):
    """Gives every record the current correlation id, unless the call passed one as `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, CORRELATION_FIELD, None) is None:
            setattr(record, CORRELATION_FIELD, _correlation.get())
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "text":
        return logging.Formatter(_TEXT_FORMAT)
    return JsonFormatter(
        list(_JSON_FIELDS),
        rename_fields=_RENAMED,
        timestamp="time",
        json_ensure_ascii=False,
    )


def configure(level: str | int, log_format: LogFormat = "json") -> None:
    """Root logging for a job: one handler on stderr (the supervisor keeps each job's stderr in
    its log file), replacing any other, at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def configure_job(settings: Settings) -> None:
    """A job's logging as its settings say (LOYALNEST_LOG_LEVEL, LOYALNEST_LOG_FORMAT)."""
    configure(settings.log_level, settings.log_format)
