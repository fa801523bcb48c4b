"""Deployment health shared by every worker: rest periods (cooldowns) and a circuit
breaker that tracks the upstream, not its callers.

What counts: only failures the upstream caused (connection errors, timeouts, 5xx,
overloaded), never an upstream 4xx (the request's fault), a rate limit (a rest, not a
fault) or the gateway's own error; a connection failure counts only once the same
deployment failed again on an immediate retry (attempts.py). Requests are checked for
shape before they go upstream (protocols/shapes.py), so a malformed request cannot
provoke an upstream 5xx either.

When it trips: each worker keeps the last minute of outcomes per deployment (successes
too). The breaker opens when at least three failures make up at least half of them,
and then
- for every organisation, if the failures came from two organisations or more;
- for that organisation alone (the `@o<id>` scoped key) if they all came from one: one
  tenant's traffic can never take a shared deployment away from the others.
It rests 30 s, doubling on each re-trip up to 5 minutes. When a rest ends, one request
probes the deployment (half-open) and its success closes the breaker; when every
deployment of a model rests, one request at a time still probes the soonest back
(planning.candidates_usable) instead of refusing all traffic.

A deployment also rests when its upstream asks (`retry-after` on 429/503/529), for
everyone: that is the upstream speaking about itself or about the shared credential.

Rests are written to Redis (`tg:rest:<health key>` with the end time) and announced on
the invalidation channel, so each worker keeps a local mirror and the hot path reads
only memory. Without Redis the same state lives in this process. Policy and reasons:
docs/decisions.md ("Deployment health").
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from gateway.invalidation import CHANNEL

log = logging.getLogger(__name__)

FAILURE_THRESHOLD = 3
FAILURE_SHARE = 0.5  # of the window's outcomes
FAILURE_WINDOW_SECONDS = 60
WINDOW_OUTCOMES = 200  # kept per deployment and worker
BREAKER_REST_SECONDS = 30.0
BREAKER_REST_MAX_SECONDS = 300.0
PROBE_SECONDS = 10


def scoped(key: str, organisation_id: int) -> str:
    """The health key of one organisation's use of a deployment."""
    return f"{key}@o{organisation_id}"


class DeploymentHealth:
    def __init__(self, redis: Any = None) -> None:
        """`redis`: a redis.asyncio client shared by every worker, or None (this
        process only)."""
        self._r = redis
        self.rest_until: dict[str, float] = {}  # health key -> unix time
        # health key -> recent (time, ok, organisation id), this worker's view
        self._outcomes: dict[str, deque[tuple[float, bool, int]]] = {}
        self._trips: dict[str, int] = {}  # breaker openings since the last success
        self._probe_until: dict[str, float] = {}

    def reset(self) -> None:
        self.rest_until.clear()
        self._outcomes.clear()
        self._trips.clear()
        self._probe_until.clear()

    # --- reading (memory only) --------------------------------------------------------
    def resting(self, key: str, now: float | None = None) -> float:
        """Seconds left of this key's rest (0 when it may be used)."""
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

    # --- writing ----------------------------------------------------------------------
    def _observe(self, key: str, ok: bool, organisation_id: int, now: float) -> None:
        window = self._outcomes.get(key)
        if window is None:
            window = self._outcomes[key] = deque(maxlen=WINDOW_OUTCOMES)
        window.append((now, ok, organisation_id))

    async def record_failure(
        self,
        key: str,
        *,
        organisation_id: int,
        rest_seconds: float | None = None,
        count: bool = True,
    ) -> float:
        """Note a failure the upstream caused (unless `count` is false: then only the
        upstream's own `retry-after` applies); open the breaker, for everyone or for
        this organisation, when the window says so. Returns the rest applied."""
        now = time.time()
        rest = rest_seconds or 0.0
        if rest:
            await self._rest(key, now + rest)
        if not count:
            return rest
        self._observe(key, False, organisation_id, now)
        recent = [o for o in self._outcomes[key] if o[0] > now - FAILURE_WINDOW_SECONDS]
        failed = [o for o in recent if not o[1]]
        if len(failed) < FAILURE_THRESHOLD or len(failed) < FAILURE_SHARE * len(recent):
            return rest
        organisations = {o[2] for o in failed}
        target = key if len(organisations) > 1 else scoped(key, organisation_id)
        trips = self._trips.get(target, 0)
        breaker = min(BREAKER_REST_SECONDS * (2**trips), BREAKER_REST_MAX_SECONDS)
        self._trips[target] = trips + 1
        if target != key:
            # Forget this organisation's failures: another organisation's next one must
            # not add up with them to rest the deployment for everyone.
            self._outcomes[key] = deque(
                (o for o in self._outcomes[key] if o[1] or o[2] != organisation_id),
                maxlen=WINDOW_OUTCOMES,
            )
        log.warning(
            "deployment %s: %s of the last %s calls failed (%s): resting %.0f s",
            target,
            len(failed),
            len(recent),
            "several organisations" if target == key else "one organisation",
            breaker,
        )
        await self._rest(target, now + breaker)
        return max(rest, breaker)

    async def record_success(self, key: str, *, organisation_id: int) -> None:
        now = time.time()
        self._observe(key, True, organisation_id, now)
        if not self._trips and not self.rest_until:
            return  # the common case: nothing to close
        own = scoped(key, organisation_id)
        closed = [k for k in (key, own) if k in self._trips or self.resting(k, now)]
        for name in closed:
            self._trips.pop(name, None)
            self._probe_until.pop(name, None)
            # A probe made while the rest still ran (every deployment rested) ends it.
            self.rest_until.pop(name, None)
        if closed and self._r is not None:
            pipe = self._r.pipeline(transaction=False)
            pipe.delete(*(f"tg:probe:{k}" for k in closed), *(f"tg:rest:{k}" for k in closed))
            for name in closed:
                pipe.publish(CHANNEL, f"rest:{name}=0")
            await pipe.execute()

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
        """A rest announced by another worker: `<health key>=<unix time>` (0: lifted)."""
        key, _, until = value.partition("=")
        try:
            until_f = float(until)
        except ValueError:
            return
        if until_f == 0:  # lifted: a probe succeeded
            self.rest_until.pop(key, None)
            self._trips.pop(key, None)
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
