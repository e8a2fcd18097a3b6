"""`make bench`: run the benchmarks, print a table, write JSON under bench/results/."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import pipeline, sink
from loyalnest.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--only", choices=["sink", "pipeline"], action="append")
    args = parser.parse_args(argv)
    settings = Settings()
    runs: dict[str, Callable[[], dict[str, float]]] = {
        "mongo_sink": lambda: sink.measure(settings, args.docs),
        "pipeline": lambda: pipeline.measure(settings, args.orders),
    }
    chosen = {"sink": "mongo_sink", "pipeline": "pipeline"}
    results = {
        name: run()
        for name, run in runs.items()
        if not args.only or name in {chosen[o] for o in args.only}
    }
    print(f"\n{'benchmark':<14}{'metric':<28}{'value':>12}")
    for name, metrics in results.items():
        for metric, value in metrics.items():
            print(f"{name:<14}{metric:<28}{value:>12,.2f}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "at": stamp,
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "docs": args.docs,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
