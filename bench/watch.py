"""Watch a pipeline benchmark's points flow from outside: `python -m bench.watch ORDERS`.

For side-by-side runs with code whose benchmark does not report these figures (an older
commit): start this, then that commit's `python -m bench --only pipeline`. It finds the flow
by its dataflow API port (3130, the pipeline benchmark's), and prints the rate with start-up,
the steady rate (first to last balance written) and the CPU seconds per 1,000 orders of the
flow and of the store, read from /proc and the flow's /metrics as `bench.pipeline` reads them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx

from bench.kit import metrics_text
from bench.proc import cpu_seconds, store_pid
from loyalnest.settings import Settings

PORT = 3130
WRITTEN = 'loyalnest_mongo_sink_writes_total{collection="point_balances",outcome="applied"}'


def flow_pid(port: int) -> int | None:
    marker = f"={port}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv, environ = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"bytewax.run" in argv and marker in environ:
            return int(proc.name)
    return None


def written(port: int) -> float | None:
    """Balances written so far; None while the flow's API does not answer yet."""
    try:
        text = metrics_text(port, timeout=2)
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == WRITTEN:
            return float(value)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.watch")
    parser.add_argument("orders", type=int)
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args()
    store = store_pid(Settings())
    if store is None:
        raise SystemExit("no local store to watch (.data/run/mongo.pid)")
    while (pid := flow_pid(args.port)) is None:
        time.sleep(0.05)
    while written(args.port) is None:  # counted from here, as bench.pipeline counts
        time.sleep(0.05)
    started, flow_cpu, store_cpu = time.perf_counter(), cpu_seconds(pid), cpu_seconds(store)
    first: float | None = None
    while (count := written(args.port) or 0.0) < args.orders:
        if count > 0 and first is None:
            first = time.perf_counter()
        time.sleep(0.25)
    last = time.perf_counter()
    per_1k = 1000 / args.orders
    print(
        f"orders/s {args.orders / (last - started):,.0f}, "
        f"steady {args.orders / (last - (first or started)):,.0f}, "
        f"flow CPU-s per 1,000 {(cpu_seconds(pid) - flow_cpu) * per_1k:.2f}, "
        f"store {(cpu_seconds(store) - store_cpu) * per_1k:.2f}"
    )


if __name__ == "__main__":
    main()
