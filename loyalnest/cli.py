"""`loyalnest` command line: operator tasks against the configured servers."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
from confluent_kafka import Producer

from connectors.adjustments import BadAdjustmentError, adjustment_memo, adjustment_points
from connectors.merchants import SettingsUpdate, merchant_by_shop, upsert_merchant
from connectors.shopify import encode_body, kafka_headers, partition_key
from loyalnest import dlq, points_adjust, registry, rfm_settings, scaling, tier_settings, tokens
from loyalnest.app_secrets import Secrets, SecretsError, load_secrets
from loyalnest.localstack.process import alive, read_pid
from loyalnest.localstack.service import StackPaths
from loyalnest.samples import sample_orders
from loyalnest.settings import Settings
from loyalnest.topics import SHOPIFY_ORDERS
from loyalty import fields, tier_config, tier_preview
from loyalty.errors import InvalidEventError
from loyalty.fields import is_idempotency_key, is_locale, parse_id
from loyalty.policy import (
    MAX_PENDING_DAYS,
    MAX_RFM_LOOKBACK_DAYS,
    MAX_WARNING_DAYS,
    Expiry,
    parse_days,
)
from loyalty.referral_terms import (
    MAX_REFERRAL_POINTS,
    MAX_REVIEW_DAYS,
    min_subtotal,
    referral_points,
    review_days,
)
from loyalty.tier_config import InvalidTiersError
from loyalty.tier_preview import AS_OF_RULE, parse_as_of

T = TypeVar("T")
MAX_WAIT = 600.0  # seconds `points adjust --wait` may wait for the decision
_SIGNED_INT = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)


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
            settings=SettingsUpdate(
                pending_days=args.pending_days,
                expiry=args.expiry,
                warning_days=args.expiry_warning_days,
                rfm_lookback_days=args.rfm_lookback_days,
                referral_advocate_points=args.referral_advocate_points,
                referral_friend_points=args.referral_friend_points,
                referral_min_subtotal=args.referral_min_subtotal,
                referral_review_days=args.referral_review_days,
            ),
        )
    return {
        "merchant_id": merchant.merchant_id,
        "shop": merchant.shop,
        "points_per_unit": str(merchant.points_per_unit),
        "locale": merchant.locale,
        "pending_days": merchant.pending_days,
        "expiry": str(merchant.expiry),
        "expiry_warning_days": merchant.warning_days,
        "rfm_lookback_days": merchant.rfm_lookback_days,
        "referral_advocate_points": merchant.referral.advocate_points,
        "referral_friend_points": merchant.referral.friend_points,
        "referral_min_subtotal": str(merchant.referral.min_subtotal),
        "referral_review_days": merchant.referral.review_days,
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


def as_of_arg(text: str) -> datetime:
    try:
        return parse_as_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(AS_OF_RULE) from exc


def _checked(read: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a reader that raises the project's errors: argparse then exits
    with status 2 and a message naming the flag ("argument --expiry: ...")."""

    def parse(text: str) -> T:
        try:
            return read(text)
        except (InvalidEventError, BadAdjustmentError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parse.__name__ = read.__name__  # what argparse names in "invalid <name> value"
    return parse


def pending_days_arg(text: str) -> int:
    return parse_days(text, "pending days", MAX_PENDING_DAYS)


def warning_days_arg(text: str) -> int:
    return parse_days(text, "expiry warning days", MAX_WARNING_DAYS)


def rfm_lookback_days_arg(text: str) -> int:
    return parse_days(text, "rfm lookback days", MAX_RFM_LOOKBACK_DAYS, lowest=1)


def advocate_points_arg(text: str) -> int:
    return referral_points(text, "referral advocate points")


def friend_points_arg(text: str) -> int:
    return referral_points(text, "referral friend points")


def customer_arg(text: str) -> int:
    customer = parse_id(text)
    if customer is None:
        raise argparse.ArgumentTypeError(f"not a Shopify customer id (digits): {text[:40]!r}")
    return customer


def adjustment_points_arg(text: str) -> int:
    """A signed integer in ASCII digits (int() would also take "1_000" and other scripts)."""
    if not _SIGNED_INT.fullmatch(text):
        raise BadAdjustmentError(
            f"points must be a signed integer such as 50 or -20: {text[:40]!r}"
        )
    return adjustment_points(int(text))


def idempotency_key_arg(text: str) -> str:
    if not is_idempotency_key(text):
        raise argparse.ArgumentTypeError("must be 1 to 255 printable ASCII characters")
    return text


def wait_arg(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT:  # NaN fails every comparison
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {MAX_WAIT:g}")
    return seconds


def time_arg(text: str) -> datetime:
    """An ISO date or time; without an offset, UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be an ISO date or time") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def attempt_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 99_999:
        raise argparse.ArgumentTypeError("must be a whole number of attempts from 1")
    return int(text)


def rate_per_second_arg(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0 < rate <= 1_000_000:  # NaN fails every comparison
        raise argparse.ArgumentTypeError("must be a number of dead letters per second above 0")
    return rate


def add_flow_commands(commands: Any) -> None:
    flows_parser = commands.add_parser("flows", help="the flows' process counts")
    flow_cmds = flows_parser.add_subparsers(dest="action", required=True)
    flow_cmds.add_parser("list", help="each flow and how many processes it runs as (JSON)")
    scaling = flow_cmds.add_parser(
        "scale", help="run a flow as N processes: stop it, change N, resume from its recovery"
    )
    scaling.add_argument("flow", choices=[job.name for job in registry.flows()])
    scaling.add_argument("processes", type=int, metavar="N")


def run_flows(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        counts = {job.name: scaling.processes_for(settings, job.name) for job in registry.flows()}
        print(json.dumps(counts, indent=2))
        return 0
    pid = read_pid(StackPaths(settings.data_dir.resolve()).pid("supervisor"))
    running = pid if pid is not None and alive(pid) else None
    try:
        scaled = scaling.scale(settings, args.flow, args.processes, running)
    except scaling.ScaleError as exc:
        print(f"loyalnest: {exc}", file=sys.stderr)
        return 2
    where = "the supervisor restarts it now" if running else "applies at the next start"
    print(f"{scaled.flow}: {scaled.before} → {scaled.after} process(es); {where}")
    return 0


def add_dlq_commands(commands: Any) -> None:
    dlq_parser = commands.add_parser("dlq", help="list, show and re-drive dead letters")
    dlq_cmds = dlq_parser.add_subparsers(dest="action", required=True)
    listing = dlq_cmds.add_parser("list", help="a table of dead letters, and a count by reason")
    replaying = dlq_cmds.add_parser(
        "replay", help="re-drive dead letters to the topics they came from, each once"
    )
    for sub in (listing, replaying):
        sub.add_argument("--topic", help="one dead-letter topic (default: all)")
        sub.add_argument("--reason", help="reason contains this text (any case)")
        sub.add_argument("--step", help="the step that refused it")
        sub.add_argument("--shop", type=shop_arg)
        sub.add_argument("--since", type=time_arg, help="original time from (ISO, UTC)")
        sub.add_argument("--until", type=time_arg, help="original time before (ISO, UTC)")
        sub.add_argument(
            "--max-attempt",
            type=attempt_arg,
            help="only those dead-lettered at most N times (a record that keeps failing)",
        )
    replaying.add_argument("--dry-run", action="store_true", help="show, send nothing")
    replaying.add_argument("--rate", type=rate_per_second_arg, help="dead letters/s at most")
    showing = dlq_cmds.add_parser("show", help="one dead letter: headers and original record")
    showing.add_argument("ref", help="as `list` shows it (points.dlq/0/17), or an offset")


def run_dlq(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.action == "show":
            dlq.show(settings, args.ref, sys.stdout)
            return 0
        selection = dlq.Selection(
            args.reason, args.step, args.shop, args.since, args.until, args.max_attempt
        )
        if args.action == "list":
            dlq.list_dead_letters(settings, args.topic, selection, sys.stdout)
            return 0
        options = dlq.ReplayOptions(args.dry_run, args.rate, dlq.terminal())
        report = dlq.replay(settings, args.topic, selection, options, sys.stdout)
    except (LookupError, ValueError) as exc:
        print(f"loyalnest: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.document() | {"dry_run": args.dry_run}))
    return 0


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
    # Program settings: omitted ones keep their stored value (a new merchant: the default).
    # They apply from then on: points keep the terms they were earned under.
    add.add_argument(
        "--pending-days",
        type=_checked(pending_days_arg),
        help=f"days an order's points stay pending, 0 to {MAX_PENDING_DAYS} (default 0)",
    )
    add.add_argument(
        "--expiry",
        type=_checked(Expiry.parse),
        help="none (default), inactivity:DAYS or lot:DAYS (DAYS 1 to 3650)",
    )
    add.add_argument(
        "--expiry-warning-days",
        type=_checked(warning_days_arg),
        help=f"warn this many days before points expire, 0 to {MAX_WARNING_DAYS} (default 14)",
    )
    add.add_argument(
        "--rfm-lookback-days",
        type=_checked(rfm_lookback_days_arg),
        help=f"days of orders RFM scores count, 1 to {MAX_RFM_LOOKBACK_DAYS} (default 365)",
    )
    add.add_argument(
        "--referral-advocate-points",
        type=_checked(advocate_points_arg),
        help=f"points an advocate gets per qualifying referral, 0 to {MAX_REFERRAL_POINTS:,} "
        "(default 500)",
    )
    add.add_argument(
        "--referral-friend-points",
        type=_checked(friend_points_arg),
        help=f"points the referred friend gets, 0 to {MAX_REFERRAL_POINTS:,} (default 0)",
    )
    add.add_argument(
        "--referral-min-subtotal",
        type=_checked(min_subtotal),
        help="smallest subtotal after discounts that qualifies, e.g. 25.00 (default 0.00)",
    )
    add.add_argument(
        "--referral-review-days",
        type=_checked(review_days),
        help=f"days referral rewards stay pending, 0 to {MAX_REVIEW_DAYS} (default 0)",
    )
    rfm = commands.add_parser("rfm", help="RFM settings")
    rfm_cmds = rfm.add_subparsers(dest="action", required=True)
    cuts = rfm_cmds.add_parser(
        "thresholds",
        help="score R, F, M by the merchant's cut points instead of quintiles (prints JSON)",
        description=rfm_settings.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cuts.add_argument("--shop", type=shop_arg, required=True)
    cuts.add_argument("--recency-days", type=rfm_settings.four(int, "recency-days"))
    cuts.add_argument("--frequency", type=rfm_settings.four(int, "frequency"))
    cuts.add_argument("--monetary", type=rfm_settings.four(Decimal, "monetary"))
    cuts.add_argument("--clear", action="store_true", help="back to quintiles")
    token = commands.add_parser("token", help="print a signed API token for a merchant")
    token.add_argument("--shop", required=True)
    token.add_argument(
        "--scopes",
        default=tokens.SCOPE_VIEW,
        help=f"comma-separated: {', '.join(sorted(tokens.SCOPES))}",
    )
    points = commands.add_parser("points", help="change a customer's points")
    points_cmds = points.add_subparsers(dest="action", required=True)
    adjust = points_cmds.add_parser(
        "adjust",
        help="add (N > 0) or deduct (N < 0) points by hand; waits for the decision, prints JSON",
        description=points_adjust.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    adjust.add_argument("--shop", type=shop_arg, required=True)
    adjust.add_argument("--customer", type=customer_arg, required=True, help="Shopify id")
    adjust.add_argument(
        "--points", type=_checked(adjustment_points_arg), required=True, help="e.g. 50 or -20"
    )
    adjust.add_argument(
        "--reason", type=_checked(adjustment_memo), required=True, help="1 to 200 characters"
    )
    adjust.add_argument(
        "--idempotency-key",
        type=idempotency_key_arg,
        help="the same key names the same adjustment (default: a new one, printed)",
    )
    adjust.add_argument(
        "--wait",
        type=wait_arg,
        default=10.0,
        help="seconds to wait for the points flow's decision (default 10)",
    )
    tiers = commands.add_parser("tiers", help="VIP tiers")
    tier_cmds = tiers.add_subparsers(dest="action", required=True)
    set_cmd = tier_cmds.add_parser(
        "set",
        help="add a version of the merchant's tiers from a JSON file (prints JSON)",
        description=f"{tier_settings.__doc__}\n{tier_config.__doc__}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    set_cmd.add_argument("--shop", type=shop_arg, required=True)
    set_cmd.add_argument("--file", type=Path, required=True)
    show = tier_cmds.add_parser("show", help="the merchant's latest tiers (prints JSON)")
    show.add_argument("--shop", type=shop_arg, required=True)
    what_if = tier_cmds.add_parser(
        "preview",
        help="what a proposed tiers file would do to today's customers (prints JSON)",
        description=tier_preview.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what_if.add_argument("--shop", type=shop_arg, required=True)
    what_if.add_argument("--file", type=Path, required=True)
    what_if.add_argument(
        "--as-of",
        type=as_of_arg,
        help="a date (2026-12-31) or a time with offset (default: now)",
    )
    add_dlq_commands(commands)
    add_flow_commands(commands)
    samples = commands.add_parser("sample-orders", help="produce sample Shopify orders to Kafka")
    samples.add_argument("--shop", default="demo.myshopify.com")
    samples.add_argument("--count", type=int, default=20)
    samples.add_argument("--seed", type=int, default=7)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    if args.command == "flows":  # needs no secrets
        return run_flows(settings, args)
    try:
        secrets = load_secrets(settings)
    except SecretsError as exc:
        print(f"loyalnest: {exc}", file=sys.stderr)
        return 2
    if args.command == "dlq":
        return run_dlq(settings, args)
    if args.command == "points":
        return points_adjust.adjust(
            settings,
            secrets,
            points_adjust.AdjustArgs(
                shop=args.shop,
                customer=args.customer,
                points=args.points,
                reason=args.reason,
                idempotency_key=args.idempotency_key,
                wait=args.wait,
            ),
        )
    if args.command == "rfm":
        try:
            result = rfm_settings.set_thresholds(
                settings, args.shop, rfm_settings.thresholds_of(args)
            )
        except (InvalidEventError, LookupError) as exc:
            print(f"loyalnest: {exc}", file=sys.stderr)
            return 2
    elif args.command == "tiers":
        try:
            if args.action == "set":
                result = tier_settings.set_tiers(settings, args.shop, args.file)
            elif args.action == "preview":
                as_of = args.as_of or datetime.now(UTC)
                result = tier_settings.preview_tiers(settings, args.shop, args.file, as_of)
            else:
                result = tier_settings.show_tiers(settings, args.shop)
        except (InvalidTiersError, LookupError) as exc:
            print(f"loyalnest: {exc}", file=sys.stderr)
            return 2
    elif args.command == "merchants":
        try:
            result = add_merchant(settings, secrets, args)
        except ValueError as exc:  # settings that cannot work together
            print(f"loyalnest: {exc}", file=sys.stderr)
            return 2
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
