"""The API context without MongoDB: built-in translations until the stored ones load, and the
locales a request may ask for follow whatever is loaded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from api import context
from api.context import ApiContext
from connectors.store import merged
from loyalty.i18n import BUILT_IN

STORED = [{"key": "points.balance", "locale": "fr", "value": "Vous avez {balance} points"}]


class FlakyMongo:
    """`client[db][collection].find()` fails `failures` times, then yields STORED."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    def __getitem__(self, _name: str) -> FlakyMongo:
        return self

    def find(self) -> AsyncIterator[dict[str, str]]:
        self.attempts += 1
        return self._documents()

    async def _documents(self) -> AsyncIterator[dict[str, str]]:
        if self.failures:
            self.failures -= 1
            raise ServerSelectionTimeoutError("no servers")
        for document in STORED:
            yield document


def context_with(mongo: FlakyMongo) -> ApiContext:
    unused = cast(Any, None)
    settings = cast(Any, type("S", (), {"mongo_database": "db"})())
    return ApiContext(
        settings=settings,
        secrets=unused,
        producer=unused,
        redis=unused,
        mongo=cast(Any, mongo),
        pool=unused,
        merchants=unused,
        translations=merged({}),
    )


def test_until_mongodb_answers_the_built_in_translations_and_locales_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(context, "TRANSLATIONS_RETRY", 0)
    mongo = FlakyMongo(failures=3)
    ctx = context_with(mongo)

    async def run() -> tuple[bool, frozenset[str]]:
        first = await ctx.load_translations()
        locales_meanwhile = ctx.locales
        await ctx.keep_loading_translations()
        return first, locales_meanwhile

    first, locales_meanwhile = asyncio.run(run())

    assert not first
    assert locales_meanwhile == {"en", "ar", "he"}
    assert mongo.attempts == 4  # three failures, then loaded
    assert ctx.translations_loaded
    assert ctx.translations == {**BUILT_IN, ("points.balance", "fr"): STORED[0]["value"]}
    assert ctx.locales == {"en", "ar", "he", "fr"}


class Merchants:
    def __init__(self, locales: dict[str, str]) -> None:
        self.locales = locales

    async def get(self, shop: str) -> Any:
        locale = self.locales.get(shop)
        return None if locale is None else type("M", (), {"locale": locale})()


@pytest.mark.parametrize(
    ("shop", "expected"),
    [("hebrew", "he"), ("gone", "en"), ("french-not-served", "en")],
)
def test_the_default_locale_is_the_merchants_if_served_else_en(shop: str, expected: str) -> None:
    ctx = context_with(FlakyMongo(failures=0))
    ctx.merchants = cast(Any, Merchants({"hebrew": "he", "french-not-served": "fr"}))

    assert asyncio.run(ctx.merchant_locale(shop)) == expected
