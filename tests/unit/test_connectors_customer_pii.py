"""The customers' personal data writer, on a fake write: gathered, deduplicated, batched,
written once per change, and an outage counted without ever reaching the caller."""

from __future__ import annotations

import asyncio

import psycopg
from prometheus_client import REGISTRY

from connectors.customer_pii import MAX_BATCH, Owned, PiiWriter
from loyalty.pii import PersonalData


def data(customer: int, email: str | None = "a@b.c") -> PersonalData:
    return PersonalData(customer, email, None if email is None else f"h1:{email}", None, None)


class Writes:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[Owned]] = []
        self.fail = fail

    async def __call__(self, batch: list[Owned]) -> None:
        if self.fail:
            raise psycopg.OperationalError("connection refused")
        self.batches.append(batch)


def run(writer: PiiWriter, *kept: tuple[str, PersonalData]) -> None:
    async def go() -> None:
        for merchant, item in kept:
            writer.keep(merchant, item)
        await writer.close()

    asyncio.run(go())


def test_the_latest_data_per_customer_is_written_in_batches() -> None:
    writes = Writes()
    kept = [("m", data(n)) for n in range(MAX_BATCH + 10)]
    run(PiiWriter(writes, delay=10), *kept, ("m", data(3, "new@b.c")))

    assert [len(b) for b in writes.batches] == [MAX_BATCH, 10]
    written = {(m, d.customer): d for batch in writes.batches for m, d in batch}
    assert written[("m", 3)].email == "new@b.c"


def test_data_written_before_is_not_written_again() -> None:
    writes = Writes()

    async def go() -> None:
        writer = PiiWriter(writes, delay=0)
        writer.keep("m", data(1))
        await writer.flush()
        writer.keep("m", data(1))  # the same again: nothing to write
        writer.keep("other", data(1))  # another merchant's customer 1
        await writer.close()

    asyncio.run(go())

    assert [[(m, d.customer) for m, d in b] for b in writes.batches] == [[("m", 1)], [("other", 1)]]


def test_the_writer_writes_by_itself_after_its_delay() -> None:
    writes = Writes()

    async def go() -> None:
        writer = PiiWriter(writes, delay=0.01)
        writer.keep("m", data(1))
        for _ in range(200):
            if writes.batches:
                return
            await asyncio.sleep(0.01)

    asyncio.run(go())

    assert len(writes.batches) == 1


def test_an_outage_is_counted_and_never_raised() -> None:
    before = REGISTRY.get_sample_value("loyalnest_customer_pii_errors_total") or 0.0

    run(PiiWriter(Writes(fail=True), delay=10), ("m", data(1)), ("m", data(2)))

    assert REGISTRY.get_sample_value("loyalnest_customer_pii_errors_total") == before + 2
