"""What the gateway adds to a request: the same chat completions sent straight to the
fake upstream and through the gateway (auth, credit hold, request log and billing on,
PostgreSQL and Redis), non-streaming and streaming, at several concurrencies.

    .venv/bin/python bench/overhead.py [--requests N] [--seconds S] [--quick]
    .venv/bin/python bench/overhead.py --upstream-delay-ms 200 --upstream-chunk-delay-ms 10

The fake answers at once by default: that isolates what the gateway costs, and is what
the aims of issue 3 are set against. With the delay options it takes a model's pace
(time to the first byte, and between stream events), which shows what a client of a
real model sees; those results go to a section of their own.

It sets up everything it measures and removes it afterwards (also on Ctrl-C): a
dedicated database (tollgate_bench), an unused Redis DB (must be empty; flushed after),
a fake upstream and a gateway process (`manage.py serve --no-demo`, one uvicorn worker)
on free ports of 127.0.0.1, a bench catalog, credit and an API key. Results go to
stdout and to the results section of docs/benchmarks.md.

The load generator runs in this process, on uvloop with raw keep-alive connections
and httptools parsing (one connection per concurrent client), so the client takes
as little as possible of the two cores it shares with the gateway and the fake.
CPU per request comes from /proc/<pid>/stat of each process, before and after each
phase; "rest" is every other process on the machine (PostgreSQL and Redis, mostly).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import redis
import uvloop

# bench/ is on sys.path when this runs as a script
from loadgen import Phase, load, post_bytes
from report import aims, background, facts, tables, tollgate_cpu, write_doc

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HOST = "127.0.0.1"
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "tollgate_bench"
UPSTREAM_KEY = "bench-upstream-key"
UPSTREAM_MODEL = "bench-upstream"
MODEL = "bench-gpt"
# 17 words: the fake answers "Echo: <17 words>", one word per chunk, so a stream is
# role + 18 content + finish + usage chunks + [DONE] = 22 SSE events, as in the bar
# of docs/ARCHITECTURE.md (LiteLLM, 22-chunk streams).
PROMPT = (
    "Please answer with a short friendly greeting so that this benchmark can "
    "measure what the gateway adds"
)
CATALOG = {
    "groups": [{"slug": "default", "name": "Default"}, {"slug": "pro", "name": "Pro"}],
    "providers": [
        {
            "slug": "bench",
            "name": "Bench fake upstream",
            "protocol": "openai",
            "base_url": "${BENCH_UPSTREAM_URL}/v1",
            "api_key": UPSTREAM_KEY,
        }
    ],
    "models": [
        {
            "id": MODEL,
            "name": "Bench GPT",
            "context_window": 128000,
            "max_output_tokens": 4096,
            "groups": ["default", "pro"],
            "prices": {"input": "1.25", "output": "10", "cache_read": "0.125"},
            "deployments": [{"provider": "bench", "upstream_model": UPSTREAM_MODEL}],
        }
    ],
}
CREDIT = """
from accounts.models import Organisation
from billing.models import EntryKind
from billing.services import ledger_post
org = Organisation.objects.get(slug="operator")
ledger_post(organisation=org, kind=EntryKind.ADJUSTMENT, amount_nano=10**15,
            idempotency_key="bench:credit", memo="bench credit")
print(org.pk)
"""
TICK = os.sysconf("SC_CLK_TCK")


# --- processes and setup ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env, text=True, capture_output=True, timeout=300
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def wait_http(url: str, key: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within 60 s:\n{log.read_text()[-3000:]}")


class Stack:
    """The database, Redis DB, fake upstream and gateway of one run; close() undoes all."""

    def __init__(
        self, redis_db: int, keep_db: bool, pace: tuple[int, int] = (0, 0), workers: int = 1
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
        self.redis_db, self.keep_db = redis_db, keep_db
        self.pace = pace  # the fake's delay before answering, and between stream events
        self.workers = workers  # uvicorn worker processes
        self.web_pids: list[int] = []
        self.procs: list[subprocess.Popen] = []
        self.fake_port, self.gw_port = free_port(), free_port()
        self.fake_url = f"http://{HOST}:{self.fake_port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"{PG}/{DB_NAME}",
            "REDIS_URL": f"redis://{HOST}:6379/{redis_db}",
            "TOLLGATE_VAR_DIR": str(self.tmp / "var"),
            "TOLLGATE_DEMO_UPSTREAM_URL": self.fake_url,
            "BENCH_UPSTREAM_URL": self.fake_url,
            "PYTHONUNBUFFERED": "1",
        }
        self.key = ""
        self.org_id = 0
        self.owns_redis = False
        self.worker_pids: list[int] = []

    def start(self) -> None:
        if redis.Redis(host=HOST, db=self.redis_db).dbsize():  # someone else's: keep out
            raise RuntimeError(
                f"Redis DB {self.redis_db} is not empty; choose an unused one with --redis-db"
            )
        self.owns_redis = True
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB_NAME}")
        fake = self.spawn(
            "fake",
            "fakeupstream",
            "--host",
            HOST,
            "--port",
            str(self.fake_port),
            "--delay-ms",
            str(self.pace[0]),
            "--chunk-delay-ms",
            str(self.pace[1]),
        )
        print("setup: migrate, bootstrap, bench catalog, credit, API key", flush=True)
        manage(self.env, "migrate", "--noinput")
        manage(self.env, "bootstrap")
        catalog = self.tmp / "bench-catalog.json"
        catalog.write_text(json.dumps(CATALOG))
        manage(self.env, "catalog", "load", str(catalog))
        self.org_id = int(manage(self.env, "shell", "-c", CREDIT).split()[-1])
        self.key = manage(
            self.env, "apikey", "create", "--org", "operator", "--name", "bench"
        ).strip()
        wait_http(f"{self.fake_url}/v1/models", UPSTREAM_KEY, fake, self.tmp / "fake.log")
        gateway = self.spawn(
            "gateway",
            "serve",
            "--no-demo",
            "--host",
            HOST,
            "--port",
            str(self.gw_port),
            "--workers",
            str(self.workers),
        )
        wait_http(
            f"http://{HOST}:{self.gw_port}/v1/models", self.key, gateway, self.tmp / "gateway.log"
        )
        self.fake_pid, self.gw_pid = fake.pid, gateway.pid
        # `serve` starts a usage worker process (request logs and ledger debits) next
        # to uvicorn: its CPU is part of what the gateway costs.
        tree = descendants(gateway.pid)
        self.worker_pids = [p for p in tree if "usage_worker" in cmdline(p)]
        self.web_pids = [gateway.pid, *(p for p in tree if p not in self.worker_pids)]

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")  # the child keeps it open
        # A session of its own: Ctrl-C reaches only this script, which stops the
        # gateway first (it drains its usage queue), then the fake.
        proc = subprocess.Popen(
            [PY, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for pid in self.worker_pids:  # normally stopped by `serve` itself
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            if self.owns_redis:
                redis.Redis(host=HOST, db=self.redis_db).flushdb()
            if not self.keep_db:
                with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- measuring ----------------------------------------------------------------------
def request_bytes(port: int, key: str, model: str, stream: bool, session: str) -> bytes:
    body: dict = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return post_bytes(
        HOST,
        port,
        "/v1/chat/completions",
        json.dumps(body, separators=(",", ":")).encode(),
        {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Tollgate-Session-Id": session,
        },
    )


def proc_cpu(pid: int, tid: int | None = None) -> float:
    """CPU seconds of a process (all threads), or of one of its threads."""
    with open(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def machine_busy() -> float:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK  # minus idle and iowait


def named_cpu(command: str) -> dict[int, float]:
    """CPU seconds of each process whose command name is `command` (PostgreSQL's
    backends, the Redis server), by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == command:
                found[int(entry.name)] = proc_cpu(int(entry.name))
        except OSError:  # it exited meanwhile
            continue
    return found


def cpu_delta(before, after) -> float:
    """CPU used between two snapshots; for per-pid snapshots, by the processes alive at
    the end (one that exited meanwhile took its CPU with it, and is not subtracted)."""
    if isinstance(after, dict):
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    return after - before


def cpu_snapshot(stack: Stack) -> dict[str, Any]:
    return {
        "gateway": sum(proc_cpu(pid) for pid in stack.web_pids),
        "loop": sum(proc_cpu(pid, pid) for pid in stack.web_pids),
        "worker": sum(proc_cpu(pid) for pid in stack.worker_pids),
        "fake": proc_cpu(stack.fake_pid),
        "client": time.process_time(),
        "postgres": named_cpu("postgres"),
        "redis": named_cpu("redis-server"),
        "all": machine_busy(),
    }


def wait_logged(org_id: int, session: str, expected: int) -> int:
    """The flusher writes in batches: wait for this phase's rows, so its CPU (and the
    database's) is counted in the phase that caused it."""
    deadline = time.monotonic() + 30
    with psycopg.connect(f"{PG}/{DB_NAME}", autocommit=True) as conn:
        while True:
            count = conn.execute(
                "SELECT count(*) FROM gateway_requestlog WHERE "
                "organisation_id = %s AND session_id = %s",
                (org_id, session),
            ).fetchone()[0]
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(0.1)


def run_phase(stack: Stack, phase: Phase, total: int, seconds: float, tag: str) -> Phase:
    mode = "stream" if phase.stream else "json"
    session = f"bench-{tag}-{mode}-c{phase.concurrency}"
    if phase.target == "direct":
        port, raw = (
            stack.fake_port,
            request_bytes(stack.fake_port, UPSTREAM_KEY, UPSTREAM_MODEL, phase.stream, session),
        )
    else:
        port, raw = (
            stack.gw_port,
            request_bytes(stack.gw_port, stack.key, MODEL, phase.stream, session),
        )
    print(f"  {session} {phase.target}: up to {total} requests", flush=True)
    before = cpu_snapshot(stack)
    uvloop.run(load(phase, HOST, port, raw, total, seconds, stagger=stack.pace[0] / 1000))
    if phase.target == "gateway":
        count = wait_logged(stack.org_id, session, phase.sent)
        if count != phase.sent:
            raise RuntimeError(f"{session}: {phase.sent} sent but {count} request log rows")
    after = cpu_snapshot(stack)
    phase.cpu = {k: cpu_delta(before[k], after[k]) for k in after}
    want = b'"cost"' if phase.target == "gateway" else b'"usage"'
    if phase.errors or want not in phase.sample or (phase.stream and b"[DONE]" not in phase.sample):
        raise RuntimeError(
            f"{session}: {phase.errors} errors {phase.error_statuses}; sample "
            f"{phase.sample[:600]!r}"
        )
    return phase


# --- verification ----------------------------------------------------------
def verify(org_id: int, sent: int) -> str:
    """Every gateway request of the run is logged once and billed once, at its cost."""
    with psycopg.connect(f"{PG}/{DB_NAME}") as conn:
        rows, ok, cost = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status_code = 200), "
            "coalesce(sum(cost_nano), 0) FROM gateway_requestlog WHERE organisation_id = %s",
            (org_id,),
        ).fetchone()
        debits, debited = conn.execute(
            "SELECT count(*), coalesce(-sum(l.amount_nano), 0) FROM billing_ledgerentry l "
            "JOIN gateway_requestlog r ON l.idempotency_key = 'usage:' || r.request_id "
            "WHERE l.organisation_id = %s AND l.kind = 'usage'",
            (org_id,),
        ).fetchone()
    line = (
        f"{sent} gateway requests sent; {rows} request log rows ({ok} with status 200); "
        f"{debits} usage ledger debits totalling {debited} nano-USD "
        f"(request log cost total {cost} nano-USD)"
    )
    if not sent == rows == ok == debits or debited != cost or cost <= 0:
        raise RuntimeError(f"billing check failed: {line}")
    return line


# --- main -------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=3000,
        help="requests per phase at concurrency > 1 (a quarter at 1)",
    )
    parser.add_argument("--seconds", type=float, default=15, help="time cap per phase")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--warmup", type=int, default=500, help="requests per warm-up phase")
    parser.add_argument(
        "--redis-db",
        type=int,
        default=9,
        help="an unused Redis DB (must be empty; flushed afterwards)",
    )
    parser.add_argument("--keep-db", action="store_true", help=f"do not drop {DB_NAME}")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few requests")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes of the gateway (default 1)"
    )
    parser.add_argument(
        "--upstream-delay-ms",
        type=int,
        default=0,
        help="the fake waits this long before answering (default 0)",
    )
    parser.add_argument(
        "--upstream-chunk-delay-ms",
        type=int,
        default=0,
        help="and this long between stream events (default 0)",
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup = 300, 100
    levels = [int(c) for c in args.concurrency.split(",")]
    for signum in (signal.SIGINT, signal.SIGTERM):  # clean up on Ctrl-C and on kill
        signal.signal(signum, signal.default_int_handler)
    load = os.getloadavg()
    pace = (args.upstream_delay_ms, args.upstream_chunk_delay_ms)
    stack = Stack(args.redis_db, args.keep_db, pace, args.workers)
    pairs: list[tuple[Phase, Phase]] = []
    try:
        stack.start()
        sent = 0
        print("warm-up", flush=True)
        for stream in (False, True):
            for target in ("direct", "gateway"):
                phase = run_phase(
                    stack, Phase(target, stream, max(levels)), args.warmup, args.seconds, "warmup"
                )
                sent += phase.sent if target == "gateway" else 0
        for stream in (False, True):
            for c in levels:
                total = args.requests if c > 1 else max(100, args.requests // 4)
                d, g = (
                    run_phase(stack, Phase(t, stream, c), total, args.seconds, "run")
                    for t in ("direct", "gateway")
                )
                sent += g.sent
                pairs.append((d, g))
                print(
                    f"{'stream' if stream else 'json'} c{c}: direct {d.rps:.0f} rps, "
                    f"gateway {g.rps:.0f} rps, gateway CPU "
                    f"{tollgate_cpu(g) * 1000:.2f} ms/req",
                    flush=True,
                )
        check = verify(stack.org_id, sent)
    except KeyboardInterrupt:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the abandoned phase
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        stack.close()
    command = " ".join([".venv/bin/python bench/overhead.py", *sys.argv[1:]])
    paced = pace != (0, 0)
    if paced:
        title = (
            f"## With a model's pace ({dt.date.today().isoformat()}): the fake waits "
            f"{pace[0]} ms before answering and {pace[1]} ms between stream events"
        )
        verdicts = (
            "The aims of issue 3 are set against the instant fake (the results "
            "above); for the record, here:\n\n" + aims(pairs)
        )
    else:
        title = f"## Results ({dt.date.today().isoformat()})"
        verdicts = f"Aims (issue 3, docs/ARCHITECTURE.md):\n\n{aims(pairs)}"
    section = (
        f"{title}\n\nCommand: `{command}`\n\n{facts(ROOT, PG, HOST)}\n"
        f"{background(pairs, load)}\n\n{tables(pairs)}\n\n{verdicts}"
        f"\n\nBilling check: {check}.\n"
    )
    print("\n" + section)
    if not args.no_write:
        write_doc(
            ROOT / "docs" / "benchmarks.md", section, "overhead-paced" if paced else "overhead"
        )
        print("written to docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
