"""What every agent runner shares: running the CLI in its own process group with no
stdin (killed whole on timeout), and reading its JSON-lines output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def agent_run(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the agent. On timeout the whole process group is
    killed (agents start helpers of their own) and TimeoutExpired raised with what
    the agent had printed."""
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise subprocess.TimeoutExpired(list(args), timeout, output=stdout, stderr=stderr) from None
    return proc.returncode, stdout, stderr


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines of an agent's output (other lines skipped)."""
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
    return records


def minimal_env(
    home: Path, variables: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """An agent's whole environment: nothing of the caller's but PATH and locale, its
    HOME, no colour, its own `variables`, then `extra` (a test's)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "NO_COLOR": "1",
        **variables,
    }
    for name in ("LANG", "LC_ALL", "TZ"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env
