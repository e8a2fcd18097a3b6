"""Transaction descriptions: locale choice, English fallback and the built-in templates."""

from __future__ import annotations

from string import Formatter

import pytest

from loyalty.i18n import BUILT_IN, DEFAULT_LOCALE, describe

LOCALES = ("en", "ar", "he")
KEYS = sorted({key for key, _ in BUILT_IN})


def test_describe_uses_the_requested_locale() -> None:
    assert describe(BUILT_IN, "points.earned.order", "ar", points=5) == "ربحت 5 نقطة"
    assert describe(BUILT_IN, "points.earned.order", "he", points=5) == "צברת 5 נקודות"
    assert describe(BUILT_IN, "points.earned.order", "en", points=5) == "Earned 5 points"


@pytest.mark.parametrize("locale", ["fr", "", "EN", "en-US"])
def test_describe_falls_back_to_english_for_an_unknown_locale(locale: str) -> None:
    text = describe(BUILT_IN, "points.spent.redemption", locale, points=12)

    assert text == "Spent 12 points on a reward"


def test_describe_prefers_an_override_over_the_built_in() -> None:
    translations = {**BUILT_IN, ("points.balance", "he"): "יתרה: {balance}"}

    assert describe(translations, "points.balance", "he", balance=7) == "יתרה: 7"


def test_describe_falls_back_to_english_when_only_english_exists() -> None:
    translations = {("custom.key", "en"): "Custom {points}"}

    assert describe(translations, "custom.key", "ar", points=3) == "Custom 3"


def test_describe_raises_key_error_for_an_unknown_key() -> None:
    with pytest.raises(KeyError, match=r"no translation for 'points\.unknown'"):
        describe(BUILT_IN, "points.unknown", "en", points=1)


def test_describe_raises_key_error_when_neither_locale_nor_english_exists() -> None:
    translations = {("custom.key", "ar"): "{points}"}

    with pytest.raises(KeyError, match=r"custom\.key"):
        describe(translations, "custom.key", "he", points=1)


def test_describe_with_a_missing_value_raises_key_error() -> None:
    with pytest.raises(KeyError, match="points"):
        describe(BUILT_IN, "points.earned.order", "en", balance=5)


def test_default_locale_is_english() -> None:
    assert DEFAULT_LOCALE == "en"


def test_the_known_keys_are_all_built_in() -> None:
    assert set(KEYS) == {
        "points.earned.order",
        "points.reversed.refund",
        "points.reversed.cancel",
        "points.spent.redemption",
        "points.balance",
        "points.earned.pending",
        "points.released.pending",
        "points.adjusted.added",
        "points.adjusted.deducted",
        "points.expired.lot",
        "points.expired.inactivity",
        "points.bonus.referral",
        "points.reversed.referral",
        "points.bonus.tier",
    }


@pytest.mark.parametrize("key", KEYS)
def test_every_key_has_english_arabic_and_hebrew(key: str) -> None:
    assert {locale for k, locale in BUILT_IN if k == key} == set(LOCALES)


@pytest.mark.parametrize(("key", "locale"), sorted(BUILT_IN))
def test_every_built_in_template_formats_with_points_and_balance(key: str, locale: str) -> None:
    text = describe(BUILT_IN, key, locale, points=5, balance=5)

    assert "5" in text
    assert "{" not in text
    assert "}" not in text
    assert text == BUILT_IN[(key, locale)].format(points=5, balance=5)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("locale", ["ar", "he"])
def test_arabic_and_hebrew_templates_are_translated(key: str, locale: str) -> None:
    template = BUILT_IN[(key, locale)]

    assert template != BUILT_IN[(key, "en")]
    assert not template.isascii()


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


@pytest.mark.parametrize(("key", "locale"), sorted(BUILT_IN))
def test_every_translation_uses_the_same_placeholders_as_english(key: str, locale: str) -> None:
    fields = _fields(BUILT_IN[(key, locale)])

    assert fields == _fields(BUILT_IN[(key, "en")])
    assert fields == ({"balance"} if key == "points.balance" else {"points"})
