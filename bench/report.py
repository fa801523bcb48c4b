"""The report of bench/overhead.py: markdown tables, the aims of issue 3 and the
ARCHITECTURE.md bar, how busy the machine was, machine facts, and the results section
of docs/benchmarks.md."""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from pathlib import Path

import psycopg
import redis
from loadgen import Phase, pct


def tollgate_cpu(phase: Phase) -> float:
    """Seconds of CPU per successful request in the gateway and its usage worker."""
    return (phase.cpu["gateway"] + phase.cpu["worker"]) / len(phase.latencies)


def others(phase: Phase) -> float:
    """CPU seconds of every other process on the machine during the phase."""
    cpu = phase.cpu
    return (
        cpu["all"]
        - cpu["gateway"]
        - cpu["worker"]
        - cpu["fake"]
        - cpu["client"]
        - cpu["postgres"]
        - cpu["redis"]
    )


def tables(pairs: list[tuple[Phase, Phase]]) -> str:
    lat = [
        "| mode | conc | requests | p50 direct | p50 gateway | **added p50** | p99 direct "
        "| p99 gateway | added p99 | TTFB p50 direct / gateway | **added TTFB p50** |",
        "|" + "---|" * 11,
    ]
    cpu = [
        "| mode | conc | rps direct | rps gateway | **gateway / direct** | **gateway CPU "
        "ms/req** (event loop + threads + usage worker) | fake CPU ms/req | client CPU "
        "ms/req | PostgreSQL ms/req | Redis ms/req | other ms/req |",
        "|" + "---|" * 11,
    ]
    for d, g in pairs:
        mode = "stream" if d.stream else "json"
        p50d, p50g = pct(d.latencies, 0.5), pct(g.latencies, 0.5)
        p99d, p99g = pct(d.latencies, 0.99), pct(g.latencies, 0.99)
        ttfb = added_ttfb = "—"
        if d.stream:
            td, tg = pct(d.ttfbs, 0.5), pct(g.ttfbs, 0.5)
            ttfb, added_ttfb = f"{td:.2f} / {tg:.2f}", f"**{tg - td:+.2f}**"
        lat.append(
            f"| {mode} | {d.concurrency} | {len(d.latencies)} / {len(g.latencies)} | "
            f"{p50d:.2f} | {p50g:.2f} | **{p50g - p50d:+.2f}** | {p99d:.2f} | "
            f"{p99g:.2f} | {p99g - p99d:+.2f} | {ttfb} | {added_ttfb} |"
        )
        ms = {k: v / len(g.latencies) * 1000 for k, v in g.cpu.items()}
        cpu.append(
            f"| {mode} | {d.concurrency} | {d.rps:.0f} | {g.rps:.0f} | "
            f"**{g.rps / d.rps:.2f}** | **{ms['gateway'] + ms['worker']:.2f}** "
            f"({ms['loop']:.2f} + {max(ms['gateway'] - ms['loop'], 0):.2f} + "
            f"{ms['worker']:.2f}) | {ms['fake']:.2f} | {ms['client']:.2f} | "
            f"{ms['postgres']:.2f} | {ms['redis']:.2f} | "
            f"{max(others(g), 0) / len(g.latencies) * 1000:.2f} |"
        )
    return (
        "Latency in ms, measured by the client (send to last byte; TTFB: send to "
        "first body byte):\n\n" + "\n".join(lat) + "\n\nThroughput and CPU in the "
        "gateway phase (CPU from /proc, per successful request):\n\n" + "\n".join(cpu)
    )


def aims(pairs: list[tuple[Phase, Phase]]) -> str:
    lines = []
    for d, g in pairs:
        mode = "stream" if d.stream else "json"
        if d.concurrency == 16:
            added = pct(g.latencies, 0.5) - pct(d.latencies, 0.5)
            lines.append(
                f"- {mode}, c16: added p50 {added:.2f} ms (aim < 3 ms): "
                f"{'met' if added < 3 else 'MISSED'}"
            )
            low, high = (5.4, 7.8) if d.stream else (2.1, 3.1)
            cpu = tollgate_cpu(g) * 1000
            verdict = "met" if cpu <= low else "within the range" if cpu <= high else "MISSED"
            lines.append(
                f"- {mode}, c16: gateway CPU {cpu:.2f} ms/request (bar: a tenth of "
                f"LiteLLM's, {low}-{high} ms): {verdict}"
            )
        ratio = g.rps / d.rps
        if d.concurrency == max(p.concurrency for p, _ in pairs):
            lines.append(
                f"- {mode}, c{d.concurrency}: gateway throughput {ratio:.2f} of "
                f"direct (aim >= 0.5): {'met' if ratio >= 0.5 else 'MISSED'}"
            )
    return "\n".join(lines)


def background(pairs: list[tuple[Phase, Phase]], load: tuple[float, ...]) -> str:
    """How busy the machine was with other work: the CPU of every other process
    during the direct phases (when the gateway, PostgreSQL and Redis are idle)."""
    direct = [d for d, _ in pairs]
    wall = sum(d.wall for d in direct)
    busy = sum(others(d) + d.cpu["postgres"] + d.cpu["redis"] for d in direct)
    cores = max(busy, 0) / wall if wall else 0.0
    line = (
        f"- background: other processes used {cores:.2f} cores during the direct "
        f"phases; load average at start {', '.join(f'{x:.2f}' for x in load)}"
    )
    if cores > 0.25:
        line += (
            "\n- **the machine was busy with other work during this run**: latency "
            "and requests/s are pessimistic; CPU per request is the steadier figure"
        )
    return line


def installed(name: str) -> md.Distribution | None:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        return None


def facts(root: Path, pg: str, host: str) -> str:
    """Machine, versions and code, for the record."""
    mem = subprocess.getoutput("free -h | grep ^Mem").split()
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    with psycopg.connect(f"{pg}/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    names = (
        "uvicorn",
        "uvloop",
        "httptools",
        "httpx",
        "httpcore",
        "httpx2",
        "httpcore2",
        "Django",
        "psycopg",
        "redis",
    )
    libs = ", ".join(f"{d.name} {d.version}" for n in names if (d := installed(n)))
    commit = subprocess.getoutput(f"git -C {root} rev-parse --short HEAD")
    dirty = subprocess.getoutput(
        f"git -C {root} status --porcelain --untracked-files=no -- . ':!docs/benchmarks.md'"
    )  # the results go there
    return (
        f"- machine: nproc {subprocess.getoutput('nproc')} ({cpu}); free -h: "
        f"{' '.join(mem[1:3])} total/used; Linux {platform.release()}\n"
        f"- versions: Python {platform.python_version()}, {libs}; PostgreSQL {pg}, Redis "
        f"{redis.Redis(host=host).info('server')['redis_version']}\n"
        f"- code: commit {commit}{' + uncommitted changes' if dirty else ''}"
    )


def write_doc(path: Path, section: str, name: str) -> None:
    """Replace the results section `name` of `path` (between its markers), or append it."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{section.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
