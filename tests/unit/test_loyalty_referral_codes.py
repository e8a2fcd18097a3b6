"""Referral codes: their shape, an advocate's derived code, and where an order names one."""

from __future__ import annotations

from typing import Any

import pytest

from loyalty.pii import merchant_key
from loyalty.referral_codes import (
    ALPHABET,
    LENGTH,
    Attribution,
    Source,
    advocate_code,
    attribution,
    parse_code,
)

KEY = merchant_key("secrets", "merchant-a")


def test_the_alphabet_has_no_look_alikes() -> None:
    assert len(set(ALPHABET)) == len(ALPHABET) == 31
    assert not set("01OIL") & set(ALPHABET)


def test_an_advocates_code_is_stable_keyed_and_of_the_codes_shape() -> None:
    code = advocate_code(KEY, 7)

    assert code == advocate_code(KEY, 7)
    assert parse_code(code) == code
    assert len(code) == LENGTH
    assert code != advocate_code(KEY, 7, attempt=1)
    assert code != advocate_code(merchant_key("secrets", "merchant-b"), 7)
    assert len({advocate_code(KEY, n) for n in range(10_000)}) == 10_000


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (" abcd2345 ", "ABCD2345"),
        ("ABCD2345", "ABCD2345"),
        ("ABCD234", None),  # too short
        ("ABCD23450", None),  # too long
        ("ABCD0345", None),  # 0 is not in the alphabet
        ("SUMMER-10", None),
        (12345678, None),
        (None, None),
    ],
)
def test_a_code_is_matched_ignoring_case_and_spaces_only(text: object, code: str | None) -> None:
    assert parse_code(text) == code


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ({"discount_codes": [{"code": "SUMMER10"}, {"code": "abcd2345"}]}, "ABCD2345"),
        ({"note_attributes": [{"name": " Referral_Code ", "value": "ABCD2345"}]}, "ABCD2345"),
        ({"landing_site": "/products/x?utm_source=y&ref=abcd2345"}, "ABCD2345"),
        ({"landing_site": "https://shop.example/?ref=ABCD2345#top"}, "ABCD2345"),
        ({"note_attributes": [{"name": "gift_note", "value": "ABCD2345"}]}, None),
        ({"discount_codes": "ABCD2345", "note_attributes": [None, 3]}, None),
        ({"landing_site": "http://[::1"}, None),  # malformed
        ({}, None),
    ],
)
def test_an_order_names_its_code_in_any_of_three_places(
    body: dict[str, Any], found: str | None
) -> None:
    named = attribution(body)

    assert (named.code if named else None) == found


def test_a_discount_code_wins_over_a_note_and_a_note_over_the_link() -> None:
    body = {
        "discount_codes": [{"code": "DDDD2222"}],
        "note_attributes": [{"name": "referral_code", "value": "NNNN3333"}],
        "landing_site": "/?ref=KKKK4444",
    }

    assert attribution(body) == Attribution("DDDD2222", Source.DISCOUNT_CODE)
    del body["discount_codes"]
    assert attribution(body) == Attribution("NNNN3333", Source.NOTE_ATTRIBUTE)
    del body["note_attributes"]
    assert attribution(body) == Attribution("KKKK4444", Source.LANDING_SITE)
