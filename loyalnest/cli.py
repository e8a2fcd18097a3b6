"""`loyalnest` command line: operator tasks against the configured servers."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import psycopg
from confluent_kafka import Producer

from connectors.merchants import merchant_by_shop, upsert_merchant
from connectors.shopify import encode_body, kafka_headers, partition_key
from loyalnest import tokens
from loyalnest.app_secrets import Secrets, SecretsError, load_secrets
from loyalnest.samples import sample_orders
from loyalnest.settings import Settings
from loyalnest.topics import SHOPIFY_ORDERS
from loyalty import fields
from loyalty.errors import InvalidEventError
from loyalty.fields import is_locale


class SampleProducer(Protocol):
    """What `produce_sample_orders` needs of a Kafka producer (confluent_kafka.Producer)."""

    def produce(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes,
        headers: list[tuple[str, str | bytes | None]],
        on_delivery: Callable[[object, object], None],
    ) -> None: ...

    def flush(self, timeout: float) -> int: ...


def kafka_producer(settings: Settings) -> SampleProducer:
    producer: SampleProducer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    return producer


def produce_sample_orders(
    settings: Settings,
    shop: str,
    count: int,
    seed: int,
    producer_for: Callable[[Settings], SampleProducer] = kafka_producer,
) -> int:
    """Produce `count` sample orders/create webhooks to shopify.orders (under the configured
    KAFKA_TOPIC_PREFIX); wait for the acks."""
    producer = producer_for(settings)
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for webhook in sample_orders(shop, count, seed=seed):
        producer.produce(
            settings.topic(SHOPIFY_ORDERS),
            value=encode_body(webhook.body),
            key=partition_key(shop, webhook.topic, webhook.body),
            headers=kafka_headers(webhook.headers, str(uuid.uuid4())),
            on_delivery=on_delivery,
        )
    producer.flush(30)
    if failures:
        raise RuntimeError(f"{len(failures)} sample orders not delivered: {failures[0]}")
    return count


def add_merchant(
    settings: Settings, secrets: Secrets, args: argparse.Namespace
) -> dict[str, object]:
    with psycopg.connect(settings.postgres_url) as conn:
        merchant = upsert_merchant(
            conn,
            secrets.secrets_key,
            shop=args.shop,
            secret=args.webhook_secret,
            points_per_unit=args.points_per_unit,
            locale=args.locale,
        )
    return {
        "merchant_id": merchant.merchant_id,
        "shop": merchant.shop,
        "points_per_unit": str(merchant.points_per_unit),
        "locale": merchant.locale,
    }


def make_token(settings: Settings, secrets: Secrets, args: argparse.Namespace) -> dict[str, object]:
    with psycopg.connect(settings.postgres_url) as conn:
        merchant = merchant_by_shop(conn, secrets.secrets_key, args.shop)
    if merchant is None:
        raise SystemExit(f"unknown shop {args.shop!r}: add it with `loyalnest merchants add`")
    scopes = {s.strip() for s in args.scopes.split(",") if s.strip()}
    token = tokens.issue(
        secrets.jwt_secret,
        merchant.merchant_id,
        merchant.shop,
        scopes,
        now=datetime.now(UTC),
        ttl=timedelta(days=settings.jwt_ttl_days),
    )
    return {"token": token, "merchant_id": merchant.merchant_id, "scopes": sorted(scopes)}


def shop_arg(text: str) -> str:
    """A shop's permanent *.myshopify.com domain (the API refuses webhooks from any other)."""
    try:
        return fields.shop_domain(text)
    except InvalidEventError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def rate_arg(text: str) -> Decimal:
    """Points per currency unit, bounded as the points flow reads it (else every order of the
    merchant would be a dead letter)."""
    try:
        return fields.rate(text)
    except InvalidEventError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def locale_arg(text: str) -> str:
    """A language code as the translations use them; anything else would reach the ledger."""
    if not is_locale(text):
        raise argparse.ArgumentTypeError(
            f"not a language code (two or three lower-case letters, e.g. en, he): {text!r}"
        )
    return text


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="loyalnest", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    merchants = commands.add_parser("merchants", help="manage merchants")
    merchant_cmds = merchants.add_subparsers(dest="action", required=True)
    add = merchant_cmds.add_parser("add", help="create or update a merchant (prints JSON)")
    add.add_argument("--shop", type=shop_arg, required=True, help="e.g. my-store.myshopify.com")
    add.add_argument("--webhook-secret", required=True, help="the app's webhook signing secret")
    add.add_argument("--points-per-unit", type=rate_arg, default=Decimal(1))
    add.add_argument("--locale", type=locale_arg, default="en")
    token = commands.add_parser("token", help="print a signed API token for a merchant")
    token.add_argument("--shop", required=True)
    token.add_argument(
        "--scopes",
        default=tokens.SCOPE_VIEW,
        help=f"comma-separated: {', '.join(sorted(tokens.SCOPES))}",
    )
    samples = commands.add_parser("sample-orders", help="produce sample Shopify orders to Kafka")
    samples.add_argument("--shop", default="demo.myshopify.com")
    samples.add_argument("--count", type=int, default=20)
    samples.add_argument("--seed", type=int, default=7)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    try:
        secrets = load_secrets(settings)
    except SecretsError as exc:
        print(f"loyalnest: {exc}", file=sys.stderr)
        return 2
    if args.command == "merchants":
        result = add_merchant(settings, secrets, args)
    elif args.command == "token":
        try:
            result = make_token(settings, secrets, args)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
    else:
        sent = produce_sample_orders(settings, args.shop, args.count, args.seed)
        result = {"topic": settings.topic(SHOPIFY_ORDERS), "produced": sent, "shop": args.shop}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
