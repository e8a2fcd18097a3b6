"""Shop probe: does a badly signed 1 MB webhook cost the same for a registered shop as for an
unknown one? If not, timing the 401 tells anyone which shops use the app.

One keep-alive connection sends, after a warm-up, alternately a webhook for a registered shop
and one for a valid-form unknown shop, each signed with a secret neither has (so every reply
must be 401). Alternating puts both through the same moments of load; the figure is the ratio
of their median latencies, which should be 1 (target: within 10 %).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Sequence
from decimal import Decimal

from bench.http import Connection, Reply, build_request, percentile
from bench.report import Targets, at_most
from bench.stackenv import bench_shops, running_api
from connectors.shopify import encode_body
from loyalnest.harness.shops import Shop
from loyalnest.settings import Settings

WEBHOOK_PATH = "/webhooks/shopify"
BODY_BYTES = 1_000_000
TARGETS: Targets = {"median_ratio_deviation": at_most(0.10)}


def probe_body() -> bytes:
    """An orders/create body of about BODY_BYTES (well within the 1 MiB limit)."""
    body = {"id": 1, "subtotal_price": "10.00", "customer": {"id": 1}, "note": ""}
    body["note"] = "x" * (BODY_BYTES - len(encode_body(body)))
    return encode_body(body)


def badly_signed(shop: Shop, body: bytes) -> bytes:
    wrong = secrets.token_urlsafe(16)  # made up here: no shop has it
    headers = shop.webhook_headers("orders/create", body, secret=wrong)
    return build_request("POST", WEBHOOK_PATH, headers, body)


async def alternate(port: int, first: bytes, second: bytes, rounds: int) -> list[list[Reply]]:
    """`rounds` times the first request then the second, on one connection."""
    connection = await Connection.open(port)
    replies: list[list[Reply]] = [[], []]
    try:
        for _ in range(rounds):
            for side, request in enumerate((first, second)):
                replies[side].append(await connection.exchange(request))
    finally:
        await connection.close()
    return replies


def require_401(what: str, replies: Sequence[Reply]) -> None:
    wrong = [r.status for r in replies if r.status != 401]
    if wrong:
        raise RuntimeError(f"{what}: {len(wrong)} replies were not 401: {sorted(set(wrong))}")


def figures(name: str, replies: Sequence[Reply]) -> dict[str, float]:
    latencies = sorted(r.latency for r in replies)
    return {
        f"{name}_p50_ms": percentile(latencies, 0.50) * 1000,
        f"{name}_p90_ms": percentile(latencies, 0.90) * 1000,
    }


def measure(settings: Settings, rounds: int, warmup: int) -> dict[str, float]:
    registered = bench_shops(1)[0]
    unknown = Shop(f"unknown-{uuid.uuid4().hex[:8]}.myshopify.com", "unused", Decimal(1))
    body = probe_body()
    known_request, unknown_request = badly_signed(registered, body), badly_signed(unknown, body)
    with running_api(settings, [registered]) as running:
        port = running.api.http_port
        warm = asyncio.run(alternate(port, known_request, unknown_request, warmup))
        require_401("probe warm-up", warm[0] + warm[1])
        known, stranger = asyncio.run(alternate(port, known_request, unknown_request, rounds))
    require_401("registered shop", known)
    require_401("unknown shop", stranger)
    result = {**figures("registered", known), **figures("unknown", stranger)}
    ratio = result["registered_p50_ms"] / result["unknown_p50_ms"]
    return {
        **result,
        "median_ratio": ratio,
        "median_ratio_deviation": abs(ratio - 1),
        "p90_ratio": result["registered_p90_ms"] / result["unknown_p90_ms"],
        "requests_each": rounds,
        "body_bytes": len(body),
    }
