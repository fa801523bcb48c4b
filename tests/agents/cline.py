"""Run the pinned Cline CLI (`cline --json PROMPT`, one task, no TUI) against Tollgate.

The binary comes from `npm ci --prefix tests/agents` (see cline.md beside this file).
Every run gets a fresh HOME whose `~/.cline/data/settings/` holds only a generated
`providers.json` (one provider: Tollgate's address and key) and `global-settings.json`
(telemetry and auto-update off), a minimal environment, no stdin, and the local
session backend, so a test can drive Cline through Tollgate:

    from tests.agents.cline import cline_binary, run_cline

    if cline_binary() is None:
        pytest.skip("Cline CLI not installed: npm ci --prefix tests/agents")
    result = run_cline(provider="openai", base_url=f"{gateway}/v1", api_key=secret,
                       model="test-gpt-5.5", prompt="create hello.txt", workdir=tmp_path)
    assert result.returncode == 0, result.error
    assert all(c.startswith("call_") for c in result.tool_call_ids())

Cline makes no request but to ``base_url``: `telemetryOptOut` stops its OpenTelemetry
export (otel.cline.bot), `IS_TEST=true` its PostHog feature-flag poll (data.cline.bot),
and `CLINE_SESSION_BACKEND_MODE=local` its probe for a hub daemon on 127.0.0.1:25463
(and starting one). Checked with `strace -f -e trace=connect,sendmmsg`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.agents.process import agent_run, json_lines, minimal_env

AGENTS_DIR = Path(__file__).resolve().parent
CLINE_VERSION = "3.0.65"  # must match package.json

# Our names for Cline's two providers that take a base URL, and Cline's ids for them.
PROVIDERS = {"openai": "openai-compatible", "anthropic": "anthropic"}

_PLATFORMS = {
    ("Linux", "x86_64"): "cli-linux-x64",
    ("Linux", "aarch64"): "cli-linux-arm64",
    ("Darwin", "x86_64"): "cli-darwin-x64",
    ("Darwin", "arm64"): "cli-darwin-arm64",
}

# Cline's global settings: no OpenTelemetry export to otel.cline.bot (on by default),
# no self-update.
GLOBAL_SETTINGS = {"telemetryOptOut": True, "autoUpdateEnabled": False}


def cline_binary() -> Path | None:
    """The native Cline executable (Bun-compiled, needs no Node) under
    tests/agents/node_modules, or None. `node_modules/.bin/cline` is a Node wrapper
    that finds this same file and also writes a CA bundle into ~/.cline."""
    package = _PLATFORMS.get((platform.system(), platform.machine()))
    candidates = [AGENTS_DIR / "node_modules" / "cline" / "bin" / ".cline"]  # postinstall copy
    if package is not None:
        candidates.insert(0, AGENTS_DIR / "node_modules" / "@cline" / package / "bin" / "cline")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def provider_settings(
    *,
    provider: str,
    base_url: str,
    api_key: str,
    model: str,
    headers: Mapping[str, str] | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The contents of providers.json (what `cline auth -p ID -k KEY -m MODEL -b URL`
    writes) for one provider, made the one in use.

    ``provider`` is "openai" (Cline's `openai-compatible`: POSTs
    ``{base_url}/chat/completions``) or "anthropic" (POSTs ``{base_url}/messages``, so
    ``base_url`` must end in /v1). ``headers`` are sent on every model request.
    """
    provider_id = PROVIDERS[provider]
    settings: dict[str, Any] = {
        "provider": provider_id,
        "apiKey": api_key,
        "model": model,
        "baseUrl": base_url,
    }
    if headers:
        settings["headers"] = dict(headers)
    if max_tokens is not None:
        settings["maxTokens"] = max_tokens
    return {
        "version": 1,
        "lastUsedProvider": provider_id,
        "modes": {},
        "providers": {
            provider_id: {
                "settings": settings,
                "updatedAt": "2026-01-01T00:00:00.000Z",
                "tokenSource": "manual",
            }
        },
    }


def cline_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: nothing of the caller's but PATH and locale."""
    variables = {
        "CLINE_DIR": str(home / ".cline"),
        "CLINE_DATA_DIR": str(home / ".cline" / "data"),
        "CLINE_SESSION_BACKEND_MODE": "local",  # no hub daemon, no probe of :25463
        "IS_TEST": "true",  # no PostHog feature-flag poll of data.cline.bot
    }
    return minimal_env(home, variables, extra)


class ClineResult(subprocess.CompletedProcess[str]):
    """CompletedProcess plus the parsed ``--json`` NDJSON records."""

    records: list[dict[str, Any]]
    home: Path | None

    @property
    def events(self) -> list[dict[str, Any]]:
        """The ``event`` of every ``agent_event`` record, in order."""
        return [r["event"] for r in self.records if r.get("type") == "agent_event"]

    def tool_calls(self) -> list[dict[str, Any]]:
        """Each tool call Cline ran: its ``content_start`` event (toolName, toolCallId,
        input), in order."""
        return [
            e
            for e in self.events
            if e.get("type") == "content_start" and e.get("contentType") == "tool"
        ]

    def tool_call_ids(self) -> list[str]:
        return [e["toolCallId"] for e in self.tool_calls()]

    @property
    def run_result(self) -> dict[str, Any] | None:
        """The final ``run_result`` record (finishReason, iterations, usage, text)."""
        for record in reversed(self.records):
            if record.get("type") == "run_result":
                return record
        return None

    @property
    def error(self) -> str:
        """What Cline reported as the error (its ``error`` records), else stderr's end."""
        messages = [r.get("message", "") for r in self.records if r.get("type") == "error"]
        return "\n".join(messages) or self.stderr[-2000:]


parse_records = json_lines  # the JSON lines of its output


def run_cline(
    *,
    provider: str,
    base_url: str,
    api_key: str,
    model: str,
    prompt: str,
    workdir: Path,
    timeout: float = 60.0,
    home: Path | None = None,
    headers: Mapping[str, str] | None = None,
    max_tokens: int | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    global_settings: Mapping[str, Any] | None = None,
) -> ClineResult:
    """Run ``cline --json PROMPT`` (act mode, every tool auto-approved) in ``workdir``.

    Exit code 0 means the task finished (``run_result.finishReason == "completed"``);
    a failed request ends the run with an ``error`` record and exit code 1. ``home`` is
    a fresh temporary directory removed afterwards unless given. On timeout the whole
    process group is killed and TimeoutExpired raised.
    """
    binary = cline_binary()
    if binary is None:
        raise FileNotFoundError("Cline CLI not installed: run `npm ci --prefix tests/agents`")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    own_home = home is None
    home_path = Path(tempfile.mkdtemp(prefix="cline-home-")) if home is None else Path(home)
    settings_dir = home_path / ".cline" / "data" / "settings"
    settings_dir.mkdir(parents=True, exist_ok=True)
    (settings_dir / "providers.json").write_text(
        json.dumps(
            provider_settings(
                provider=provider,
                base_url=base_url,
                api_key=api_key,
                model=model,
                headers=headers,
                max_tokens=max_tokens,
            ),
            indent=2,
        )
    )
    (settings_dir / "global-settings.json").write_text(
        json.dumps({**GLOBAL_SETTINGS, **(global_settings or {})}, indent=2)
    )
    args = [
        str(binary),
        "--json",
        "--auto-approve",
        "true",
        "--provider",
        PROVIDERS[provider],
        "--model",
        model,
        "--cwd",
        str(workdir),
        *extra_args,
        "--",
        prompt,
    ]
    try:
        returncode, stdout, stderr = agent_run(
            args, cwd=workdir, env=cline_env(home_path, env), timeout=timeout
        )
        result = ClineResult(args, returncode, stdout, stderr)
        result.records = parse_records(stdout)
        result.home = None if own_home else home_path
        return result
    finally:
        if own_home:
            shutil.rmtree(home_path, ignore_errors=True)
