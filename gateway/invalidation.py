"""Cache invalidation across every gateway worker.

Changes made anywhere (console, admin, management command, Celery) are published on a
Redis channel after commit; each worker's runtime listens and drops what changed. The
publishing process also applies the change to its own runtime at once, which is all
there is to do in the embedded single-process mode. Caches also expire on a short TTL,
so a lost message delays a change by seconds, never forever.
"""

from __future__ import annotations

import functools

import redis
from django.conf import settings

CHANNEL = "tg:invalidate"


@functools.cache
def _sync_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def sync_redis() -> redis.Redis | None:
    return _sync_redis() if settings.REDIS_URL else None


def invalidation_publish(kind: str, value: str = "") -> None:
    """kind: key (value = secret hash), catalog, byok (value = organisation id),
    credit (value = organisation id)."""
    from gateway.runtime import runtime

    runtime.apply_invalidation(kind, value)
    client = sync_redis()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        if kind == "key":
            pipe.incr(f"tg:keygen:{value}")  # a fill that read before this is dropped
            pipe.expire(f"tg:keygen:{value}", 86400)
            pipe.delete(f"tg:key:{value}")
        elif kind == "credit":
            from billing.credit import credit_avail_key

            pipe.delete(credit_avail_key(int(value)))
        pipe.publish(CHANNEL, f"{kind}:{value}")
        pipe.execute()
