"""ScriptBatch: the Lua calls made in one turn of the event loop go to Redis as one
EVALSHA, and each caller still gets its own result or its own error."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from billing.credit import ScriptBatch

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture
def redis_url(settings) -> str:
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    return settings.REDIS_URL


def evalsha_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return stats.get("cmdstat_evalsha", {}).get("calls", 0)


def test_calls_of_one_loop_turn_share_one_evalsha_and_get_their_own_results(redis_url):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        batch = ScriptBatch(client, INCR)
        await batch(["warm"], [1])  # loads the script
        before = evalsha_calls(redis_url)
        results = await asyncio.gather(*(batch([f"k{n % 3}"], [n]) for n in range(10)))
        after = evalsha_calls(redis_url)
        await client.aclose()
        return results, after - before

    results, evalshas = asyncio.run(main())
    assert evalshas == 1
    # Each key's running total, in call order: k0 gets 0, 3, 6, 9; k1 1, 4, 7; k2 2, 5, 8.
    assert results == [0, 1, 2, 3, 5, 7, 9, 12, 15, 18]


def test_a_failing_call_fails_alone(redis_url):
    redis.Redis.from_url(redis_url).set("text", "not a number")

    async def main():
        client = aioredis.Redis.from_url(redis_url)
        batch = ScriptBatch(client, INCR)
        outcomes = await asyncio.gather(
            batch(["a"], [1]), batch(["text"], [1]), batch(["a"], [2]), return_exceptions=True
        )
        await client.aclose()
        return outcomes

    first, failed, third = asyncio.run(main())
    assert (first, third) == (1, 3)
    assert isinstance(failed, ResponseError)
    assert "not an integer" in str(failed)


def test_a_caller_that_left_does_not_disturb_the_others(redis_url):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        batch = ScriptBatch(client, INCR)
        leaving = batch(["b"], [5])
        staying = batch(["b"], [1])
        leaving.cancel()
        result = await staying
        await client.aclose()
        return result

    # The cancelled caller's call was still sent (it cannot be taken back): 5 + 1.
    assert asyncio.run(main()) == 6


def test_redis_unreachable_fails_every_call_of_the_batch():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        batch = ScriptBatch(client, INCR)
        outcomes = await asyncio.gather(
            batch(["a"], [1]), batch(["b"], [1]), return_exceptions=True
        )
        await client.aclose()
        return outcomes

    outcomes = asyncio.run(main())
    assert all(isinstance(o, redis.exceptions.ConnectionError) for o in outcomes)
