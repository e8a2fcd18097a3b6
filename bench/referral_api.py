"""Referral codes and status reads over REST, each call timed on its own, twice: its capacity
(closed loop, 32 connections: `_per_s`) and its latency when offered 1,000 req/s (open loop:
`_at_rate_p50_ms`, `_at_rate_p99_ms`; `_at_rate_max_lag_ms` says how late the generator sent,
so a run that was not open loop shows):

- `POST /v1/referrals/codes` (scope merchant:referrals:manage) for new advocates (201: a code
  derived and inserted in PostgreSQL, announced on `referral.commands` once Kafka acknowledged
  it), then for the same advocates again (200: the code read back, announced again);
- `GET /v1/referrals/codes/{code}` (merchant:referrals:view): the code and its referrals
  counted by status, from PostgreSQL;
- `GET /v1/referrals/{referral_id}` (merchant:referrals:view): a referral's document from the
  Redis cache the referrals flow refreshes (hits), and from PostgreSQL when the cache has no
  entry (misses: each read once, after which the API fills the entry in the background).

The referrals are what the referrals flow stores: `loyalty.referrals.Referral` records over
the advocates' codes (every status and reason), written by the flow's own upsert
(`connectors.referral_records.UPSERT`), whose returned rows refresh the cache through the
flow's `ReferralCache.put_many` for the hit set, not for the miss set. Seeded entries live
CACHE_SECONDS (longer than the run; production's REFERRAL_CACHE_SECONDS is 60 s), so that the
hits measured are hits. Before the hits are timed the hit set's rows are deleted from
PostgreSQL: a reply not from the cache would be a 404, and fail the run.

Every reply is checked, and any wrong one fails the run with how many there were: the status
(201 or 200), and the body: a new advocate's code is one of the codes derived for them, no two
advocates share one, and the repeat answers exactly what the first call did; a code's reply is
its advocate and the counts the seeded referrals give; a referral's is its stored row's
document (`ReferralRow.document()`). Afterwards `referral.commands` must hold one record per
code request. Each call is warmed up first (the API's PostgreSQL pool opens), and besides its
rate and latencies reports the CPU milliseconds per request the API processes (API_WORKERS: one
per core) and the PostgreSQL server processes serving it spent (/proc).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import redis
from psycopg.rows import class_row

from bench.http import Paced, Pool, Reply, Run, build_request, closed_loop, paced, percentile
from bench.ingest import records_on
from bench.proc import MachineCpu, broker_pid, cpu_seconds, tree_cpu_seconds
from bench.report import Targets, at_least, at_most
from bench.stackenv import API_WORKERS, bench_env
from connectors.referral_cache import ReferralCache
from connectors.referral_links import MAX_ATTEMPTS
from connectors.referral_records import BY_IDS, UPSERT, ReferralRow, upsert_params
from loyalnest.harness.deployment import Deployment, fresh_postgres
from loyalnest.harness.processes import ApiProcess
from loyalnest.harness.shops import SECRETS_KEY, Shop, add_merchants
from loyalnest.settings import Settings
from loyalnest.tokens import SCOPE_REFERRALS_MANAGE, SCOPE_REFERRALS_VIEW
from loyalnest.topics import REFERRAL_COMMANDS
from loyalty.pii import merchant_key
from loyalty.referral_codes import LINK_PARAMETER, advocate_code
from loyalty.referrals import Reason, Referral, Status, referral_id

CALLS = ("code_create", "code_repeat", "code_read", "status")
# Capacity is the closed loop's rate; latency is measured apart, open loop at RATE req/s (a
# closed loop at capacity measures its own queue: 32 connections at 1,000 req/s wait 32 ms
# on average whatever the server does).
RATE = 1_000
PACED_CONNECTIONS = 64  # enough that a request never waits for a free connection
TARGETS: Targets = {
    **{f"referral_{call}_per_s": at_least(RATE) for call in CALLS},
    **{f"referral_{call}_at_rate_p99_ms": at_most(20) for call in CALLS},
}
SHOP = Shop("bench-referrals.myshopify.com", "bench-referrals-secret", Decimal(1))
FIRST_ADVOCATE = 7_000_000
FIRST_FRIEND = 8_000_000
FIRST_ORDER = 9_000_000
# Longer than the whole run, for the entries this benchmark seeds only (see above).
CACHE_SECONDS = 3600
UPSERT_BATCH = 2_000
DECIDED = datetime(2026, 3, 1, tzinfo=UTC)
CODES = "/v1/referrals/codes"
JSON = {"Content-Type": "application/json"}

Judge = Callable[[int, Reply], str | None]  # why the i-th reply is wrong, or None


# ------------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    env: Deployment
    api: ApiProcess
    postgres_url: str


@contextmanager
def running_stack(settings: Settings) -> Iterator[Stack]:
    """A deployment with SHOP registered and the API healthy (its default settings); the
    PostgreSQL database's URL too, which the referrals are seeded into."""
    with (
        bench_env(settings) as env,
        fresh_postgres(settings, "bench") as postgres_url,
        ExitStack() as running,
    ):
        add_merchants(postgres_url, SHOP)
        api = ApiProcess(env, postgres_url, env.workdir / "api.log", API_WORKERS=API_WORKERS)
        running.callback(api.stop)
        api.wait_healthy()
        yield Stack(env, api, postgres_url)


# ------------------------------------------------------------------------------ the data


def referrals(codes: dict[int, str], count: int) -> list[Referral]:
    """`count` referrals over the first advocates' codes (one to twenty each), with every
    status and reason: one friend and order each, decided a second apart."""
    rng = random.Random(10)
    blocks = [Reason.SELF_REFERRAL, Reason.IP_VELOCITY, Reason.NOT_FIRST_ORDER]
    blocks += [Reason.ALREADY_REFERRED, Reason.UNKNOWN_CODE]
    advocates = iter(codes.items())
    found: list[Referral] = []
    while len(found) < count:
        advocate, code = next(advocates, (0, ""))
        if not code:
            raise ValueError(f"too few advocates for {count} referrals")
        for _ in range(min(rng.randint(1, 20), count - len(found))):
            n = len(found)
            friend, order = FIRST_FRIEND + n, FIRST_ORDER + n
            at = DECIDED + timedelta(seconds=n)
            pending = Referral(
                referral_id(SHOP.merchant_id, friend, order),
                SHOP.merchant_id,
                code,
                friend,
                order,
                Status.PENDING,
                at,
            )
            roll = rng.random()
            if roll < 0.10:
                found.append(pending)
            elif roll < 0.25:
                reason = blocks[n % len(blocks)]
                known = None if reason is Reason.UNKNOWN_CODE else advocate
                found.append(replace(pending, status=Status.BLOCKED, advocate=known, reason=reason))
            else:
                rewarded = replace(
                    pending,
                    status=Status.COMPLETED,
                    advocate=advocate,
                    advocate_points=500,
                    friend_points=100 * (n % 2),
                    release_at=at + timedelta(days=14) if n % 3 == 0 else None,
                )
                if roll > 0.95:
                    why = Reason.REFUNDED if n % 2 else Reason.CANCELLED
                    rewarded = replace(rewarded, status=Status.REVOKED, reason=why)
                found.append(rewarded)
    return found


def store_referrals(postgres_url: str, records: list[Referral]) -> list[ReferralRow]:
    """Written as the referrals flow's sink writes them; the rows stored, as it gets them."""
    rows: list[ReferralRow] = []
    with psycopg.connect(postgres_url) as conn:
        for i in range(0, len(records), UPSERT_BATCH):
            params = upsert_params(records[i : i + UPSERT_BATCH])
            with conn.cursor(row_factory=class_row(ReferralRow)) as cur:
                cur.execute(UPSERT, params)
                cur.execute(BY_IDS, {"ids": params["ids"]})
                stored = {row.referral_id: row for row in cur.fetchall()}
            conn.commit()
            rows.extend(stored[rid] for rid in params["ids"] if rid in stored)
    if len(rows) != len(records):
        raise RuntimeError(f"{len(rows)} of {len(records)} referrals stored")
    return rows


def delete_referrals(postgres_url: str, rows: Sequence[ReferralRow]) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "DELETE FROM referrals WHERE id = ANY(%s::uuid[])", [[r.referral_id for r in rows]]
        )


def cached(settings: Settings, cache: ReferralCache, rows: Sequence[ReferralRow]) -> int:
    """How many of the rows have a cache entry."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = [cache.key(r.merchant_id, r.referral_id) for r in rows]
        return sum(int(client.exists(*keys[i : i + 1000])) for i in range(0, len(keys), 1000))
    finally:
        client.close()


def wait_filled(settings: Settings, cache: ReferralCache, rows: Sequence[ReferralRow]) -> None:
    """Until the API's background fills of the misses are all in."""
    for _ in range(300):
        if cached(settings, cache, rows) == len(rows):
            return
        time.sleep(0.1)
    raise RuntimeError(f"misses filled {cached(settings, cache, rows)} of {len(rows)} entries")


# ------------------------------------------------------------------------------ the checks


def require_replies(what: str, run: Run, judge: Judge) -> None:
    """Fail the run if any reply is wrong, saying how many were and the first."""
    wrong = [why for i, reply in enumerate(run.replies) if (why := judge(i, reply)) is not None]
    if wrong:
        raise RuntimeError(f"{what}: {len(wrong)} of {len(run.replies)} wrong; first: {wrong[0]}")


def exactly(status: int, expected: Sequence[Any]) -> Judge:
    """The i-th reply must be `status` with `expected[i]` as its JSON body."""

    def judge(i: int, reply: Reply) -> str | None:
        if reply.status != status:
            return f"status {reply.status}, not {status}: {reply.body[:300]!r}"
        got = json.loads(reply.body)
        return None if got == expected[i] else f"got {got}, expected {expected[i]}"

    return judge


def new_codes(key: bytes, advocates: Sequence[int], found: dict[int, dict[str, Any]]) -> Judge:
    """A new advocate's reply: 201, their own code (one derived for them, no other advocate's)
    and link; what it says is kept in `found` for the checks after it."""
    owners: dict[str, int] = {}

    def judge(i: int, reply: Reply) -> str | None:
        advocate = advocates[i]
        if reply.status != 201:
            return f"advocate {advocate}: status {reply.status}, not 201: {reply.body[:300]!r}"
        got = json.loads(reply.body)
        code = got.get("code")
        derived = {advocate_code(key, advocate, attempt) for attempt in range(MAX_ATTEMPTS)}
        url = f"https://{SHOP.domain}/?{LINK_PARAMETER}={code}"
        if (
            set(got) != {"code", "customer_id", "url", "created_at"}
            or code not in derived
            or got["customer_id"] != advocate
            or got["url"] != url
        ):
            return f"advocate {advocate}: got {got}"
        if owners.setdefault(code, advocate) != advocate:
            return f"advocates {owners[code]} and {advocate} were both given {code}"
        found[advocate] = got
        return None

    return judge


def code_counts(rows: Sequence[ReferralRow]) -> dict[str, dict[str, int]]:
    """Each code's referrals by status, every status named (as the API counts them)."""
    counted = Counter((r.code, r.status) for r in rows)
    codes = {r.code for r in rows}
    return {c: {s.value: counted[c, s.value] for s in Status} for c in codes}


# ------------------------------------------------------------------------------ the runs


def backends(postgres_url: str) -> list[int]:
    """The PostgreSQL server processes serving the database (the API's pool), this one's
    connection aside."""
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in found]


def backend_cpu(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds of each process still there."""
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except OSError:  # closed since
            continue
    return found


def timed(
    stack: Stack, requests: list[bytes], connections: int, name: str
) -> tuple[Run, dict[str, float]]:
    """One closed-loop run, and its figures under `name`: rate, latencies, and CPU
    milliseconds per request of the API process and of the PostgreSQL server processes
    serving it (/proc: where the time goes on a shared machine)."""
    api = tree_cpu_seconds(stack.api)
    postgres = backend_cpu(backends(stack.postgres_url))
    run = asyncio.run(closed_loop(stack.api.http_port, requests, connections))
    api = tree_cpu_seconds(stack.api) - api
    after = backend_cpu(set(postgres) | set(backends(stack.postgres_url)))
    postgres_spent = sum(cpu - postgres.get(pid, 0.0) for pid, cpu in after.items())
    summary = run.summary()
    figures = {
        f"{name}_requests": summary["requests"],
        f"{name}_per_s": summary["req_per_s"],
        f"{name}_p50_ms": summary["p50_ms"],
        f"{name}_p99_ms": summary["p99_ms"],
        f"{name}_max_ms": summary["max_ms"],
        f"{name}_api_cpu_ms": 1000 * api / len(requests),
        f"{name}_pg_cpu_ms": 1000 * postgres_spent / len(requests),
    }
    return run, figures


def at_rate(stack: Stack, requests: list[bytes], name: str) -> tuple[Run, dict[str, float]]:
    """The requests sent open loop at RATE req/s; their latencies under `name`_at_rate."""

    async def run() -> Paced:
        pool = await Pool.open(stack.api.http_port, PACED_CONNECTIONS)
        try:
            return await paced(pool, requests, RATE, lambda _i, _reply: None)
        finally:
            await pool.close()

    broker = broker_pid(stack.env.settings)
    broker_cpu = cpu_seconds(broker) if broker else 0.0
    machine = MachineCpu.now()
    sent = asyncio.run(run())
    busy = machine.busy_cores(MachineCpu.now())
    latencies = sorted(r.latency for r in sent.replies)
    figures = {
        f"{name}_at_rate_per_s": sent.rate,
        f"{name}_at_rate_p50_ms": percentile(latencies, 0.50) * 1000,
        f"{name}_at_rate_p99_ms": percentile(latencies, 0.99) * 1000,
        f"{name}_at_rate_max_lag_ms": sent.max_lag * 1000,  # > a few ms: not open loop
        # Every process together, load generator included: how much of the machine is left.
        f"{name}_at_rate_busy_cores": busy,
    }
    if broker:  # the local broker's share (each code request is one record on Kafka)
        spent = cpu_seconds(broker) - broker_cpu
        figures[f"{name}_at_rate_kafka_cpu_ms"] = 1000 * spent / len(requests)
    return Run(sent.replies, len(requests) / RATE), figures


def measure(
    settings: Settings, advocates: int, referral_count: int, requests: int, connections: int
) -> dict[str, float]:
    if referral_count < 2:
        raise ValueError("at least 2 referrals: one to miss, one to hit")
    warm = 4 * connections
    manage = {"Authorization": f"Bearer {SHOP.token(SCOPE_REFERRALS_MANAGE)}", **JSON}
    view = {"Authorization": f"Bearer {SHOP.token(SCOPE_REFERRALS_VIEW)}"}
    key = merchant_key(SECRETS_KEY, SHOP.merchant_id)
    warm_advocates = [FIRST_ADVOCATE + n for n in range(warm)]
    new_advocates = [FIRST_ADVOCATE + warm + n for n in range(advocates)]
    paced_advocates = [FIRST_ADVOCATE + warm + advocates + n for n in range(requests)]
    rng = random.Random(7)
    repeats = [rng.choice(new_advocates) for _ in range(requests)]

    def creates(of: Sequence[int]) -> list[bytes]:
        body = [json.dumps({"customer_id": a}).encode() for a in of]
        return [build_request("POST", CODES, manage, b) for b in body]

    def reads(paths: Sequence[str]) -> list[bytes]:
        return [build_request("GET", p, view) for p in paths]

    figures: dict[str, float] = {}
    with running_stack(settings) as stack:
        port = stack.api.http_port
        links: dict[int, dict[str, Any]] = {}
        warmup = asyncio.run(closed_loop(port, creates(warm_advocates), connections))
        require_replies("code warm-up", warmup, new_codes(key, warm_advocates, links))

        run, found = timed(stack, creates(new_advocates), connections, "referral_code_create")
        require_replies("code creation", run, new_codes(key, new_advocates, links))
        figures |= found
        run, found = at_rate(stack, creates(paced_advocates), "referral_code_create")
        require_replies("code creation at rate", run, new_codes(key, paced_advocates, links))
        figures |= found
        run, found = timed(stack, creates(repeats), connections, "referral_code_repeat")
        require_replies("code repeat", run, exactly(200, [links[a] for a in repeats]))
        figures |= found
        run, found = at_rate(stack, creates(repeats), "referral_code_repeat")
        require_replies("code repeat at rate", run, exactly(200, [links[a] for a in repeats]))
        figures |= found
        announced = records_on(settings, stack.env.topic(REFERRAL_COMMANDS))
        asked_for = warm + advocates + 3 * requests
        if announced != asked_for:
            raise RuntimeError(
                f"{announced} records on {REFERRAL_COMMANDS} for {asked_for} code requests"
            )

        # Referrals over the advocates' codes: a warm-up set, the miss set, the hit set.
        codes = {a: links[a]["code"] for a in new_advocates}
        rows = store_referrals(stack.postgres_url, referrals(codes, warm + referral_count))
        warm_rows, rows = rows[:warm], rows[warm:]
        miss_rows, hit_rows = rows[: referral_count // 2], rows[referral_count // 2 :]
        cache = ReferralCache(stack.env.redis_prefix, CACHE_SECONDS)
        client = redis.Redis.from_url(settings.redis_url)
        try:
            for i in range(0, len(hit_rows), UPSERT_BATCH):
                cache.put_many(client, hit_rows[i : i + UPSERT_BATCH])
        finally:
            client.close()
        if cached(settings, cache, hit_rows) != len(hit_rows):
            raise RuntimeError("the hit set's cache entries were not all written")
        if cached(settings, cache, warm_rows + miss_rows):
            raise RuntimeError("cache entries exist before the first read: misses would be hits")

        counts = code_counts(warm_rows + rows)
        by_code = {
            a: links[a] | {"referrals": counts.get(links[a]["code"], {s.value: 0 for s in Status})}
            for a in new_advocates
        }
        asked = [rng.choice(new_advocates) for _ in range(requests)]
        paths = [f"{CODES}/{links[a]['code']}" for a in asked]
        warmup = asyncio.run(closed_loop(port, reads(paths[:warm]), connections))
        require_replies("code read warm-up", warmup, exactly(200, [by_code[a] for a in asked]))
        run, found = timed(stack, reads(paths), connections, "referral_code_read")
        require_replies("code read", run, exactly(200, [by_code[a] for a in asked]))
        figures |= found
        run, found = at_rate(stack, reads(paths), "referral_code_read")
        require_replies("code read at rate", run, exactly(200, [by_code[a] for a in asked]))
        figures |= found

        def documents(of: Sequence[ReferralRow]) -> tuple[list[str], list[dict[str, Any]]]:
            return [f"/v1/referrals/{r.referral_id}" for r in of], [r.document() for r in of]

        warm_paths, warm_docs = documents(warm_rows)
        warmup = asyncio.run(closed_loop(port, reads(warm_paths), connections))
        require_replies("status warm-up", warmup, exactly(200, warm_docs))
        miss_paths, miss_docs = documents(miss_rows)
        run, found = timed(stack, reads(miss_paths), connections, "referral_status_miss")
        require_replies("status misses", run, exactly(200, miss_docs))
        figures |= found
        wait_filled(settings, cache, miss_rows)

        delete_referrals(stack.postgres_url, hit_rows)  # from here on only the cache has them
        hits = [hit_rows[rng.randrange(len(hit_rows))] for _ in range(requests)]
        hit_paths, hit_docs = documents(hits)
        warmup = asyncio.run(closed_loop(port, reads(hit_paths[:warm]), connections))
        require_replies("status hit warm-up", warmup, exactly(200, hit_docs))
        run, found = timed(stack, reads(hit_paths), connections, "referral_status")
        require_replies("status hits", run, exactly(200, hit_docs))
        figures |= found
        run, found = at_rate(stack, reads(hit_paths), "referral_status")
        require_replies("status hits at rate", run, exactly(200, hit_docs))
        figures |= found
    return {
        "advocates": advocates,
        "referrals": referral_count,
        "connections": connections,
        "cache_seconds": CACHE_SECONDS,
        "commands_on_topic": announced,
        **figures,
    }
