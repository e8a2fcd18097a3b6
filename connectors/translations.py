"""Transaction descriptions as stored in MongoDB's `translations` collection (seeded by the
bootstrap; merchants may edit or add entries), read by the flows and the API alike."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from loyalty.i18n import BUILT_IN

COLLECTION = "translations"


def merged(stored: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """Built-in descriptions, overridden by the stored ones."""
    return {**BUILT_IN, **stored}


def load_translations(db: Database[Any]) -> dict[tuple[str, str], str]:
    return merged({(d["key"], d["locale"]): d["value"] for d in db[COLLECTION].find()})
