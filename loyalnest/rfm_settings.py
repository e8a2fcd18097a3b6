"""`loyalnest rfm thresholds`: a merchant's RFM cut points, or back to quintiles.

The thresholds are stored in PostgreSQL (`program_settings.rfm_thresholds`, the seed's column)
and sent to the RFM flow as an `rfm.settings` record on `rfm.commands`: the flow applies them
from that record on (the next picture scores everyone by them; the rescoring rounds then
announce whoever's scores changed). History is never rescored in place.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any

import psycopg
from confluent_kafka import Producer

from loyalnest.settings import Settings
from loyalnest.topics import RFM_COMMANDS
from loyalty import ids
from loyalty.errors import InvalidEventError
from loyalty.rfm import Thresholds
from loyalty.rfm_commands import Settings as RfmSettings
from loyalty.rfm_commands import encode, thresholds_json

STORE = """
INSERT INTO program_settings (merchant_id, rfm_thresholds)
SELECT id, %(thresholds)s::jsonb FROM merchants WHERE shop_domain = %(shop)s
ON CONFLICT (merchant_id) DO UPDATE SET
    rfm_thresholds = EXCLUDED.rfm_thresholds, updated_at = now()
RETURNING merchant_id::text
"""


def four(kind: type[int] | type[Decimal], name: str) -> Any:
    """An argparse type: four comma-separated cut points (ints or decimal amounts)."""

    def parse(text: str) -> tuple[Any, ...]:
        parts = text.split(",")
        if len(parts) != 4 or not all(p.strip() for p in parts):
            raise argparse.ArgumentTypeError(
                f"{name}: four comma-separated cut points, e.g. 1,2,3,4"
            )
        try:
            return tuple(kind(p.strip()) for p in parts)
        except (ValueError, ArithmeticError) as exc:
            raise argparse.ArgumentTypeError(f"{name}: {text[:60]!r} is not four numbers") from exc

    parse.__name__ = name
    return parse


def thresholds_of(args: argparse.Namespace) -> Thresholds | None:
    """The thresholds the arguments give (None for --clear); a clear error otherwise."""
    given = (args.recency_days, args.frequency, args.monetary)
    if args.clear:
        if any(g is not None for g in given):
            raise InvalidEventError("--clear takes no cut points")
        return None
    if any(g is None for g in given):
        raise InvalidEventError("give --recency-days, --frequency and --monetary, or --clear")
    try:
        return Thresholds(args.recency_days, args.frequency, args.monetary)
    except ValueError as exc:
        raise InvalidEventError(str(exc)) from exc


def set_thresholds(
    settings: Settings, shop: str, thresholds: Thresholds | None
) -> dict[str, object]:
    """Store the thresholds and tell the RFM flow; raise LookupError for an unknown shop."""
    shop = ids.normalize_shop(shop)
    stored = None if thresholds is None else json.dumps(thresholds_json(thresholds))
    with psycopg.connect(settings.postgres_url) as conn:
        row = conn.execute(STORE, {"thresholds": stored, "shop": shop}).fetchone()
        if row is None:
            raise LookupError(f"no merchant {shop}: add it with `loyalnest merchants add` first")
        merchant_id = str(row[0])
        record = encode(RfmSettings(merchant_id, thresholds))
        producer = Producer(
            {"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True}
        )
        producer.produce(settings.topic(RFM_COMMANDS), key=merchant_id.encode(), value=record)
        if producer.flush(30):
            raise RuntimeError(
                "the broker did not acknowledge the rfm.settings record; nothing stored"
            )
        conn.commit()  # stored only once the flow has been told
    return {
        "merchant_id": merchant_id,
        "shop": shop,
        "rfm_thresholds": None if thresholds is None else thresholds_json(thresholds),
    }
