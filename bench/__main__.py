"""`make bench`: run the benchmarks, print a table, write JSON under bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from bench import (
    balance,
    clock,
    dlq,
    e2e,
    ingest,
    pipeline,
    probe,
    referral_api,
    referral_flow,
    rfm_ageing,
    rfm_api,
    rfm_flow,
    scaling,
    sink,
    state,
    sweep,
    tiers,
)
from bench.report import Targets
from loyalnest.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
# --only choice -> the name its figures are reported under
BENCHMARKS = {
    "sink": "mongo_sink",
    "pipeline": "pipeline",
    "ingest": "webhook_ingest",
    "balance": "balance_api",
    "e2e": "end_to_end",
    "probe": "shop_probe",
    "clock": "clock",
    "state": "customer_state",
    "sweep": "expiry_sweep",
    "rfm": "rfm_flow",
    "rfm-ageing": "rfm_ageing",
    "rfm-api": "rfm_api",
    "referrals": "referral_flow",
    "referral-api": "referral_api",
    "tiers": "vip_tiers",
    "dlq": "dlq_replay",
    "scaling": "scale_out",
}
TARGETS: dict[str, Targets] = {
    "pipeline": pipeline.TARGETS,
    "webhook_ingest": ingest.TARGETS,
    "balance_api": balance.TARGETS,
    "end_to_end": e2e.TARGETS,
    "shop_probe": probe.TARGETS,
    "clock": clock.TARGETS,
    "customer_state": state.TARGETS,
    "dlq_replay": dlq.TARGETS,
    "expiry_sweep": sweep.TARGETS,
    "rfm_flow": rfm_flow.TARGETS,
    "rfm_ageing": rfm_ageing.TARGETS,
    "rfm_api": rfm_api.TARGETS,
    "referral_flow": referral_flow.TARGETS,
    "referral_api": referral_api.TARGETS,
    "vip_tiers": tiers.TARGETS,
    "scale_out": scaling.TARGETS,
}


def count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def amount(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", choices=list(BENCHMARKS), action="append")
    parser.add_argument("--docs", type=count, default=20_000, help="sink: documents")
    parser.add_argument("--orders", type=count, default=100_000, help="pipeline: orders")
    parser.add_argument("--ingest-requests", type=count, default=20_000)
    parser.add_argument("--ingest-connections", type=count, default=32)
    parser.add_argument(
        "--ingest-shops", type=count, default=100, help="load spread over this many shops"
    )
    parser.add_argument("--balance-hits", type=count, default=20_000)
    parser.add_argument("--balance-misses", type=count, default=5_000)
    parser.add_argument("--balance-connections", type=count, default=32)
    parser.add_argument("--e2e-seconds", type=amount, default=30)
    parser.add_argument("--e2e-rate", type=amount, default=300, help="orders per second")
    parser.add_argument("--e2e-sample-every", type=count, default=10, help="poll every n-th")
    parser.add_argument("--e2e-poll-ms", type=amount, default=20)
    parser.add_argument("--e2e-shops", type=count, default=20, help="orders spread over them")
    parser.add_argument("--probe-rounds", type=count, default=500, help="requests per shop")
    parser.add_argument("--probe-warmup", type=count, default=50, help="rounds before timing")
    parser.add_argument("--clock-customers", type=count, default=100_000, help="due customers")
    parser.add_argument(
        "--sweep-customers", type=count, default=100_000, help="customers expiring on one tick"
    )
    parser.add_argument(
        "--state-orders", type=count, default=10_000, help="state: orders of the one customer"
    )
    parser.add_argument(
        "--state-refunds", type=count, default=2_000, help="state: refunds, no more than orders"
    )
    parser.add_argument("--rfm-orders", type=count, default=100_000, help="rfm: orders")
    parser.add_argument(
        "--rfm-flow-customers",
        type=count,
        help="rfm: their customers, at most --rfm-orders (default: one order each)",
    )
    parser.add_argument(
        "--rfm-alone", action="store_true", help="rfm: without the points flow alongside"
    )
    parser.add_argument(
        "--rfm-customers", type=count, default=100_000, help="rfm-ageing: customers of one merchant"
    )
    parser.add_argument(
        "--rfm-small-customers",
        type=count,
        default=10_000,
        help="rfm-ageing: the same scenario's smaller size, for the snapshot ratios",
    )
    parser.add_argument(
        "--rfm-orders-per-customer", type=amount, default=2.0, help="rfm-ageing: at least 1"
    )
    parser.add_argument(
        "--rfm-api-customers", type=count, default=10_000, help="rfm-api: customer documents"
    )
    parser.add_argument(
        "--rfm-api-requests", type=count, default=20_000, help="rfm-api: requests of each call"
    )
    parser.add_argument("--rfm-api-connections", type=count, default=32)
    parser.add_argument(
        "--referral-orders", type=count, default=100_000, help="referrals: orders, 7%% referred"
    )
    parser.add_argument(
        "--referral-api-advocates", type=count, default=10_000, help="referral-api: new codes"
    )
    parser.add_argument(
        "--referral-api-referrals", type=count, default=10_000, help="referral-api: half cached"
    )
    parser.add_argument(
        "--referral-api-requests",
        type=count,
        default=20_000,
        help="referral-api: requests of each call after the codes' creation",
    )
    parser.add_argument("--referral-api-connections", type=count, default=32)
    parser.add_argument("--tier-orders", type=count, default=100_000, help="tiers: orders")
    parser.add_argument(
        "--tier-customers", type=count, default=100_000, help="tiers: stored customers"
    )
    parser.add_argument(
        "--tier-requests", type=count, default=20_000, help="tiers: tier reads of each run"
    )
    parser.add_argument(
        "--dlq-letters", type=count, default=100_000, help="dlq: dead letters to re-drive"
    )
    parser.add_argument(
        "--scale-orders", type=count, default=60_000, help="scaling: orders for each cluster size"
    )
    args = parser.parse_args(argv)
    if args.rfm_orders_per_customer < 1:
        parser.error("--rfm-orders-per-customer must be at least 1")
    if args.rfm_flow_customers is None:
        args.rfm_flow_customers = args.rfm_orders
    if args.rfm_flow_customers > args.rfm_orders:
        parser.error("--rfm-flow-customers must not exceed --rfm-orders")
    if args.state_refunds > args.state_orders:
        parser.error("--state-refunds must not exceed --state-orders")
    return args


def runs(args: argparse.Namespace, settings: Settings) -> dict[str, Callable[[], dict[str, float]]]:
    return {
        "mongo_sink": lambda: sink.measure(settings, args.docs),
        "pipeline": lambda: pipeline.measure(settings, args.orders),
        "webhook_ingest": lambda: ingest.measure(
            settings, args.ingest_requests, args.ingest_connections, args.ingest_shops
        ),
        "balance_api": lambda: balance.measure(
            settings, args.balance_hits, args.balance_misses, args.balance_connections
        ),
        "end_to_end": lambda: e2e.measure(
            settings,
            args.e2e_seconds,
            args.e2e_rate,
            args.e2e_sample_every,
            args.e2e_poll_ms / 1000,
            args.e2e_shops,
        ),
        "shop_probe": lambda: probe.measure(settings, args.probe_rounds, args.probe_warmup),
        "clock": lambda: clock.measure(settings, args.clock_customers),
        "customer_state": lambda: state.measure(args.state_orders, args.state_refunds),
        "expiry_sweep": lambda: sweep.measure(settings, args.sweep_customers),
        "rfm_flow": lambda: rfm_flow.measure(
            settings, args.rfm_orders, args.rfm_flow_customers, not args.rfm_alone
        ),
        "rfm_ageing": lambda: rfm_ageing.measure(
            settings, args.rfm_customers, args.rfm_small_customers, args.rfm_orders_per_customer
        ),
        "rfm_api": lambda: rfm_api.measure(
            settings, args.rfm_api_customers, args.rfm_api_requests, args.rfm_api_connections
        ),
        "referral_flow": lambda: referral_flow.measure(settings, args.referral_orders),
        "referral_api": lambda: referral_api.measure(
            settings,
            args.referral_api_advocates,
            args.referral_api_referrals,
            args.referral_api_requests,
            args.referral_api_connections,
        ),
        "vip_tiers": lambda: tiers.measure(
            settings, args.tier_orders, args.tier_customers, args.tier_requests
        ),
        "dlq_replay": lambda: dlq.measure(settings, args.dlq_letters),
        "scale_out": lambda: scaling.measure(settings, args.scale_orders),
    }


def print_table(results: dict[str, dict[str, float]]) -> list[str]:
    """The figures, each next to its target if it has one; returns the targets missed."""
    missed = []
    print(f"\n{'benchmark':<16}{'metric':<32}{'value':>14}  {'target':<10}")
    for name, metrics in results.items():
        for metric, value in metrics.items():
            target = TARGETS.get(name, {}).get(metric)
            verdict = ""
            if target is not None:
                verdict = f"{target!s:<10}{'met' if target.met(value) else 'MISSED'}"
                if not target.met(value):
                    missed.append(f"{name}.{metric} = {value:,.2f} (target {target})")
            print(f"{name:<16}{metric:<32}{value:>14,.2f}  {verdict}")
    return missed


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # The load generators share the machine with what they measure: uvloop spends less CPU
    # per request than asyncio's own loop, leaving more to the API.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    settings = Settings()
    chosen = {BENCHMARKS[o] for o in args.only} if args.only else set(BENCHMARKS.values())
    results = {name: run() for name, run in runs(args, settings).items() if name in chosen}
    missed = print_table(results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "at": stamp,
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "args": vars(args),
                "results": results,
                "targets": {
                    name: {metric: str(t) for metric, t in TARGETS[name].items()}
                    for name in results
                    if name in TARGETS
                },
                "missed": missed,
            },
            indent=2,
        )
    )
    print(f"\nwritten {out}")
    if missed:
        print("targets missed:\n  " + "\n  ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
