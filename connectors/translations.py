"""Transaction descriptions as stored in MongoDB's `translations` collection (seeded by the
bootstrap; merchants may edit or add entries), read by the flows and the API alike."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pymongo.database import Database

from loyalty.fields import is_locale
from loyalty.i18n import BUILT_IN

log = logging.getLogger(__name__)

COLLECTION = "translations"


def merged(stored: Iterable[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Built-in descriptions, overridden by the stored documents that are usable.

    A stored template that cannot be filled (a typo such as `{point}`, a value that is not
    text) is skipped with a warning: one bad edit must not make every ledger entry in that
    language a dead letter.
    """
    translations = dict(BUILT_IN)
    for doc in stored:
        key, locale, template = doc.get("key"), doc.get("locale"), doc.get("value")
        if isinstance(key, str) and isinstance(locale, str) and usable(locale, template):
            translations[(key, locale)] = str(template)
        else:
            log.warning("ignoring translation %r/%r: %r", key, locale, template)
    return translations


def usable(locale: str, template: object) -> bool:
    if not isinstance(template, str) or not is_locale(locale):
        return False
    try:
        template.format(points=0, balance=0)
    except (KeyError, IndexError, ValueError, AttributeError):
        return False
    return True


def load_translations(db: Database[Any]) -> dict[tuple[str, str], str]:
    return merged(db[COLLECTION].find())
