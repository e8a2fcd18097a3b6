"""Referral codes: what one looks like, how an advocate's is made, and where an order names one.

A code is 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L), so one read aloud
or copied by hand is still the code: 31^8 (about 8.5 * 10^11) codes. An advocate's code is
derived from the merchant's key, the advocate and an attempt number: asking again gives the
same code, and a code cannot be guessed from the advocate's id. Should two advocates of one
merchant derive the same code (unique per merchant in the store), the next attempt is used.

Codes are matched ignoring case and surrounding spaces; anything else that is not a code's
shape is not a referral (a merchant's other discount codes, say).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qs, urlsplit

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 8
NOTE_ATTRIBUTE = "referral_code"
LINK_PARAMETER = "ref"
_ALLOWED = frozenset(ALPHABET)


def advocate_code(key: bytes, advocate: int, attempt: int = 0) -> str:
    """The advocate's code under the merchant's key (`attempt` > 0 after a collision)."""
    digest = hmac.new(key, f"referral-code:{advocate}:{attempt}".encode(), hashlib.sha256)
    number = int.from_bytes(digest.digest()[:8], "big")
    chars = []
    for _ in range(LENGTH):
        number, index = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[index])
    return "".join(chars)


def parse_code(text: object) -> str | None:
    """The code `text` names (upper-cased, trimmed), or None if it is not a code's shape."""
    if not isinstance(text, str):
        return None
    code = text.strip().upper()
    if len(code) == LENGTH and set(code) <= _ALLOWED:
        return code
    return None


class Source(Enum):
    """Where an order named its referral code; the first found in this order wins."""

    DISCOUNT_CODE = "discount_code"
    NOTE_ATTRIBUTE = "note_attribute"
    LANDING_SITE = "landing_site"


@dataclass(frozen=True)
class Attribution:
    code: str
    source: Source


def attribution(body: dict[str, Any]) -> Attribution | None:
    """The referral code an order webhook names: a discount code the friend applied, a cart
    note attribute `referral_code`, or `ref=CODE` in the landing page's query."""
    for source, candidates in (
        (Source.DISCOUNT_CODE, _discount_codes(body)),
        (Source.NOTE_ATTRIBUTE, _note_attributes(body)),
        (Source.LANDING_SITE, _landing_site_refs(body)),
    ):
        for candidate in candidates:
            code = parse_code(candidate)
            if code is not None:
                return Attribution(code, source)
    return None


def _discount_codes(body: dict[str, Any]) -> list[object]:
    return [entry.get("code") for entry in _dicts(body.get("discount_codes"))]


def _note_attributes(body: dict[str, Any]) -> list[object]:
    return [
        entry.get("value")
        for entry in _dicts(body.get("note_attributes"))
        if isinstance(entry.get("name"), str) and entry["name"].strip().lower() == NOTE_ATTRIBUTE
    ]


def _landing_site_refs(body: dict[str, Any]) -> list[object]:
    site = body.get("landing_site")
    if not isinstance(site, str):
        return []
    try:
        query = urlsplit(site).query
    except ValueError:  # a malformed URL names no code
        return []
    return list(parse_qs(query).get(LINK_PARAMETER, []))


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
