"""Strict JSON: what the API accepts and what the flows decode, read the same way.

RFC 8259 JSON exchanged between systems is UTF-8 without a byte order mark. Python's own
`json.loads(bytes)` is more lenient than that (it guesses UTF-16 and UTF-32, accepts lone
surrogate escapes, and raises RecursionError or ValueError on hostile input); this module
turns every such case into one error with a reason, and bounds what the parse may produce.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from loyalty.errors import InvalidEventError
from loyalty.limits import MAX_JSON_DEPTH, MAX_JSON_INTEGER_DIGITS

_BOM = b"\xef\xbb\xbf"
# An escaped UTF-16 surrogate (\ud800-\udfff): only then can the parse yield a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_CONTAINERS = (dict, list)


class NotJsonError(InvalidEventError):
    """The bytes are not one strict JSON document (encoding, syntax, depth, number size)."""


def loads(raw: bytes) -> Any:
    """Parse UTF-8 JSON strictly: JSON numbers with a fraction or exponent become Decimal,
    integers are bounded, nesting is bounded, and every string is valid Unicode."""
    text = _text(raw)
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise NotJsonError(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise NotJsonError("not JSON: nested too deeply") from exc
    _check_depth(value)
    if _SURROGATE_ESCAPE.search(text):
        _check_strings(value)
    return value


def _text(raw: bytes) -> str:
    if raw.startswith(_BOM):
        raise NotJsonError("not JSON: UTF-8 with a byte order mark")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotJsonError(f"not JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from exc


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
        raise NotJsonError(f"not JSON: an integer longer than {MAX_JSON_INTEGER_DIGITS} digits")
    return int(digits)


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError as exc:  # an exponent beyond what Decimal can hold (1e10**18)
        raise NotJsonError("not JSON: a number out of range") from exc


def _reject_constant(name: str) -> object:
    raise NotJsonError(f"not JSON: {name} is not a number")


# Built once: `json.loads` with hooks builds a new decoder on every call.
_DECODER = json.JSONDecoder(
    parse_float=_decimal, parse_int=_bounded_int, parse_constant=_reject_constant
)


def _check_depth(value: Any) -> None:
    """Level by level over containers only, so that checking a deep value cannot itself
    exhaust the stack and scalars cost one class comparison each."""
    level = [value]
    for _ in range(MAX_JSON_DEPTH):
        deeper: list[Any] = []
        for node in level:
            if node.__class__ is dict:
                deeper += [c for c in node.values() if c.__class__ in _CONTAINERS]
            elif node.__class__ is list:
                deeper += [c for c in node if c.__class__ in _CONTAINERS]
        if not deeper:
            return
        level = deeper
    raise NotJsonError(f"not JSON: nested deeper than {MAX_JSON_DEPTH} levels")


def _check_strings(value: Any) -> None:
    pending: list[Any] = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                _utf8(key)
                pending.append(child)
        elif isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, str):
            _utf8(node)


def _utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotJsonError("not JSON: a string holds a lone UTF-16 surrogate") from exc
