"""Request values that become ledger fields, headers or metric labels: valid forms only."""

from __future__ import annotations

import uuid

import pytest

from api.request_values import (
    BadValueError,
    correlation_id,
    idempotency_key,
    requested_locale,
)

SUPPORTED = frozenset({"en", "ar", "he"})


def test_a_supported_locale_is_taken_and_none_means_not_asked() -> None:
    assert requested_locale("he", SUPPORTED) == "he"
    assert requested_locale(None, SUPPORTED) is None


@pytest.mark.parametrize(
    "value", ["fr", "xq", "", "HE", "he-IL", "e", "engl", "h\u00e9", "x" * 300]
)
def test_an_unsupported_or_malformed_locale_is_refused_naming_the_supported_ones(
    value: str,
) -> None:
    with pytest.raises(BadValueError, match=r"^locale must be one of ar, en, he$"):
        requested_locale(value, SUPPORTED)


def test_a_locale_added_to_the_translations_is_supported() -> None:
    assert requested_locale("fr", SUPPORTED | {"fr"}) == "fr"


def test_a_valid_correlation_id_is_kept_and_a_missing_one_is_made() -> None:
    assert correlation_id("trace-1:abc.DEF_2") == "trace-1:abc.DEF_2"
    assert uuid.UUID(correlation_id(None))


@pytest.mark.parametrize("value", ["", "a b", "x" * 129, "caf\u00e9", "a/b", "a\tb"])
def test_a_malformed_correlation_id_is_refused(value: str) -> None:
    with pytest.raises(BadValueError, match="X-Correlation-Id"):
        correlation_id(value)


@pytest.mark.parametrize("value", ["k", "key with spaces ~!", "x" * 255])
def test_an_idempotency_key_of_printable_ascii_is_taken(value: str) -> None:
    assert idempotency_key(value) == value


@pytest.mark.parametrize("value", [None, "", "x" * 256, "caf\u00e9", "a\tb", "a\x7fb"])
def test_any_other_idempotency_key_is_refused(value: str | None) -> None:
    with pytest.raises(BadValueError, match="Idempotency-Key"):
        idempotency_key(value)
