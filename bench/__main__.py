"""`make bench`: run the benchmarks, print a table, write JSON under bench/results/."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import sink
from loyalnest.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--docs", type=int, default=20_000)
    args = parser.parse_args(argv)
    settings = Settings()
    results = {"mongo_sink": sink.measure(settings, args.docs)}
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
