"""Per-process gateway state: the catalog snapshot, the key cache, the shared upstream
client, the credit store, the usage queue and its flusher, and the invalidation
listener. Started and stopped by the ASGI lifespan (config/asgi.py).

Lookups on the hot path are answered from memory; a miss falls through to Redis and
then to the database, whose sync ORM calls run on a small dedicated thread pool so
they never block the event loop.

`TOLLGATE_STATE_BACKEND` picks where credit holds, rate-limit counters and the usage
queue live: "redis"
(shared by every worker; the default when REDIS_URL is set) or "local" (this process's
memory, the embedded single-process default). Both sides implement the same
interfaces (billing.credit.CreditStore, gateway.ratelimit.RateLimitStore,
gateway.usage.UsageQueue).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from redis.exceptions import RedisError

from billing.credit import CreditStore, LocalCreditStore, RedisCreditStore
from gateway.admission import KeyInfo, key_info_load
from gateway.catalog import CatalogSnapshot, catalog_snapshot_load
from gateway.health import DeploymentHealth
from gateway.protocols.errors import GatewayError
from gateway.ratelimit import LocalRateLimitStore, RateLimitStore, RedisRateLimitStore
from gateway.upstream import Upstream
from gateway.usage import LocalUsageQueue, RedisUsageQueue, UsageFlusher, UsageQueue
from gateway.usage_event import UsageEvent

T = TypeVar("T")

log = logging.getLogger(__name__)

NEGATIVE_TTL = 5.0

# Store a key's record only if no invalidation happened since it was read.
_KEY_FILL = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


def _db_call(fn: Callable[..., T], *args: Any) -> T:
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


class Runtime:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tg-db")
        self._keys: dict[str, tuple[KeyInfo | None, float]] = {}
        self._key_generation = 0  # bumped by every key invalidation in this process
        self._byok: dict[int, tuple[dict[int, tuple[str, str]], float]] = {}
        self._snapshot: CatalogSnapshot | None = None
        self._catalog_generation = 0
        self._snapshot_loading: asyncio.Future[CatalogSnapshot] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.redis: Any = None  # redis.asyncio client with the "redis" backend
        self.upstream: Upstream | None = None
        self.credit: CreditStore = LocalCreditStore(self.run_db)
        self.usage: UsageQueue = LocalUsageQueue()
        self.ratelimit: RateLimitStore = LocalRateLimitStore()
        self.flusher: UsageFlusher | None = None
        self.health = DeploymentHealth()
        self.started = False
        # Called with every usage event once it is settled and queued (observers such
        # as metrics; they must be quick and must not raise).
        self.on_recorded: list[Callable[[UsageEvent], None]] = []

    def recorded(self, event: UsageEvent) -> None:
        for listener in self.on_recorded:
            try:
                listener(event)
            except Exception:
                log.exception("usage event listener failed")

    # --- life cycle ----------------------------------------------------------------
    async def start(self) -> None:
        if self.started:
            return
        from gateway.invalidation import sync_redis

        self.upstream = Upstream()
        sync_client = sync_redis() if settings.TOLLGATE_STATE_BACKEND == "redis" else None
        if sync_client is not None:
            import redis.asyncio as aioredis

            # A blocking pool: under a burst, requests wait briefly for a connection
            # instead of failing with "Too many connections".
            pool = aioredis.BlockingConnectionPool.from_url(
                settings.REDIS_URL,
                max_connections=settings.TOLLGATE_REDIS_MAX_CONNECTIONS,
                timeout=10,
            )
            self.redis = aioredis.Redis(connection_pool=pool)
            await redis_persistence_check(self.redis)
            self._key_fill = self.redis.register_script(_KEY_FILL)
            self.health = DeploymentHealth(self.redis)
            await self.health.load()
            self.credit = RedisCreditStore(self.redis, sync_client, self.run_db)
            self.usage = RedisUsageQueue(self.redis, sync_client)
            self.ratelimit = RedisRateLimitStore(self.redis)
            self._tasks.append(asyncio.create_task(self._listen()))
        else:
            self.credit = LocalCreditStore(self.run_db)
            self.usage = LocalUsageQueue()
            self.ratelimit = LocalRateLimitStore()
        self.flusher = UsageFlusher(self.usage, self.credit.flushed)
        if settings.TOLLGATE_USAGE_FLUSHER == "inprocess":
            self.flusher.start()
        self.started = True

    async def stop(self) -> None:
        if not self.started:
            return
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self.flusher is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.flusher.stop)
        await asyncio.get_running_loop().run_in_executor(None, self._close_db_threads)
        if self.upstream is not None:
            await self.upstream.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        self.started = False

    def _close_db_threads(self) -> None:
        """Close the database connection each pool thread holds (a connection belongs
        to its thread): one task per thread, held at a barrier so none takes two."""
        workers = self._executor._max_workers
        barrier = threading.Barrier(workers)

        def close() -> None:
            from django.db import connections

            connections.close_all()
            barrier.wait(timeout=10)

        for future in [self._executor.submit(close) for _ in range(workers)]:
            future.result(timeout=15)

    def caches_clear(self) -> None:
        """Forget every cached key, provider key and catalog snapshot: the next request
        reads them again (as after losing the invalidation channel)."""
        self._key_generation += 1
        self._keys.clear()
        self._byok.clear()
        self._catalog_generation += 1
        self._snapshot = None

    def drain(self) -> None:
        """Write every queued usage event now (shutdown, and tests)."""
        if self.flusher is not None:
            self.flusher.drain()

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, _db_call, fn, *args)

    # --- invalidation --------------------------------------------------------------
    def apply_invalidation(self, kind: str, value: str) -> None:
        if kind == "key":
            self._key_generation += 1
            self._keys.pop(value, None)
        elif kind == "catalog":
            self._catalog_generation += 1
            self._snapshot = None
        elif kind == "byok":
            self._byok.pop(int(value), None)
        elif kind == "rest":
            self.health.apply(value)
        elif kind == "credit":
            self.credit.invalidate([int(value)])

    async def _listen(self) -> None:
        from gateway.invalidation import CHANNEL

        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                # Anything may have changed while we were not listening.
                self.caches_clear()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    kind, _, value = message["data"].decode().partition(":")
                    if kind != "credit":  # the publisher already reset shared credit
                        self.apply_invalidation(kind, value)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("invalidation listener lost Redis; reconnecting")
                await asyncio.sleep(1)

    # --- lookups ------------------------------------------------------------------
    async def catalog(self) -> CatalogSnapshot:
        snapshot = self._snapshot
        if snapshot is not None:
            if time.monotonic() - snapshot.loaded_at > settings.TOLLGATE_CACHE_TTL_SECONDS:
                self._catalog_reload()  # serve this one; the next request gets the new
            return snapshot
        return await self._catalog_reload()

    def _catalog_reload(self) -> asyncio.Future[CatalogSnapshot]:
        if self._snapshot_loading is None or self._snapshot_loading.done():
            self._snapshot_loading = asyncio.ensure_future(self._load_snapshot())
        return self._snapshot_loading

    async def _load_snapshot(self) -> CatalogSnapshot:
        while True:
            generation = self._catalog_generation
            snapshot = await self.run_db(catalog_snapshot_load)
            if generation == self._catalog_generation:
                self._snapshot = snapshot
                return snapshot
            # The catalog changed while it was being read: read it again, so an
            # older copy never replaces a newer invalidation.

    async def key_info(self, secret_hash: str) -> KeyInfo | None:
        """Memory, then Redis, then the database. A fill that raced with a revocation
        (read before it, stored after it) is discarded, here and in Redis, by comparing
        generation counters that every invalidation bumps."""
        now = time.monotonic()
        cached = self._keys.get(secret_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        local_generation = self._key_generation
        info: KeyInfo | None = None
        found = False
        shared_generation: bytes | None = None
        try:
            if self.redis is not None:
                raw, shared_generation = await self.redis.mget(
                    f"tg:key:{secret_hash}", f"tg:keygen:{secret_hash}"
                )
                if raw is not None:
                    info, found = KeyInfo.loads(raw), True
            if not found:
                info = await self.run_db(key_info_load, secret_hash)
                if info is not None and self.redis is not None:
                    await self._key_fill(
                        keys=[f"tg:key:{secret_hash}", f"tg:keygen:{secret_hash}"],
                        args=[
                            info.dumps(),
                            settings.TOLLGATE_CACHE_TTL_SECONDS * 10,
                            shared_generation or b"0",
                        ],
                    )
        except DEPENDENCY_ERRORS as exc:
            # Stale-if-error: a key seen before keeps working while the database or
            # Redis is away (a revocation always removes it from memory first).
            if cached is not None and cached[0] is not None:
                log.warning("key lookup failed (%s): serving the cached key", exc)
                self._keys[secret_hash] = (cached[0], now + STALE_RETRY_SECONDS)
                return cached[0]
            raise dependency_unavailable(exc) from exc
        if self._key_generation == local_generation:
            ttl = settings.TOLLGATE_CACHE_TTL_SECONDS if info is not None else NEGATIVE_TTL
            self._keys[secret_hash] = (info, now + ttl)
        return info

    async def byok_keys(self, organisation_id: int) -> dict[int, tuple[str, str]]:
        """{provider id: (secret, mode)} for an organisation's own provider keys."""
        now = time.monotonic()
        cached = self._byok.get(organisation_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            keys = await self.run_db(_byok_load, organisation_id)
        except DEPENDENCY_ERRORS as exc:
            if cached is None:
                raise dependency_unavailable(exc) from exc
            log.warning(
                "provider keys of %s not read (%s): serving the cached", organisation_id, exc
            )
            self._byok[organisation_id] = (cached[0], now + STALE_RETRY_SECONDS)
            return cached[0]
        self._byok[organisation_id] = (keys, now + settings.TOLLGATE_CACHE_TTL_SECONDS)
        return keys


# What a dependency that is down or stalled raises: the database's errors, Redis's, and
# a timeout. A cached value is served instead where there is one (for this long before
# the next try); else the client gets a retryable 503.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseError,
    RedisError,
    OSError,
    TimeoutError,
)
STALE_RETRY_SECONDS = 5.0


async def redis_persistence_check(redis: Any) -> bool:
    """Whether Redis keeps an append-only file. Without one, a Redis restart loses the
    usage events still queued (served, not yet billed or logged): in production that
    refuses to start (unless TOLLGATE_REDIS_VOLATILE_OK), otherwise it is a warning.
    Read with INFO, which managed Redis services allow where CONFIG is disabled."""
    info = await redis.info("persistence")
    if int(info.get("aof_enabled", 0)) == 1:
        return True
    message = (
        "Redis has no append-only persistence (appendonly no): usage queued in it is "
        "lost if it restarts. Set `appendonly yes` (README, Production)"
    )
    if settings.TOLLGATE_PRODUCTION and not settings.TOLLGATE_REDIS_VOLATILE_OK:
        raise RuntimeError(message + ", or TOLLGATE_REDIS_VOLATILE_OK=true to accept it.")
    log.warning("%s.", message)
    return False


def dependency_unavailable(exc: BaseException) -> GatewayError:
    return GatewayError(
        503,
        "The gateway cannot reach its database or cache right now; retry shortly.",
        code="dependency_unavailable",
        type="service_unavailable",
        headers={"retry-after": "5"},
    )


def _byok_load(organisation_id: int) -> dict[int, tuple[str, str]]:
    from gateway.models import ProviderKey

    rows = list(ProviderKey.objects.filter(organisation_id=organisation_id))
    if not rows:
        return {}
    from gateway.encryption import secret_decrypt

    return {row.provider_id: (secret_decrypt(row.secret_encrypted), row.mode) for row in rows}


runtime = Runtime()
