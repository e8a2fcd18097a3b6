"""Stored translations override the built-in ones only when they can be used."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.store import merged
from loyalty.i18n import BUILT_IN, describe


def test_a_stored_template_overrides_the_built_in_one() -> None:
    stored = [{"key": "points.earned.order", "locale": "en", "value": "+{points} pts"}]

    assert describe(merged(stored), "points.earned.order", "en", points=5) == "+5 pts"


def test_a_new_language_can_be_added() -> None:
    stored = [{"key": "points.balance", "locale": "fr", "value": "Vous avez {balance} points"}]

    assert merged(stored)[("points.balance", "fr")] == "Vous avez {balance} points"


@pytest.mark.parametrize(
    "doc",
    [
        {"key": "points.earned.order", "locale": "en", "value": "{point} typo"},
        {"key": "points.earned.order", "locale": "en", "value": "{0} positional"},
        {"key": "points.earned.order", "locale": "en", "value": "{points!z} bad"},
        {"key": "points.earned.order", "locale": "en", "value": "{points.real.x}"},
        {"key": "points.earned.order", "locale": "en", "value": 5},
        {"key": "points.earned.order", "locale": "EN-us!", "value": "{points}"},
        {"key": None, "locale": "en", "value": "{points}"},
        {"locale": "en", "value": "{points}"},
    ],
)
def test_an_unusable_stored_template_is_skipped_and_the_built_in_one_kept(
    doc: dict[str, Any],
) -> None:
    translations = merged([doc])

    assert translations == BUILT_IN
    assert describe(translations, "points.earned.order", "en", points=3) == "Earned 3 points"
