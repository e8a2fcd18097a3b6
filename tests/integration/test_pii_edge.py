"""PII stays at the edge, on the real stack: orders with customers' emails, names, phones,
addresses and browser IPs go through the API to the points, order-archive and RFM flows. After
the run no raw email is in any Kafka topic of the deployment, any MongoDB collection, any flow's
recovery store or any process log; the customers table holds each email, encrypted, with its
keyed hashes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import grpc
import httpx
import psycopg
import pymongo
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.avro import AvroDecoder
from connectors.shopify import encode_body
from connectors.store import BALANCES, ORDER_EVENTS, RFM_CUSTOMERS
from loyalnest.harness.processes import FlowProcess
from loyalnest.harness.shops import SECRETS_KEY
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_CUSTOMERS_MANAGE, SCOPE_CUSTOMERS_PII, SCOPE_CUSTOMERS_VIEW
from loyalnest.topics import CUSTOMER_CREATED
from loyalnest_grpc.core.v1 import core_pb2, core_pb2_grpc
from loyalty import ids
from loyalty.pii import Hasher, merchant_key
from tests.integration.api_harness import ApiStack, api_stack
from tests.integration.points_harness import read_log

pytestmark = pytest.mark.integration

CUSTOMERS = 12
FIRST_CUSTOMER = 61_000


def email(n: int) -> str:
    return f"Pii.Person{n}+shop@Example.org"


def order(n: int) -> dict[str, Any]:
    address = {
        "first_name": f"Given{n}",
        "last_name": f"Family{n}",
        "address1": f"{n} Quiet Lane",
        "city": "Leafton",
        "zip": f"{10000 + n}",
        "phone": f"+1 555 01{n:02d}",
        "country_code": "US",
    }
    return {
        "id": 8_100_000 + n,
        "email": email(n),
        "contact_email": email(n),
        "phone": address["phone"],
        "browser_ip": f"198.51.100.{n}",
        "client_details": {"browser_ip": f"198.51.100.{n}"},
        "financial_status": "paid",
        "subtotal_price": "30.00",
        "total_tax": "0.00",
        "taxes_included": False,
        "test": False,
        "created_at": "2026-11-01T10:00:00+00:00",
        "processed_at": "2026-11-01T10:00:00+00:00",
        "customer": {
            "id": FIRST_CUSTOMER + n,
            "email": email(n),
            "first_name": f"Given{n}",
            "last_name": f"Family{n}",
            "phone": address["phone"],
            "default_address": address,
        },
        "billing_address": address,
        "shipping_address": address,
    }


@pytest.fixture(scope="module")
def stack(
    settings: Settings, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    with api_stack(settings, tmp_path_factory.mktemp("pii")) as built:
        yield built


def test_no_raw_email_leaves_the_edge(stack: ApiStack, settings: Settings) -> None:
    workdir = stack.workdir
    others = [
        FlowProcess(stack.points, workdir / f"{name}.log", flow=name, recovery=workdir / name)
        for name in ("order-archive", "rfm")
    ]
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    db = client[stack.points.database]
    try:
        with httpx.Client(base_url=stack.api.url, timeout=15) as http:
            for n in range(CUSTOMERS):
                for topic in ("orders/create", "orders/paid"):
                    body = encode_body(order(n))
                    headers = stack.shop_a.webhook_headers(topic, body)
                    reply = http.post("/webhooks/shopify", content=body, headers=headers)
                    assert reply.json()["status"] == "accepted", reply.text
        stack.wait_for("every balance", lambda: _at_least(db[BALANCES], CUSTOMERS))
        stack.wait_for("the archive", lambda: _at_least(db[ORDER_EVENTS], 2 * CUSTOMERS))
        stack.wait_for("every RFM customer", lambda: _at_least(db[RFM_CUSTOMERS], CUSTOMERS))
        created = stack.wait_for(
            "every customer announced",
            lambda: _at_least_events(stack, settings, CUSTOMER_CREATED, CUSTOMERS),
        )
    finally:
        for flow in others:
            flow.stop()
        client.close()

    raw = [email(n).encode() for n in range(CUSTOMERS)]
    lowered = [r.lower() for r in raw]
    for place, data in _everything(stack, settings, workdir):
        for needle in (*raw, *lowered):
            assert needle not in data.lower(), f"a raw email in {place}"
    _customers_hold_the_emails(stack, {n: email(n) for n in range(CUSTOMERS)})
    hasher = Hasher(merchant_key(SECRETS_KEY, stack.shop_a.merchant_id))
    assert {(e["shopify_customer_id"], e["email_hash"]) for e in created} == {
        (FIRST_CUSTOMER + n, hasher.email(email(n))) for n in range(CUSTOMERS)
    }


def test_core_creates_and_serves_customers_over_grpc_with_the_email_only_for_pii(
    stack: ApiStack, settings: Settings
) -> None:
    def metadata(*scopes: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {stack.shop_a.token(*scopes)}"),)

    address = "New.Person+promo@Gmail.com"
    with grpc.insecure_channel(stack.api.grpc_target) as channel:
        core = core_pb2_grpc.CoreServiceStub(channel)  # type: ignore[no-untyped-call]
        made = core.CreateCustomer(
            core_pb2.CreateCustomerRequest(email=address),
            metadata=metadata(SCOPE_CUSTOMERS_MANAGE),
        )
        again = core.CreateCustomer(
            core_pb2.CreateCustomerRequest(email="newperson@googlemail.com"),
            metadata=metadata(SCOPE_CUSTOMERS_MANAGE),
        )
        asked = core_pb2.GetCustomerRequest(customer_id=made.customer_id)
        plain = core.GetCustomer(asked, metadata=metadata(SCOPE_CUSTOMERS_VIEW))
        full = core.GetCustomer(asked, metadata=metadata(SCOPE_CUSTOMERS_VIEW, SCOPE_CUSTOMERS_PII))
        with pytest.raises(grpc.RpcError) as refused:
            core.CreateCustomer(
                core_pb2.CreateCustomerRequest(email="nope"),
                metadata=metadata(SCOPE_CUSTOMERS_MANAGE),
            )

    assert (made.created, again.created, again.customer_id) == (True, False, made.customer_id)
    assert not plain.HasField("email")
    assert full.email == address
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    announced = stack.wait_for(
        "the creation announced",
        lambda: (
            [
                e
                for e in _events(stack, settings, CUSTOMER_CREATED)
                if str(e["customer_id"]) == made.customer_id
            ]
            or None
        ),
    )
    assert {e["shopify_customer_id"] for e in announced} == {None}
    assert len({e["event_id"] for e in announced}) == 1  # announced twice, as one event


def _events(stack: ApiStack, settings: Settings, contract: str) -> list[dict[str, Any]]:
    topic = stack.points.topic(contract)
    with SchemaRegistryClient({"url": settings.schema_registry_url}) as registry:
        decode = AvroDecoder.registered(registry, contract, topic)
    return [decode(m.value) for m in read_log(settings, topic)]


def _at_least_events(
    stack: ApiStack, settings: Settings, contract: str, count: int
) -> list[dict[str, Any]] | None:
    found = _events(stack, settings, contract)
    return found if len(found) >= count else None


def _at_least(collection: Any, count: int) -> bool | None:
    return True if collection.count_documents({}) >= count else None


def _everything(stack: ApiStack, settings: Settings, workdir: Path) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) of every record, document, recovery file and log the run left."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    prefix = stack.points.prefix
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    assert len(topics) > 10
    for topic in topics:
        for record in read_log(settings, topic):
            headers = b"".join(v or b"" for _k, v in record.headers or [])
            yield f"topic {topic}", (record.key or b"") + (record.value or b"") + headers
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo_url)
    try:
        db = client[stack.points.database]
        for name in db.list_collection_names():
            for doc in db[name].find():
                yield f"collection {name}", bson.encode(doc)
    finally:
        client.close()
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite3" for p in files), "no recovery store was written"
    for path in files:
        yield f"file {path.relative_to(workdir)}", path.read_bytes()


def _customers_hold_the_emails(stack: ApiStack, emails: dict[int, str]) -> None:
    merchant = str(ids.merchant_id(stack.shop_a.domain))
    hasher = Hasher(merchant_key(SECRETS_KEY, merchant))
    with psycopg.connect(stack.postgres_url) as conn:
        rows = conn.execute(
            "SELECT shopify_customer_id, pgp_sym_decrypt(email, %s), email_hash, name_hash,"
            " address_hash FROM customers WHERE merchant_id = %s",
            (SECRETS_KEY, merchant),
        ).fetchall()
    found = {row[0]: row[1:] for row in rows}
    assert set(found) == {FIRST_CUSTOMER + n for n in emails}
    for n, address in emails.items():
        stored, email_hash, name_hash, address_hash = found[FIRST_CUSTOMER + n]
        assert stored == address
        assert email_hash == hasher.email(address)
        assert name_hash == hasher.name(f"Given{n}", f"Family{n}")
        assert address_hash is not None
        assert address_hash.startswith("h1:")
