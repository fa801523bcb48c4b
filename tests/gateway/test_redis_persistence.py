"""Served usage waits in Redis until the usage worker writes it: Tollgate checks at
start-up that Redis keeps an append-only file, and refuses to run in production
without one. Each test starts its own Redis on a free port (never the shared one)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.runtime import redis_persistence_check

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def start(appendonly: str) -> str:
        port = _free_port()
        process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                appendonly,
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        for line in process.stdout:  # until it says it accepts connections
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError("redis-server exited before it was ready")
        url = f"redis://127.0.0.1:{port}/0"
        return url

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def _check(url: str) -> bool:
    async def run() -> bool:
        client = aioredis.Redis.from_url(url)
        try:
            return await redis_persistence_check(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_an_append_only_redis_passes(own_redis, settings):
    settings.TOLLGATE_PRODUCTION = True

    assert _check(own_redis("yes")) is True


def test_a_volatile_redis_is_refused_in_production(own_redis, settings):
    settings.TOLLGATE_PRODUCTION = True
    settings.TOLLGATE_REDIS_VOLATILE_OK = False

    with pytest.raises(RuntimeError, match="appendonly yes"):
        _check(own_redis("no"))


def test_a_volatile_redis_is_a_warning_elsewhere_or_when_accepted(own_redis, settings, caplog):
    url = own_redis("no")
    settings.TOLLGATE_PRODUCTION = False
    assert _check(url) is False
    settings.TOLLGATE_PRODUCTION = True
    settings.TOLLGATE_REDIS_VOLATILE_OK = True
    assert _check(url) is False
    assert "no append-only persistence" in caplog.text
