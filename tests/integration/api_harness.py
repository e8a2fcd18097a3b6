"""The API (`python -m api`) as a real process next to the points flow, and talking to it.

`api_stack()` builds an isolated deployment on the shared local servers (prefixed topics with
their schemas, fresh MongoDB and PostgreSQL databases, a Redis key prefix), registers two
merchants, and starts the points flow and the API against it (`loyalnest.harness`).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from loyalnest.harness.deployment import Deployment, fresh_postgres, isolated_deployment
from loyalnest.harness.processes import ApiProcess, FlowProcess, free_port
from loyalnest.harness.shops import Shop, add_merchants
from loyalnest.settings import Settings
from loyalnest.topics import SHOPIFY_ORDERS
from tests.integration.points_harness import read_log

FLOW_TIMEOUT = 60.0
RATE_LIMIT = "1000"  # per second and shop: the tests send from two shops, fast

T = TypeVar("T")


@dataclass
class ApiStack:
    """An isolated deployment: stores, two merchants, the points flow and the API."""

    settings: Settings
    points: Deployment
    postgres_url: str
    shop_a: Shop
    shop_b: Shop
    flow: FlowProcess
    api: ApiProcess
    workdir: Path
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def flow_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.flow.api_port}/metrics"

    def next_id(self) -> int:
        """A number no other test of the module uses (customer, order and refund ids)."""
        return next(self._ids)

    def start_api(self, name: str, **overrides: str) -> ApiProcess:
        api = ApiProcess(
            self.points,
            self.postgres_url,
            self.workdir / f"{name}.log",
            **{"WEBHOOK_RATE_LIMIT": RATE_LIMIT, **overrides},
        )
        try:
            api.wait_healthy()
        except BaseException:
            api.stop()
            raise
        return api

    def wait_for(
        self, what: str, probe: Callable[[], T | None], timeout: float = FLOW_TIMEOUT
    ) -> T:
        """Poll `probe` until it returns something other than None; fail early if the flow or
        the API died meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result is not None:
                return result
            assert self.flow.alive(), f"flow exited waiting for {what}:\n{self.flow.log_tail()}"
            assert self.api.alive(), f"API exited waiting for {what}:\n{self.api.log_tail()}"
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what}:\nflow:\n{self.flow.log_tail()}\n"
                f"api:\n{self.api.log_tail()}"
            )
            time.sleep(0.2)

    def order_records(self, *, key: bytes | None = None, webhook_id: str | None = None) -> int:
        """How many records of the prefixed shopify.orders topic match the key / webhook id."""
        count = 0
        for record in read_log(self.settings, self.points.topic(SHOPIFY_ORDERS)):
            if key is not None and record.key != key:
                continue
            headers = dict(record.headers)
            if (
                webhook_id is not None
                and headers.get("X-Shopify-Webhook-Id") != webhook_id.encode()
            ):
                continue
            count += 1
        return count


@contextmanager
def api_stack(settings: Settings, workdir: Path) -> Iterator[ApiStack]:
    shop_a = Shop(f"shop-a-{uuid.uuid4().hex[:8]}.myshopify.com", "secret-a-1", Decimal("2"))
    shop_b = Shop(f"shop-b-{uuid.uuid4().hex[:8]}.myshopify.com", "secret-b-1", Decimal("1"))
    with (
        isolated_deployment(settings, "test", workdir) as points,
        fresh_postgres(settings, "test") as postgres_url,
    ):
        add_merchants(postgres_url, shop_a, shop_b)
        flow = FlowProcess(points, workdir / "flow.log", api_port=free_port())
        try:
            api = ApiProcess(
                points, postgres_url, workdir / "api.log", WEBHOOK_RATE_LIMIT=RATE_LIMIT
            )
            try:
                api.wait_healthy()
                yield ApiStack(settings, points, postgres_url, shop_a, shop_b, flow, api, workdir)
            finally:
                api.stop()
        finally:
            flow.stop()
