"""bench/state.py, small: the run adds up, every figure is measured, and a run that does not add
up (or a command the customer stage refuses) fails it, so the benchmark stays honest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bench import state
from bench.__main__ import BENCHMARKS, TARGETS, parse
from loyalty.commands import customer_key, encode_change
from loyalty.ledger import Kind, PointsChange, Source


def test_a_small_run_adds_up_and_measures_both_stages() -> None:
    figures = state.measure(200, 40)

    assert (figures["orders"], figures["refunds"]) == (200, 40)
    for name in state.TERMS:
        for metric in (
            "customer_state_bytes",
            "customer_memory_bytes",
            "customer_state_mib",
            "recent_ids",
            "order_states_bytes",
            "order_memory_bytes",
            "order_states_mib",
        ):
            assert figures[f"{name}_{metric}"] > 0, f"{name}_{metric}"
        assert state.TARGETS[f"{name}_customer_state_mib"].met(
            figures[f"{name}_customer_state_mib"]
        )
    # Pending points and dated lots are held only under the terms that have them.
    assert figures["lot_lots"] > 0
    assert figures["lot_held"] > 0
    assert figures["default_lots"] == figures["default_held"] == 0


def test_the_webhooks_are_in_time_order_with_every_refund_after_its_order() -> None:
    hooks = state.webhooks(200, 40)

    assert [h.at for h in hooks] == sorted(h.at for h in hooks)
    orders = {h.body["id"]: h for h in hooks if h.topic == "orders/create"}
    refunds = [h for h in hooks if h.topic == "refunds/create"]
    assert (len(orders), len(refunds)) == (200, 40)
    assert all(orders[r.body["order_id"]].at < r.at for r in refunds)
    with pytest.raises(ValueError, match="refunds"):
        state.webhooks(10, 11)


def test_a_run_that_does_not_add_up_fails() -> None:
    run = state.play(state.webhooks(50, 10), state.TERMS["lot"])
    state.check(run, 50, 10)

    with pytest.raises(RuntimeError, match="expected"):
        state.check(run, 50, 11)  # a refund that was not applied
    run.entries.pop()  # a ledger entry lost
    with pytest.raises(RuntimeError):
        state.check(run, 50, 10)


def test_a_command_the_customer_stage_refuses_fails_the_run() -> None:
    run = state.play(state.webhooks(50, 10), state.TERMS["default"])
    assert run.customer is not None
    assert run.customer.clock is not None
    too_old = run.customer.clock - timedelta(days=40)  # before the duplicate window
    change = PointsChange(
        shop=state.SHOP,
        customer=state.CUSTOMER,
        source=Source.ORDER,
        source_id="1",
        kind=Kind.EARN,
        points=10,
        text_key="points.earned.order",
        locale="en",
        at=too_old,
        order_id=1,
        key="earn",
    )
    key = customer_key(state.MERCHANT_ID, state.CUSTOMER)

    with pytest.raises(RuntimeError, match=r"customer-state.*window"):
        run.command(key, encode_change(change), too_old)


def test_the_benchmark_is_wired_with_its_counts() -> None:
    args = parse(["--only", "state", "--state-orders", "300", "--state-refunds", "30"])

    assert BENCHMARKS["state"] == "customer_state"
    assert TARGETS["customer_state"] is state.TARGETS
    assert (args.state_orders, args.state_refunds) == (300, 30)
    with pytest.raises(SystemExit):
        parse(["--state-orders", "10", "--state-refunds", "11"])
