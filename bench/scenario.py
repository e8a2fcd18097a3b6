"""A realistic, seeded stream of order webhooks and redemptions, for tests and load.

Orders arrive as Shopify sends them: `orders/create` (paid, or pending then `orders/paid`),
sometimes `orders/updated`, partial and full refunds, cancellations, guest and test orders,
and duplicate deliveries (the same bytes again).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from loyalnest.samples import CENTS, Webhook, order_body


@dataclass(frozen=True)
class ScenarioConfig:
    shop: str = "scenario.myshopify.com"
    orders: int = 5_000
    customers: int = 200
    duplicate_rate: float = 0.2
    pending_rate: float = 0.3
    update_rate: float = 0.2
    refund_rate: float = 0.15
    cancel_rate: float = 0.05
    guest_rate: float = 0.03
    test_rate: float = 0.01
    redemptions: int = 400
    seed: int = 42
    first_order_id: int = 7_000_000


@dataclass
class Scenario:
    webhooks: list[Webhook] = field(default_factory=list)
    redemptions: list[tuple[int, int, str]] = field(default_factory=list)  # customer, points, key


def _webhook(rng: random.Random, shop: str, topic: str, body: dict[str, Any]) -> Webhook:
    return Webhook(shop, topic, str(uuid.UUID(int=rng.getrandbits(128), version=4)), body)


def _refund(
    rng: random.Random, order: dict[str, Any], refund_id: int, *, full: bool
) -> dict[str, Any]:
    subtotal = Decimal(order["subtotal_price"])
    amount = subtotal if full else (subtotal * Decimal(rng.randint(10, 60)) / 100).quantize(CENTS)
    return {
        "id": refund_id,
        "order_id": order["id"],
        "created_at": order["created_at"],
        "refund_line_items": [
            {
                "line_item_id": order["id"] * 10,
                "quantity": 1,
                "subtotal": str(amount),
                "total_tax": "0.00",
            }
        ],
        "transactions": [{"kind": "refund", "amount": str(amount)}],
    }


def _order_events(
    rng: random.Random, cfg: ScenarioConfig, n: int, start: datetime
) -> Iterator[Webhook]:
    order_id = cfg.first_order_id + n
    guest = rng.random() < cfg.guest_rate
    customer = None if guest else 1_000 + rng.randrange(cfg.customers)
    created = start + timedelta(seconds=37 * n)
    pending = rng.random() < cfg.pending_rate
    body = order_body(rng, order_id, customer, created, paid=not pending)
    body["taxes_included"] = rng.random() < 0.3
    body["test"] = rng.random() < cfg.test_rate
    yield _webhook(rng, cfg.shop, "orders/create", body)
    paid = {**body, "financial_status": "paid"}
    if pending:
        yield _webhook(rng, cfg.shop, "orders/paid", paid)
    if rng.random() < cfg.update_rate:
        yield _webhook(rng, cfg.shop, "orders/updated", {**paid, "note": "gift"})
    if rng.random() < cfg.refund_rate:
        refund_id = order_id * 100
        full = rng.random() < 0.3
        yield _webhook(rng, cfg.shop, "refunds/create", _refund(rng, paid, refund_id, full=full))
        if not full and rng.random() < 0.4:
            yield _webhook(
                rng, cfg.shop, "refunds/create", _refund(rng, paid, refund_id + 1, full=False)
            )
    if rng.random() < cfg.cancel_rate:
        cancelled = {**paid, "cancelled_at": created.isoformat(), "financial_status": "refunded"}
        yield _webhook(rng, cfg.shop, "orders/cancelled", cancelled)


def build_scenario(cfg: ScenarioConfig) -> Scenario:
    rng = random.Random(cfg.seed)
    start = datetime(2026, 2, 1, tzinfo=UTC)
    scenario = Scenario()
    for n in range(cfg.orders):
        for webhook in _order_events(rng, cfg, n, start):
            scenario.webhooks.append(webhook)
            if rng.random() < cfg.duplicate_rate:
                scenario.webhooks.append(webhook)  # a redelivery: same id, same bytes
    for n in range(cfg.redemptions):
        customer = 1_000 + rng.randrange(cfg.customers)
        points = rng.choice([50, 100, 250, 500, 1_000, 5_000])
        scenario.redemptions.append((customer, points, f"redeem-{cfg.seed}-{n}"))
    return scenario
