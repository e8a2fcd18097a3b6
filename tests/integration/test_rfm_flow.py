"""The RFM flow on the real stack: orders in, rescoring rounds, and every customer's scores and
the merchant's counts as a batch recomputation gives them, served by REST and gRPC."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from pymongo.database import Database

from connectors.store import RFM_CUSTOMERS
from loyalnest.harness.deployment import Deployment, fresh_postgres
from loyalnest.harness.processes import ApiProcess, FlowProcess
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_ANALYTICS
from loyalnest_grpc.core.v1 import core_pb2, core_pb2_grpc
from loyalnest_grpc.rfm.v1 import rfm_pb2, rfm_pb2_grpc
from loyalty.rfm import Segment, Values
from tests.integration.rfm_harness import (
    AS_OF,
    LAST_DAY,
    SHOP,
    assert_as_batch,
    converge,
    expected_scores,
    produce_hooks,
    shopping,
    total,
    wait_for,
)

pytestmark = pytest.mark.integration
SHOPPER = Shop(SHOP, "unused-webhook-secret", Decimal(1))


def test_scores_and_counts_converge_to_a_batch_recomputation(
    settings: Settings, rfm_env: Deployment, rfm_db: Database[Any], tmp_path: Path
) -> None:
    bought = shopping(random.Random(9), orders=400, customers=80, days=420, last=LAST_DAY)
    values = bought.values(AS_OF)
    produce_hooks(settings, rfm_env, bought.hooks)
    with fresh_postgres(settings, "rfm") as core_url:
        add_merchants(core_url, SHOPPER)
        flow = FlowProcess(rfm_env, tmp_path / "rfm.log", flow="rfm")
        customers = FlowProcess(
            rfm_env,
            tmp_path / "customers.log",
            flow="customers",
            recovery=tmp_path / "customers-recovery",
            POSTGRES_URL=core_url,
        )
        try:
            wait_for(lambda: total(rfm_db) == len(values), flow, "the merchant's picture")
            converge(settings, rfm_env, rfm_db, flow, AS_OF)
            counts = assert_as_batch(rfm_db, values, AS_OF)
            scores, _ = expected_scores(values)
            wait_for(lambda: core_scores(core_url) == scores, customers, "Core's rfm_score")
        finally:
            flow.stop()
            customers.stop()
        served_by_the_api(rfm_env, core_url, tmp_path, values, counts)


def core_scores(core_url: str) -> dict[int, tuple[int, int, int, str] | None]:
    """Each customer's (r, f, m, segment) in Core's customers.rfm_score (None: a prospect)."""
    with psycopg.connect(core_url) as conn:
        rows = conn.execute("SELECT shopify_customer_id, rfm_score FROM customers").fetchall()
    return {
        customer: None if s["segment"] == "prospects" else (s["r"], s["f"], s["m"], s["segment"])
        for customer, s in rows
    }


def served_by_the_api(
    rfm_env: Deployment,
    postgres_url: str,
    tmp_path: Path,
    values: dict[int, Values],
    counts: dict[str, int],
) -> None:
    """REST and gRPC give the same counts, and each customer's stored values and scores."""
    headers = {"Authorization": f"Bearer {SHOPPER.token(SCOPE_ANALYTICS)}"}
    metadata = (("authorization", f"Bearer {SHOPPER.token(SCOPE_ANALYTICS)}"),)
    api = ApiProcess(rfm_env, postgres_url, tmp_path / "api.log")
    try:
        api.wait_healthy()
        with httpx.Client(base_url=api.url) as http:
            body = http.get("/v1/segments", headers=headers).json()
            assert body["segments"] == {s.value: counts.get(s.value, 0) for s in Segment}
            assert (body["total"], body["as_of"]) == (len(values), LAST_DAY.isoformat())
            for customer, v in values.items():
                rfm = http.get(f"/v1/customers/{customer}/rfm", headers=headers).json()
                assert (rfm["frequency"], Decimal(rfm["monetary"])) == (v.frequency, v.monetary)
                assert rfm["recency_days"] == v.recency_days(AS_OF)
        with grpc.insecure_channel(api.grpc_target) as channel:
            stub = rfm_pb2_grpc.RFMServiceStub(channel)  # type: ignore[no-untyped-call]
            answer = stub.GetSegmentCounts(rfm_pb2.GetSegmentCountsRequest(), metadata=metadata)
            assert dict(answer.segments) == body["segments"]
            core = core_pb2_grpc.CoreServiceStub(channel)  # type: ignore[no-untyped-call]
            customer = next(iter(values))
            one = core.GetCustomerRFM(
                core_pb2.GetCustomerRFMRequest(customer_id=str(customer)), metadata=metadata
            )
            assert one.frequency == values[customer].frequency
    finally:
        api.stop()


def test_20000_orders_over_400_days_stay_exact_day_after_day(
    settings: Settings, rfm_env: Deployment, rfm_db: Database[Any], tmp_path: Path
) -> None:
    bought = shopping(random.Random(20), orders=20_000, customers=3_000, days=430, last=LAST_DAY)
    produce_hooks(settings, rfm_env, bought.hooks)
    flow = FlowProcess(rfm_env, tmp_path / "rfm.log", flow="rfm")
    try:
        known = len(bought.values(AS_OF))
        wait_for(lambda: total(rfm_db) == known, flow, "every customer in the picture")
        # The stream, then day boundaries: a day, a week, a month, a quarter later.
        for as_of in (AS_OF, AS_OF + 1, AS_OF + 7, AS_OF + 30, AS_OF + 90):
            converge(settings, rfm_env, rfm_db, flow, as_of)
            assert_as_batch(rfm_db, bought.values(as_of), as_of)
        assert rfm_db[RFM_CUSTOMERS].count_documents({}) == known
    finally:
        flow.stop()
