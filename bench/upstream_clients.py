"""What each candidate upstream HTTP client costs the gateway per request: the CPU this
process spends (and the requests/s it reaches) calling the fake upstream with
httpx, httpx2 and a bare asyncio protocol with httptools (bench/loadgen.py), on uvloop,
non-streaming and streaming, at concurrency 1, 16 and 64, with the connection pool
first warmed to 64 connections (the state a gateway is in after any burst).

    .venv/bin/python bench/upstream_clients.py [--requests N]

Each client reads the whole answer and parses the JSON of non-streamed ones. The
fake upstream runs in its own process on a free port of 127.0.0.1 and is stopped at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import httpx2
import uvloop
from loadgen import Conn, post_bytes  # bench/ is on sys.path (run as a script)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PROMPT = (
    "Please answer with a short friendly greeting so that this benchmark can "
    "measure what the gateway adds"
)
HEADERS = {"authorization": "Bearer bench-upstream-key", "content-type": "application/json"}


def body(stream: bool) -> bytes:
    data: dict = {
        "model": "bench-upstream",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if stream:
        data.update(stream=True, stream_options={"include_usage": True})
    return json.dumps(data).encode()


async def with_httpx(mod, port: int, stream: bool, conc: int, n: int) -> tuple[float, float]:
    limits = mod.Limits(max_connections=1000, max_keepalive_connections=256, keepalive_expiry=30)
    url, data = f"http://{HOST}:{port}/v1/chat/completions", body(stream)
    async with mod.AsyncClient(limits=limits, timeout=30) as client:

        async def one() -> None:
            request = client.build_request("POST", url, content=data, headers=HEADERS)
            response = await client.send(request, stream=stream)
            if stream:
                async for _ in response.aiter_raw():
                    pass
                await response.aclose()
            else:
                json.loads(response.content)

        await asyncio.gather(*(one() for _ in range(64)))  # open 64 pooled connections
        return await measure([one] * conc, n)


async def with_raw(port: int, stream: bool, conc: int, n: int) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    raw = post_bytes(HOST, port, "/v1/chat/completions", body(stream), HEADERS)
    conns = [(await loop.create_connection(Conn, HOST, port))[1] for _ in range(conc)]

    def caller(conn: Conn):
        async def one() -> None:
            conn.keep = []
            await conn.request(raw)
            if not stream:
                json.loads(b"".join(conn.keep))

        return one

    try:
        return await measure([caller(c) for c in conns], n)
    finally:
        for conn in conns:
            conn.transport.close()


async def measure(callers, n: int) -> tuple[float, float]:
    """(ms of this process's CPU per request, requests/s) for n requests."""
    per = n // len(callers)

    async def run(one) -> None:
        for _ in range(per):
            await one()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(run(one) for one in callers))
    done = per * len(callers)
    return ((time.process_time() - cpu) / done * 1000, done / (time.perf_counter() - wall))


async def compare(port: int, n: int) -> None:
    print("| mode | conc | client | CPU ms/request | requests/s |\n|---|---|---|---|---|")
    for stream in (False, True):
        for conc in (1, 16, 64):
            runs = (
                ("httpx", with_httpx(httpx, port, stream, conc, n)),
                ("httpx2", with_httpx(httpx2, port, stream, conc, n)),
                ("asyncio+httptools", with_raw(port, stream, conc, n)),
            )
            for name, run in runs:  # coroutines: each runs only when awaited, in turn
                cpu, rps = await run
                print(
                    f"| {'stream' if stream else 'json'} | {conc} | {name} | {cpu:.3f} | "
                    f"{rps:.0f} |",
                    flush=True,
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per client and row")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    fake = subprocess.Popen(
        [sys.executable, "manage.py", "fakeupstream", "--host", HOST, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for _ in range(100):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        uvloop.run(compare(port, args.requests))
    except KeyboardInterrupt:
        return 130
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
