"""flows.common.keyed_state: stateful_map's behaviour with one slotted object per key holding
its state encoded, all or nothing per record, snapshots as those bytes, and resuming from them."""

from __future__ import annotations

import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from connectors.kafka import CORRELATION_HEADER, SourceMessage
from flows.common import (
    KEEP,
    Keep,
    Rejected,
    StateCodec,
    _KeyedState,
    _Rules,
    guarded_decode,
    guarded_state,
)
from flows.common import keyed_state as keyed_state_op
from loyalnest.logs import current_correlation
from loyalty.errors import InvalidEventError

# A state of a few fields, kept as a row: (total, values seen).
Total = list[int]
TOTALS: StateCodec[Total] = StateCodec(lambda state: (1, *state), lambda row: list(row[1:]))  # type: ignore[index]


def running_total(state: Total | None, value: int) -> tuple[Total | Keep | None, tuple[int, Any]]:
    """Adds values; a 0 forgets the key (state None); a negative value changes the state it
    was given and then refuses the record (KEEP), which must leave the state as it was."""
    if value < 0:
        if state is not None:
            state[0] += 1_000  # on its own copy: must not be seen again
        return KEEP, (value, "refused")
    if value == 0:
        return None, (value, None)
    state = state or [0, 0]
    state[0] += value
    state[1] += 1
    return state, (value, state[0])


def run(values: list[tuple[str, int]], out: list[object], recovery: Path | None = None) -> None:
    flow = Dataflow("keyed")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(values)), lambda kv: kv[0])
    summed = keyed_state_op(
        "sum", op.map_value("v", keyed, lambda kv: kv[1]), running_total, TOTALS
    )
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


def test_a_refused_record_leaves_the_state_as_it_was_before_it() -> None:
    logic = _KeyedState(_Rules(running_total, TOTALS), TOTALS.encode([3, 1]))

    emitted, discard = logic.on_batch([4, -1, 5])

    # The -1 changed its copy by 1,000, then was refused: the 5 adds to 7, not to 1,007.
    assert (emitted, discard) == ([(4, 7), (-1, "refused"), (5, 12)], False)
    assert TOTALS.decode(logic.snapshot()) == [12, 3]


def test_a_refused_first_record_of_a_new_key_keeps_nothing() -> None:
    logic = _KeyedState(_Rules(running_total, TOTALS), None)

    assert logic.on_batch([-1]) == ([(-1, "refused")], True)


def test_a_key_is_one_slotted_object_holding_its_encoded_state_which_is_its_snapshot() -> None:
    logic = _KeyedState(_Rules(running_total, TOTALS), None)

    logic.on_batch([4, 5])

    assert pickle.loads(logic.snapshot()) == (1, 9, 2)  # noqa: S301 - our own bytes
    assert logic.__dict__ == {}  # everything in its slots


def test_it_resumes_from_its_own_snapshots(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    first: list[object] = []
    run([("a", 1), ("a", 2)], first, tmp_path)
    resumed: list[object] = []

    run([("a", 1), ("a", 2), ("a", 4)], resumed, tmp_path)

    # The testing source resumes after the items it had given: only the 4 is new.
    assert resumed == [("a", (4, 7))]


MESSAGE: SourceMessage = KafkaSourceMessage(
    key=None, value=b"x", topic="t", headers=[], partition=0, offset=7
)


def test_a_guarded_step_rejects_a_failing_record_and_keeps_the_state() -> None:
    def apply(state: Total | None, value: int) -> tuple[Total | None, list[int]]:
        raise InvalidEventError(f"{value} is not welcome")

    step = guarded_state("s", apply, lambda _value: MESSAGE)

    state, outputs = step([1, 1], 3)

    assert state is KEEP
    assert outputs == [Rejected(MESSAGE, "3 is not welcome", "s")]


def test_a_guarded_step_passes_the_new_state_and_outputs_through() -> None:
    step = guarded_state("s", lambda state, value: ([value], [value, value]), lambda _v: MESSAGE)

    assert step(None, 3) == ([3], [3, 3])


CORRELATED: SourceMessage = KafkaSourceMessage(
    key=None, value=b"x", topic="t", headers=[(CORRELATION_HEADER, b"wh-5")], partition=0
)


def test_guarded_steps_make_the_records_correlation_id_current_while_they_handle_it() -> None:
    seen: list[str | None] = []

    def apply(state: Total | None, value: int) -> tuple[Total | None, list[int]]:
        seen.append(current_correlation())
        return state, []

    def decode(message: SourceMessage) -> int:
        seen.append(current_correlation())
        return 1

    guarded_state("s", apply, lambda _v: CORRELATED)(None, 1)
    guarded_decode("d", decode)(CORRELATED)
    guarded_state("s", apply, lambda _v: MESSAGE)(None, 1)

    assert seen == ["wh-5", "wh-5", None]
    assert current_correlation() is None  # and only then
