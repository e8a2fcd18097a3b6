"""Referral terms travel with each order webhook as headers, and are read back strictly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest

from connectors.shopify import (
    REFERRAL_MIN_SUBTOTAL_HEADER,
    kafka_headers,
    read_referral_terms,
)
from loyalty.errors import InvalidEventError
from loyalty.referral_terms import ReferralTerms

TERMS = ReferralTerms(750, 100, Decimal("25.00"), 14)


def reader(headers: Sequence[tuple[str, str | bytes | None]]) -> Callable[[str], str | None]:
    found = {k: v.decode() if isinstance(v, bytes) else v for k, v in headers}
    return found.get


def test_the_terms_round_trip_through_the_headers() -> None:
    headers = kafka_headers({}, "corr", None, TERMS)

    assert read_referral_terms(reader(headers)) == TERMS


def test_a_record_without_them_has_the_defaults() -> None:
    assert read_referral_terms(reader(kafka_headers({}, "corr"))) == ReferralTerms()


def test_a_malformed_term_is_refused() -> None:
    headers = [(REFERRAL_MIN_SUBTOTAL_HEADER, b"1e3")]

    with pytest.raises(InvalidEventError, match="referral minimum subtotal"):
        read_referral_terms(reader(headers))
