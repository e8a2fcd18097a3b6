"""flows.common.keyed_state: stateful_map's behaviour, one slotted object per key, snapshots as
pickled bytes, and resuming from them."""

from __future__ import annotations

import pickle
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.common import _KeyedState, keyed_state


def running_total(state: int | None, value: int) -> tuple[int | None, tuple[int, int | None]]:
    """Adds values; a 0 forgets the key (state None), as a discarded state must."""
    total = None if value == 0 else (state or 0) + value
    return total, (value, total)


def run(values: list[tuple[str, int]], out: list[object], recovery: Path | None = None) -> None:
    flow = Dataflow("keyed")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(values)), lambda kv: kv[0])
    summed = keyed_state("sum", op.map_value("v", keyed, lambda kv: kv[1]), running_total)
    op.output("out", summed, TestingSink(out))
    # bytewax's stubs leave these unannotated
    config = RecoveryConfig(str(recovery)) if recovery is not None else None  # type: ignore[no-untyped-call]
    run_main(flow, epoch_interval=timedelta(seconds=0), recovery_config=config)  # type: ignore[no-untyped-call]


def test_it_keeps_a_state_per_key_and_forgets_a_key_whose_state_is_none() -> None:
    out: list[object] = []

    run([("a", 1), ("b", 10), ("a", 2), ("a", 0), ("a", 5)], out)

    assert out == [
        ("a", (1, 1)),
        ("b", (10, 10)),
        ("a", (2, 3)),
        ("a", (0, None)),
        ("a", (5, 5)),  # started again from nothing
    ]


def test_a_snapshot_is_the_pickled_state_and_a_key_is_one_slotted_object() -> None:
    logic = _KeyedState(running_total, 3)

    emitted, discard = logic.on_batch([4, 5])

    assert (emitted, discard) == ([(4, 7), (5, 12)], False)
    assert pickle.loads(logic.snapshot()) == 12  # noqa: S301 - our own bytes
    assert logic.__dict__ == {}  # everything in its slots


def test_it_resumes_from_its_own_snapshots(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    first: list[object] = []
    run([("a", 1), ("a", 2)], first, tmp_path)
    resumed: list[object] = []

    run([("a", 1), ("a", 2), ("a", 4)], resumed, tmp_path)

    # The testing source resumes after the items it had given: only the 4 is new.
    assert resumed == [("a", (4, 7))]
