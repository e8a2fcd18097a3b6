"""`loyalnest tiers set`, `show` and `preview`: a merchant's VIP tiers.

`set` validates the file (loyalty/tier_config.py) and adds a version of the merchant's tiers
(connectors/tier_configs.py), in force a few seconds later: from then on, each customer's next
order change or clock tick is decided under it. Nobody's tier is recalculated on the spot.
`show` prints the latest version, with when it took (or takes) effect. `preview` prints what
a proposed file would do to today's customers (loyalty/tier_preview.py), changing nothing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from connectors.tier_configs import TierVersion, load_versions, save_tiers
from connectors.tier_reads import CUSTOMERS, stored_customers
from loyalnest.settings import Settings
from loyalty import ids, json_input
from loyalty.errors import InvalidEventError
from loyalty.tier_config import InvalidTiersError, parse_tiers
from loyalty.tier_preview import preview

MERCHANT_ID = "SELECT id::text FROM merchants WHERE shop_domain = %(shop)s"


def read_tiers_file(path: Path) -> Any:
    try:
        return json_input.loads(path.read_bytes())
    except OSError as exc:
        raise InvalidTiersError(f"cannot read {path}: {exc.strerror}") from exc
    except InvalidEventError as exc:
        raise InvalidTiersError(f"{path} is not JSON: {exc}") from exc


def set_tiers(settings: Settings, shop: str, path: Path) -> dict[str, Any]:
    """Validate and save; raise InvalidTiersError (bad file) or LookupError (unknown shop)."""
    config = parse_tiers(read_tiers_file(path))
    with psycopg.connect(settings.postgres_url) as conn:
        merchant_id = _merchant_id(conn, shop)
        saved = save_tiers(conn, merchant_id, config)
    return version_document(merchant_id, saved)


def show_tiers(settings: Settings, shop: str) -> dict[str, Any]:
    with psycopg.connect(settings.postgres_url) as conn:
        merchant_id = _merchant_id(conn, shop)
        _, histories = load_versions(conn, merchant_id)
    versions = histories.get(merchant_id, [])
    if not versions:
        return {"merchant_id": merchant_id, "version": None, "tiers": None}
    return version_document(merchant_id, versions[-1])


def preview_tiers(settings: Settings, shop: str, path: Path, as_of: datetime) -> dict[str, Any]:
    config = parse_tiers(read_tiers_file(path))
    with psycopg.connect(settings.postgres_url) as conn:
        merchant_id = _merchant_id(conn, shop)
        rows = conn.execute(CUSTOMERS, {"merchant": merchant_id}).fetchall()
    result = preview(stored_customers(rows), config, as_of)
    return {"merchant_id": merchant_id, **result.document(config)}


def version_document(merchant_id: str, version: TierVersion) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "version": version.version,
        "effective_at": version.effective_at.isoformat(),
        **version.config.document(),
    }


def _merchant_id(conn: psycopg.Connection[Any], shop: str) -> str:
    shop = ids.normalize_shop(shop)
    row = conn.execute(MERCHANT_ID, {"shop": shop}).fetchone()
    if row is None:
        raise LookupError(f"no merchant {shop}: add it with `loyalnest merchants add` first")
    return str(row[0])
