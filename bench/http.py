"""A small HTTP/1.1 load generator: keep-alive connections over asyncio streams, requests
built as bytes beforehand, each reply timed with time.perf_counter.

On a 2-core machine the client shares the CPU with the API it measures; httpx spends more CPU
per request than the API does, so it would mostly measure itself. This client spends one write,
two reads and a header scan per request. It speaks only what the API answers: a status line,
headers and a Content-Length body (no chunked replies, no pipelining).
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

HOST = "127.0.0.1"


class ProtocolError(RuntimeError):
    """A reply this client does not understand."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    sent: float  # perf_counter when the request was written
    received: float  # perf_counter when the whole reply had been read

    @property
    def latency(self) -> float:
        return self.received - self.sent


def build_request(
    method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        raise ProtocolError(f"reply without Content-Length: {head[:200]!r}")
    start = at + len(b"\r\ncontent-length:")
    return int(head[start : head.index(b"\r\n", start)])


class Connection:
    """One keep-alive connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port, limit=2**20)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> Reply:
        sent = time.perf_counter()
        self._writer.write(request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 "):
            raise ProtocolError(f"not an HTTP/1.1 reply: {head[:200]!r}")
        body = await self._reader.readexactly(_content_length(head))
        return Reply(int(head[9:12]), body, sent, time.perf_counter())

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


class Pool:
    """Idle connections: a request takes one, and gives it back with the reply."""

    def __init__(self, connections: list[Connection]) -> None:
        self.size = len(connections)
        self._all = connections
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        for connection in connections:
            self._idle.put_nowait(connection)

    @classmethod
    async def open(cls, port: int, size: int) -> Pool:
        return cls([await Connection.open(port) for _ in range(size)])

    @property
    def busy(self) -> int:
        return self.size - self._idle.qsize()

    async def exchange(self, request: bytes) -> Reply:
        connection = await self._idle.get()
        try:
            return await connection.exchange(request)
        finally:
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        for connection in self._all:
            await connection.close()


async def closed_loop(port: int, requests: Sequence[bytes], connections: int) -> Run:
    """Each connection sends its next request as soon as its last reply is in."""
    pool = await Pool.open(port, connections)
    replies: list[Reply | None] = [None] * len(requests)
    pending = iter(range(len(requests)))  # shared: each worker takes the next index

    async def worker() -> None:
        for i in pending:
            replies[i] = await pool.exchange(requests[i])

    started = time.perf_counter()
    try:
        with no_collections():
            await asyncio.gather(*(worker() for _ in range(connections)))
    finally:
        await pool.close()
    return Run([r for r in replies if r is not None], time.perf_counter() - started)


async def paced(
    pool: Pool, requests: Sequence[bytes], rate: float, on_reply: Callable[[int, Reply], None]
) -> Paced:
    """Open loop: request i is due at start + i / rate, whether earlier replies are in or not.

    A request leaves late only if this loop falls behind or every connection of `pool` is
    busy; `Paced.max_lag` says by how much, so a run that was not open loop shows it.
    """
    start = time.perf_counter() + 0.01
    due = [start + i / rate for i in range(len(requests))]
    replies: list[Reply | None] = [None] * len(requests)
    in_flight: set[asyncio.Task[None]] = set()

    async def send(i: int) -> None:
        replies[i] = reply = await pool.exchange(requests[i])
        on_reply(i, reply)

    with no_collections():
        for i in range(len(requests)):
            delay = due[i] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(i))
            in_flight.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
    return Paced([r for r in replies if r is not None], due)


@dataclass
class Paced:
    replies: list[Reply]  # in the order they were due
    due: list[float]

    @property
    def rate(self) -> float:
        """Requests per second actually written, first to last."""
        sent = [r.sent for r in self.replies]
        return (len(sent) - 1) / (max(sent) - min(sent))

    @property
    def max_lag(self) -> float:
        return max(r.sent - d for r, d in zip(self.replies, self.due, strict=True))


@dataclass
class Run:
    replies: list[Reply]
    seconds: float  # wall time, first request written to last reply read

    @property
    def rate(self) -> float:
        return len(self.replies) / self.seconds

    def statuses(self) -> Counter[int]:
        return Counter(r.status for r in self.replies)

    def summary(self) -> dict[str, float]:
        latencies = sorted(r.latency for r in self.replies)
        return {
            "requests": len(self.replies),
            "req_per_s": self.rate,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": latencies[-1] * 1000,
        }


@contextmanager
def no_collections() -> Iterator[None]:
    """No garbage collection in this process meanwhile. A full collection walks every reply
    kept so far (tens of thousands of objects): a pause of tens of milliseconds during which
    replies wait unread, which would be counted as the server's latency. The few cycles a run
    makes (finished tasks) are collected once it is over."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of all values at or below it."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
