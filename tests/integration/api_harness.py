"""Run the API (`python -m api`) as a real process next to the points flow, and talk to it.

`api_stack()` builds an isolated deployment on the shared local servers: prefixed topics with
their schemas, a fresh MongoDB database (collections, translations), a fresh PostgreSQL database
with the migrations applied, and a Redis key prefix. `ApiProcess` starts the API on free ports
against it; `Shop` signs webhooks and issues tokens the way Shopify and LoyalNest Core would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import httpx
import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg import sql

from connectors.merchants import upsert_merchant
from loyalnest import tokens
from loyalnest.bootstrap.isolated import isolated_copy
from loyalnest.bootstrap.migrations import apply_migrations, discover
from loyalnest.settings import Settings
from loyalnest.topics import SHOPIFY_ORDERS
from loyalty import ids
from tests.integration.points_harness import ROOT, FlowProcess, PointsEnv

JWT_SECRET = "api-test-jwt-secret-0123456789abcdef"
SECRETS_KEY = "api-test-secrets-key-0123456789abcdef"
API_VERSION = "2025-10"
STARTUP_TIMEOUT = 30.0
FLOW_TIMEOUT = 60.0

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sign(body: bytes, secret: str) -> str:
    """Shopify's X-Shopify-Hmac-Sha256: base64 of HMAC-SHA256 over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Shop:
    """A merchant as the tests know it: its domain, current webhook secret and earning rate."""

    domain: str
    secret: str
    points_per_unit: Decimal
    locale: str = "en"

    @property
    def merchant_id(self) -> str:
        return str(ids.merchant_id(self.domain))

    def token(self, *scopes: str, secret: str = JWT_SECRET) -> str:
        return tokens.issue(
            secret,
            self.merchant_id,
            self.domain,
            set(scopes),
            now=datetime.now(UTC),
            ttl=timedelta(hours=1),
        )

    def auth(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes)}"}

    def webhook_headers(
        self,
        topic: str,
        body: bytes,
        *,
        webhook_id: str | None = None,
        secret: str | None = None,
    ) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": sign(body, self.secret if secret is None else secret),
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": self.domain,
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
            "X-Shopify-API-Version": API_VERSION,
        }


def add_merchant(postgres_url: str, shop: Shop) -> None:
    """Create the merchant, or update it (a new secret is a rotation)."""
    with psycopg.connect(postgres_url) as conn:
        upsert_merchant(
            conn,
            SECRETS_KEY,
            shop=shop.domain,
            secret=shop.secret,
            points_per_unit=shop.points_per_unit,
            locale=shop.locale,
        )


@contextmanager
def isolated_points_env(
    settings: Settings, admin: AdminClient, recovery: Path
) -> Iterator[PointsEnv]:
    """What the `points_env` fixture of test_points_flow.py builds, for any fixture scope."""
    tag = uuid.uuid4().hex[:10]
    env = PointsEnv(
        settings,
        prefix=f"t{tag}.",
        database=f"test_{tag}",
        redis_prefix=f"test_{tag}:",
        recovery=recovery,
    )
    with isolated_copy(settings, env.prefix, env.database):
        yield env


@contextmanager
def fresh_postgres(settings: Settings) -> Iterator[str]:
    """A new PostgreSQL database with the migrations applied; its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlsplit(settings.postgres_url)._replace(path=f"/{name}").geturl()
    try:
        with psycopg.connect(url) as conn:
            apply_migrations(conn, discover())
        yield url
    finally:
        with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


class ApiProcess:
    """`python -m api` on free ports, against an isolated deployment."""

    def __init__(self, env: PointsEnv, postgres_url: str, log: Path, **overrides: str) -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        self._log = log
        environ = {
            **env.env,
            "POSTGRES_URL": postgres_url,
            "API_HOST": "127.0.0.1",
            "API_HTTP_PORT": str(self.http_port),
            "API_GRPC_PORT": str(self.grpc_port),
            "WEBHOOK_RATE_LIMIT": "1000",
            "JWT_SECRET": JWT_SECRET,
            "LOYALNEST_SECRETS_KEY": SECRETS_KEY,
            **overrides,
        }
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api"],
                cwd=ROOT,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.alive(), f"the API exited at startup:\n{self.log_tail()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the API never got healthy:\n{self.log_tail()}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-40:])


@dataclass
class ApiStack:
    """An isolated deployment: stores, two merchants, the points flow and the API."""

    settings: Settings
    points: PointsEnv
    postgres_url: str
    shop_a: Shop
    shop_b: Shop
    flow: FlowProcess
    api: ApiProcess
    workdir: Path
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> int:
        """A number no other test of the module uses (customer, order and refund ids)."""
        return next(self._ids)

    def start_api(self, name: str, **overrides: str) -> ApiProcess:
        api = ApiProcess(self.points, self.postgres_url, self.workdir / f"{name}.log", **overrides)
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
        for record_key, headers in read_to_end(self.settings, self.points.topic(SHOPIFY_ORDERS)):
            if key is not None and record_key != key:
                continue
            if (
                webhook_id is not None
                and headers.get("X-Shopify-Webhook-Id") != webhook_id.encode()
            ):
                continue
            count += 1
        return count


def read_to_end(settings: Settings, topic: str) -> list[tuple[bytes | None, dict[str, bytes]]]:
    """(key, headers) of every record of a topic, read from offset 0 to the end of each
    partition (as `read_log` of points_harness.py, but all partitions at once)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"api-test-{uuid.uuid4()}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    records: list[tuple[bytes | None, dict[str, bytes]]] = []
    at_end: set[int] = set()
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while len(at_end) < len(partitions):
            msg = consumer.poll(10)
            assert msg is not None, f"no end of partition reading {topic}"
            error = msg.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(cast(int, msg.partition()))
                continue
            records.append((msg.key(), dict(cast(list[tuple[str, bytes]], msg.headers() or []))))
    finally:
        consumer.close()
    return records


@contextmanager
def api_stack(settings: Settings, admin: AdminClient, workdir: Path) -> Iterator[ApiStack]:
    shop_a = Shop(f"shop-a-{uuid.uuid4().hex[:8]}.myshopify.com", "secret-a-1", Decimal("2"))
    shop_b = Shop(f"shop-b-{uuid.uuid4().hex[:8]}.myshopify.com", "secret-b-1", Decimal("1"))
    with (
        isolated_points_env(settings, admin, workdir / "recovery") as points,
        fresh_postgres(settings) as postgres_url,
    ):
        for shop in (shop_a, shop_b):
            add_merchant(postgres_url, shop)
        flow = FlowProcess(points, workdir / "flow.log")
        try:
            api = ApiProcess(points, postgres_url, workdir / "api.log")
            try:
                api.wait_healthy()
                yield ApiStack(settings, points, postgres_url, shop_a, shop_b, flow, api, workdir)
            finally:
                api.stop()
        finally:
            flow.stop()
