"""Deployment health shared by every worker: rest periods (cooldowns) and a circuit
breaker.

A deployment rests when an upstream asks it to (`retry-after` on 429/503/529: the
least time it rests) or when it keeps failing: three failures within a minute open
the breaker for 30 s, doubling on each re-trip up to 5 minutes. When a rest ends, one
request probes the deployment (half-open); its success closes the breaker.

Rests are written to Redis (`tg:rest:<health key>` with the end time) and announced on
the invalidation channel, so each worker keeps a local mirror and the hot path reads
only memory. Without Redis the same state lives in this process.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gateway.invalidation import CHANNEL

log = logging.getLogger(__name__)

FAILURE_THRESHOLD = 3
FAILURE_WINDOW_SECONDS = 60
BREAKER_REST_SECONDS = 30.0
BREAKER_REST_MAX_SECONDS = 300.0
PROBE_SECONDS = 10

_FAIL = """
local fails = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return fails
"""


class DeploymentHealth:
    def __init__(self, redis: Any = None) -> None:
        """`redis`: a redis.asyncio client shared by every worker, or None (this
        process only)."""
        self._r = redis
        self._fail_script = redis.register_script(_FAIL) if redis is not None else None
        self.rest_until: dict[str, float] = {}  # health key -> unix time
        self._fails: dict[str, list[float]] = {}  # local mode, and "has failed" hints
        self._trips: dict[str, int] = {}  # breaker openings since the last success
        self._probe_until: dict[str, float] = {}

    def reset(self) -> None:
        self.rest_until.clear()
        self._fails.clear()
        self._trips.clear()
        self._probe_until.clear()

    # --- reading (memory only) --------------------------------------------------------
    def resting(self, key: str, now: float | None = None) -> float:
        """Seconds left of this deployment's rest (0 when it may be used)."""
        until = self.rest_until.get(key)
        if until is None:
            return 0.0
        left = until - (now or time.time())
        if left <= 0:
            return 0.0
        return left

    def needs_probe(self, key: str) -> bool:
        return key in self._trips and self.resting(key) == 0

    async def probe_acquire(self, key: str) -> bool:
        """Half-open: only one request at a time may test a deployment whose breaker
        opened; the others treat it as still resting."""
        if self._r is not None:
            return bool(await self._r.set(f"tg:probe:{key}", 1, nx=True, ex=PROBE_SECONDS))
        now = time.time()
        if self._probe_until.get(key, 0) > now:
            return False
        self._probe_until[key] = now + PROBE_SECONDS
        return True

    # --- writing (failure paths only) -------------------------------------------------
    async def record_failure(
        self, key: str, *, rest_seconds: float | None = None, count: bool = True
    ) -> float:
        """Count a failure (unless `count` is false: a rate limit is not a fault);
        rest the deployment if the upstream asked or the breaker trips. Returns the
        rest applied (0 if none)."""
        now = time.time()
        if not count:
            if rest_seconds:
                await self._rest(key, now + rest_seconds)
            return rest_seconds or 0.0
        if self._fail_script is not None:  # with Redis
            fails = int(
                await self._fail_script(keys=[f"tg:fails:{key}"], args=[FAILURE_WINDOW_SECONDS])
            )
            self._fails[key] = [now]
        else:
            recent = [t for t in self._fails.get(key, []) if t > now - FAILURE_WINDOW_SECONDS]
            recent.append(now)
            self._fails[key] = recent
            fails = len(recent)
        rest = rest_seconds or 0.0
        if fails >= FAILURE_THRESHOLD:
            trips = self._trips.get(key, 0)
            breaker = min(BREAKER_REST_SECONDS * (2**trips), BREAKER_REST_MAX_SECONDS)
            self._trips[key] = trips + 1
            rest = max(rest, breaker)
            log.warning("deployment %s failed %s times: resting %.0f s", key, fails, rest)
        if rest > 0:
            await self._rest(key, now + rest)
        return rest

    async def record_success(self, key: str) -> None:
        if key not in self._fails and key not in self._trips:
            return  # the common case costs nothing
        self._fails.pop(key, None)
        self._trips.pop(key, None)
        self._probe_until.pop(key, None)
        if self._r is not None:
            await self._r.delete(f"tg:fails:{key}", f"tg:probe:{key}")

    async def _rest(self, key: str, until: float) -> None:
        if until <= self.rest_until.get(key, 0):
            return
        self.rest_until[key] = until
        if self._r is not None:
            ttl = max(int(until - time.time()) + 1, 1)
            pipe = self._r.pipeline(transaction=False)
            pipe.set(f"tg:rest:{key}", repr(until), ex=ttl)
            pipe.publish(CHANNEL, f"rest:{key}={until!r}")
            await pipe.execute()

    # --- mirroring --------------------------------------------------------------------
    def apply(self, value: str) -> None:
        """A rest announced by another worker: `<health key>=<unix time>`."""
        key, _, until = value.partition("=")
        try:
            until_f = float(until)
        except ValueError:
            return
        if until_f > self.rest_until.get(key, 0):
            self.rest_until[key] = until_f
            self._trips.setdefault(key, 0)

    async def load(self) -> None:
        """At start: the rests other workers announced before this one listened."""
        if self._r is None:
            return
        async for name in self._r.scan_iter(match="tg:rest:*", count=500):
            value = await self._r.get(name)
            if value is not None:
                key = name.decode().removeprefix("tg:rest:")
                self.apply(f"{key}={value.decode()}")
