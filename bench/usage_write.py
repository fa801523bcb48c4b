"""CPU the usage worker spends writing a batch: `usage_batch_write` (request log rows,
ledger debits, balances) on PostgreSQL, per event, for batches of 50 and 500.

.venv/bin/python bench/usage_write.py [--source REV] [--events N] [--sizes 50,500]

It creates its own database (tollgate_bench_usage, dropped first if a crashed run left
it, and dropped again at the end), a few organisations, keys and deployments, and
synthetic events shaped like those gateway/charging.py records (UsageEvent.wire(): a mix
of managed and BYOK requests, one or two attempts each). The CPU of this process around
each call is measured with time.process_time: the worker's CPU, not PostgreSQL's. The
first batch of each size is a warm-up and is not counted (it also writes every key's
`last_used_at`, which later batches skip for 30 seconds, as in production). The batches
are made before the timing starts, then a full garbage collection is run, so the timing
does not include one made due by the bench's own allocations. "Replayed" writes the same
batches again (nothing new: the idempotent path).

`--source REV` measures the code of a git revision (e.g. HEAD, for before/after): its
tree is exported to a temporary directory and imported instead of the working tree."""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "tollgate_bench_usage"
ORGANISATIONS = 20
KEYS_PER_ORGANISATION = 3
MODELS = (("bench-gpt", "gpt-5.5"), ("bench-claude", "claude-sonnet-4-6"))


def database_recreate(*, drop_only: bool = False) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def source_export(rev: str, into: Path) -> Path:
    """The tree of `rev` as files under `into` (git archive: no change to the repo)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def django_setup(code_root: Path) -> None:
    os.environ["DATABASE_URL"] = f"{PG}/{DB_NAME}"
    os.environ["REDIS_URL"] = ""  # the write path needs no Redis
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(code_root))
    os.chdir(code_root)  # Celery's Django fix-up puts the working directory first on sys.path
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def world_create() -> tuple[list[tuple[int, list[int]]], list[tuple[int, str, str]]]:
    """Organisations with their key ids, and deployments (id, provider, upstream)."""
    from accounts.models import Group, Organisation
    from accounts.services import api_key_create
    from gateway.models import Deployment, Model, Provider

    group = Group.objects.create(slug="default", name="Default")
    organisations = []
    for n in range(ORGANISATIONS):
        org = Organisation.objects.create(slug=f"bench-{n}", name=f"Bench {n}", default_group=group)
        org.allowed_groups.add(group)
        keys = [
            api_key_create(organisation=org, name=f"k{i}").api_key.pk
            for i in range(KEYS_PER_ORGANISATION)
        ]
        organisations.append((org.pk, keys))
    deployments = []
    for public_id, upstream in MODELS:
        provider = Provider.objects.create(
            slug=public_id, name=public_id, protocol="openai", base_url="http://127.0.0.1:9/v1"
        )
        model = Model.objects.create(public_id=public_id, display_name=public_id)
        d = Deployment.objects.create(model=model, provider=provider, upstream_model=upstream)
        deployments.append((d.pk, provider.slug, upstream))
    return organisations, deployments


def event_make(rng: random.Random, n: int, organisations, deployments) -> dict:
    """One event as settlement records it (JSON types, as read back from the queue)."""
    org_id, keys = rng.choice(organisations)
    deployment_id, provider, upstream = rng.choice(deployments)
    byok = rng.random() < 0.2
    started = time.time() - rng.random()
    status, outcome = (200, "ok") if rng.random() < 0.95 else (429, "error")
    attempts = [
        {
            "provider": provider,
            "upstream_model": upstream,
            "byok": byok,
            "status": status,
            "error": "" if status == 200 else "rate limited",
            "error_type": "" if status == 200 else "rate_limit_error",
            "latency_ms": rng.randint(200, 9000),
            "started_at": round(started, 3),
        }
    ]
    if rng.random() < 0.1:
        attempts.insert(
            0,
            {**attempts[0], "status": 529, "error": "overloaded", "error_type": "overloaded_error"},
        )
    tokens = rng.randint(100, 60_000)
    return {
        "request_id": f"req_{n:024x}",
        "organisation_id": org_id,
        "api_key_id": rng.choice(keys),
        "session_id": f"sess-{rng.randint(1, 50)}" if rng.random() < 0.5 else "",
        "client_protocol": rng.choice(("openai", "anthropic")),
        "requested_model": MODELS[0][0],
        "resolved_model": MODELS[0][0],
        "provider": provider,
        "deployment_id": deployment_id,
        "upstream_model": upstream,
        "stream": rng.random() < 0.7,
        "status_code": status,
        "outcome": outcome,
        "error_type": attempts[-1]["error_type"],
        "error_message": attempts[-1]["error"],
        "started_at": started,
        "latency_ms": rng.randint(200, 9000),
        "ttfb_ms": rng.randint(100, 2000) if status == 200 else None,
        "input_tokens": tokens,
        "output_tokens": rng.randint(10, 4000),
        "cache_read_tokens": rng.choice((0, tokens // 2)),
        "cache_write_5m_tokens": rng.choice((0, 0, 1024)),
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": rng.choice((0, 256)),
        "usage_estimated": False,
        "cost_nano": rng.randint(10_000, 90_000_000) if status == 200 else 0,
        "byok": byok,
        "attempts": attempts,
        "route_reason": "",
    }


def measure(
    size: int, total: int, rng: random.Random, counter, organisations, deployments
) -> dict[str, float]:
    """Micro-seconds of CPU per event: fresh batches, and the same batches replayed."""
    from gateway.usage import usage_batch_write

    batches = [
        [event_make(rng, next(counter), organisations, deployments) for _ in range(size)]
        for _ in range(max(2, total // size) + 1)
    ]
    usage_batch_write(batches[0])  # warm-up
    gc.collect()  # not to time a full collection made due by this bench's own batches
    fresh, replay = [], []
    for batch in batches[1:]:
        start = time.process_time()
        usage_batch_write(batch)
        fresh.append((time.process_time() - start) / size)
    for batch in batches[1:]:
        start = time.process_time()
        usage_batch_write(batch)
        replay.append((time.process_time() - start) / size)
    return {
        "fresh_median": statistics.median(fresh) * 1e6,
        "fresh_mean": statistics.mean(fresh) * 1e6,
        "replay_median": statistics.median(replay) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="git revision to measure instead of the work tree")
    parser.add_argument("--events", type=int, default=5000, help="events per batch size")
    parser.add_argument("--sizes", default="50,500")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tollgate-bench-usage-"))
    try:
        code_root = source_export(args.source, tmp) if args.source else ROOT
        database_recreate()
        django_setup(code_root)
        from django.db import connection

        organisations, deployments = world_create()
        rng = random.Random(42)
        counter = iter(range(1, 10**9))
        label = args.source or "work tree"
        print(
            f"usage_batch_write CPU per event ({label}, PostgreSQL "
            f"{connection.pg_version // 10000}), micro-seconds:"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            r = measure(size, args.events, rng, counter, organisations, deployments)
            print(
                f"  batch {size:4d}: fresh median {r['fresh_median']:7.1f} "
                f"(mean {r['fresh_mean']:7.1f}), replayed median {r['replay_median']:7.1f}"
            )
        connection.close()
    finally:
        database_recreate(drop_only=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
