"""Merchants' VIP tier configurations in PostgreSQL (`vip_tier_programs`, `vip_tiers`), below
the CLI, the API and the tiers flow.

A configuration is never edited: saving adds a version, in force from `effective_at`, set by
the database a little after the save (EFFECTIVE_AFTER). The tiers flow decides each input under
the version in force at the input's time (`TierHistory.config_at`), so a replay years later
decides the same, and a change applies from then on. The delay is what lets the flow know it
has every version that can apply to a time without asking the database for each input: a
version saved after a load starts after the load's time plus the delay.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from loyalty.tier_config import TierConfig, parse_tiers
from loyalty.tier_customers import tier_id

EFFECTIVE_AFTER = timedelta(seconds=10)
# A load is trusted up to its time plus this: half the delay is left for a save's commit.
TRUSTED_FOR = EFFECTIVE_AFTER / 2
MIN_RELOAD_SECONDS = 1.0

LOCK_MERCHANT = "SELECT 1 FROM merchants WHERE id = %(merchant)s FOR UPDATE"
ADD_PROGRAM = """
INSERT INTO vip_tier_programs (merchant_id, version, metric, period, effective_at)
SELECT %(merchant)s, COALESCE(max(version), 0) + 1, %(metric)s, %(period)s,
       clock_timestamp() + %(after)s
FROM vip_tier_programs WHERE merchant_id = %(merchant)s
RETURNING version, effective_at
"""
ADD_TIER = """
INSERT INTO vip_tiers (merchant_id, version, position, tier_id, config)
VALUES (%(merchant)s, %(version)s, %(position)s, %(tier_id)s, %(config)s)
"""
VERSIONS = """
SELECT p.merchant_id::text, p.version, p.metric, p.period, p.effective_at,
       COALESCE((SELECT jsonb_agg(t.config ORDER BY t.position) FROM vip_tiers t
                 WHERE t.merchant_id = p.merchant_id AND t.version = p.version),
                '[]'::jsonb) AS tiers
FROM vip_tier_programs p
{where}
ORDER BY p.merchant_id, p.version
"""


class UnknownMerchantError(LookupError):
    pass


@dataclass(frozen=True)
class TierVersion:
    version: int
    effective_at: datetime
    config: TierConfig


Histories = dict[str, list[TierVersion]]


def save_tiers(conn: psycopg.Connection[Any], merchant_id: str, config: TierConfig) -> TierVersion:
    """Add a version of the merchant's tiers (one transaction; saves of one merchant queue)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(LOCK_MERCHANT, {"merchant": merchant_id})
        if cur.fetchone() is None:
            raise UnknownMerchantError(f"no merchant {merchant_id}")
        cur.execute(ADD_PROGRAM, program_params(merchant_id, config))
        row = cur.fetchone()
        assert row is not None
        version, effective_at = row
        cur.executemany(ADD_TIER, tier_params(merchant_id, version, config))
    return TierVersion(version, effective_at, config)


def program_params(merchant_id: str, config: TierConfig) -> dict[str, Any]:
    return {
        "merchant": merchant_id,
        "metric": config.metric.value,
        "period": config.period.value,
        "after": EFFECTIVE_AFTER,
    }


def tier_params(merchant_id: str, version: int, config: TierConfig) -> list[dict[str, Any]]:
    """The version's `vip_tiers` rows, lowest threshold first."""
    return [
        {
            "merchant": merchant_id,
            "version": version,
            "position": position,
            "tier_id": tier_id(merchant_id, item["name"]),
            "config": json.dumps(item),
        }
        for position, item in enumerate(config.document()["tiers"])
    ]


def load_versions(
    conn: psycopg.Connection[Any], merchant_id: str | None = None
) -> tuple[datetime, Histories]:
    """Every version (of one merchant, or all), and the database's time before reading."""
    with conn.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        row = cur.fetchone()
        assert row is not None
        loaded_at: datetime = row[0]
        if merchant_id is None:
            cur.execute(VERSIONS.format(where=""))
        else:
            where = "WHERE p.merchant_id = %(merchant)s"
            cur.execute(VERSIONS.format(where=where), {"merchant": merchant_id})
        histories: Histories = {}
        for merchant, version, metric, period, effective_at, tiers in cur.fetchall():
            config = parse_tiers({"metric": metric, "period": period, "tiers": tiers})
            histories.setdefault(merchant, []).append(TierVersion(version, effective_at, config))
    conn.commit()
    return loaded_at, histories


def in_force(versions: list[TierVersion], at: datetime) -> TierVersion | None:
    """The version in force at `at`: the latest that took effect at or before it."""
    i = bisect_right([v.effective_at for v in versions], at)
    return versions[i - 1] if i else None


class TierHistory:
    """Every merchant's versions, loaded again only when asked about a time past what the
    last load can vouch for (and at most once a second)."""

    def __init__(
        self,
        load: Callable[[], tuple[datetime, Histories]],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._monotonic = monotonic
        self._histories: Histories = {}
        self._trusted_until: datetime | None = None
        self._loaded_at = float("-inf")

    def config_at(self, merchant_id: str, at: datetime) -> TierConfig | None:
        if self._trusted_until is None or at >= self._trusted_until:
            self._reload()
        version = in_force(self._histories.get(merchant_id, []), at)
        return None if version is None else version.config

    def _reload(self) -> None:
        now = self._monotonic()
        if self._trusted_until is not None and now - self._loaded_at < MIN_RELOAD_SECONDS:
            return
        loaded_at, self._histories = self._load()
        self._trusted_until = loaded_at + TRUSTED_FOR
        self._loaded_at = now


def postgres_history(url: str) -> TierHistory:
    """A TierHistory that reads the database at `url` (one connection, kept open)."""
    conn: list[psycopg.Connection[Any]] = []

    def load() -> tuple[datetime, Histories]:
        if not conn or conn[0].closed:
            conn[:] = [psycopg.connect(url)]
        try:
            return load_versions(conn[0])
        except psycopg.OperationalError:
            conn[0].close()
            raise

    return TierHistory(load)
