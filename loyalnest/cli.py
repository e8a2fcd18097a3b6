"""`loyalnest` command line: operator tasks against the configured servers."""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from confluent_kafka import Producer

from bench.orders import sample_orders
from connectors.shopify import encode_body, kafka_headers, partition_key
from loyalnest.settings import Settings
from loyalnest.topics import SHOPIFY_ORDERS


def produce_sample_orders(settings: Settings, shop: str, count: int, seed: int) -> int:
    """Produce `count` sample orders/create webhooks to shopify.orders; wait for the acks."""
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for webhook in sample_orders(shop, count, seed=seed):
        producer.produce(
            SHOPIFY_ORDERS,
            value=encode_body(webhook.body),
            key=partition_key(shop, webhook.topic, webhook.body),
            headers=kafka_headers(webhook.headers, str(uuid.uuid4())),
            on_delivery=on_delivery,
        )
    producer.flush(30)
    if failures:
        raise RuntimeError(f"{len(failures)} sample orders not delivered: {failures[0]}")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loyalnest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    samples = commands.add_parser("sample-orders", help="produce sample Shopify orders to Kafka")
    samples.add_argument("--shop", default="demo.myshopify.com")
    samples.add_argument("--count", type=int, default=20)
    samples.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.command == "sample-orders":
        sent = produce_sample_orders(Settings(), args.shop, args.count, args.seed)
        print(json.dumps({"topic": SHOPIFY_ORDERS, "produced": sent, "shop": args.shop}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
