"""A lean HTTP/1.1 load generator for the benchmarks: one keep-alive connection per
concurrent client, requests written as prepared bytes, responses parsed by httptools
(C), on whatever loop runs it (the benchmarks use uvloop). It costs a few tens of
microseconds of CPU per request, so on a 2-core machine it leaves nearly all the CPU
to the servers it measures.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httptools


class Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.first = 0.0
        self.keep: list[bytes] | None = None  # the body of a sampled response

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.connection_lost(exc)

    def connection_lost(self, exc) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    def on_body(self, body: bytes) -> None:
        if not self.first:
            self.first = time.perf_counter()
        if self.keep is not None:
            self.keep.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    async def request(self, raw: bytes) -> tuple[int, float, float]:
        """Send one request; (status, seconds to the last byte, to the first body byte)."""
        self.first = 0.0
        self.waiter = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        self.transport.write(raw)
        status = await self.waiter
        end = time.perf_counter()
        return status, end - start, (self.first or end) - start


@dataclass
class Phase:
    """One measured run: a target at a concurrency, and what was seen."""

    target: str
    stream: bool
    concurrency: int
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    ttfbs: list[float] = field(default_factory=list)
    sent: int = 0
    errors: int = 0
    error_statuses: dict = field(default_factory=dict)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    sample: bytes = b""  # the body of the first response, to check what was served

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def post_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def load(
    phase: Phase, host: str, port: int, raw: bytes, total: int, seconds: float, stagger: float = 0.0
) -> None:
    """Send `raw` `total` times (or until `seconds` pass) over `phase.concurrency`
    connections, each sending its next request as soon as the last one completed.
    With `stagger` (seconds), client i starts i/concurrency of it late: against an
    upstream that always takes the same time, clients started together would stay in
    lock step and arrive in bursts, which no real traffic does."""
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(Conn, host, port))[1] for _ in range(phase.concurrency)]
    conns[0].keep = []
    left = [total]
    deadline = time.perf_counter() + seconds

    async def client(conn: Conn, delay: float) -> None:
        await asyncio.sleep(delay)
        while left[0] > 0 and time.perf_counter() < deadline:
            left[0] -= 1
            phase.sent += 1
            status, latency, ttfb = await conn.request(raw)
            if status == 200:
                phase.latencies.append(latency)
                phase.ttfbs.append(ttfb)
            else:
                phase.errors += 1
                phase.error_statuses[status] = phase.error_statuses.get(status, 0) + 1
            if conn.keep is not None:
                phase.sample, conn.keep = b"".join(conn.keep), None

    started = time.perf_counter()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(client(c, i * stagger / len(conns)) for i, c in enumerate(conns))),
            seconds + 60,
        )
    finally:
        phase.wall = time.perf_counter() - started
        for conn in conns:
            conn.transport.close()


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.5) - 1))] * 1000
