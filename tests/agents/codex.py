"""Run the pinned OpenAI Codex CLI (`codex exec`) against a Responses API endpoint.

The binary comes from `npm ci --prefix tests/agents` (see README.md beside this file).
Every run gets a fresh CODEX_HOME holding only a generated config.toml, a minimal
environment (no inherited OPENAI_* or other keys), and flags that need no prompt, no
git repository and no sandbox, so a test can drive Codex through Tollgate:

    from tests.agents.codex import codex_binary, run_codex

    if codex_binary() is None:
        pytest.skip("Codex CLI not installed: npm ci --prefix tests/agents")
    result = run_codex(base_url=f"{gateway}/v1", api_key=secret, model="gpt-5.5",
                       prompt="create hello.txt containing 'hi'", workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.turn_usage()["input_tokens"] > 0

Codex makes no request but to ``base_url``: the config turns off analytics, the update
check and plugin sync (which would otherwise look up github.com and chatgpt.com).
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
CODEX_VERSION = "0.171.0"  # must match package.json
PROVIDER_ID = "tollgate"
ENV_KEY = "TOLLGATE_API_KEY"

_TRIPLES = {
    ("Linux", "x86_64"): ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    ("Linux", "aarch64"): ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
    ("Darwin", "x86_64"): ("codex-darwin-x64", "x86_64-apple-darwin"),
    ("Darwin", "arm64"): ("codex-darwin-arm64", "aarch64-apple-darwin"),
}


def codex_binary() -> Path | None:
    """The native Codex executable installed under tests/agents/node_modules, or None."""
    key = _TRIPLES.get((platform.system(), platform.machine()))
    if key is None:
        return None
    package, triple = key
    path = AGENTS_DIR / "node_modules" / "@openai" / package / "vendor" / triple / "bin" / "codex"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    return None


def _toml(value: Any) -> str:
    """A TOML literal for a str, bool, int, float, list or flat dict."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        pairs = (f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def codex_config(
    *,
    base_url: str,
    model: str,
    request_max_retries: int | None = 0,
    stream_max_retries: int | None = 0,
    stream_idle_timeout_ms: int | None = None,
    http_headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The text of config.toml for a custom Responses provider called ``tollgate``.

    Retries default to 0 so that a gateway error fails the run at once (Codex's own
    defaults are 4 request retries for 5xx times 5 stream retries: ~30 requests and
    ~27 s for a persistent 500). Pass None to keep Codex's default.
    """
    top: dict[str, Any] = {
        "model": model,
        "model_provider": PROVIDER_ID,
        "approval_policy": "never",
        "sandbox_mode": "danger-full-access",
        "check_for_update_on_startup": False,
    }
    top.update(extra or {})
    provider: dict[str, Any] = {
        "name": "Tollgate",
        "base_url": base_url,
        "env_key": ENV_KEY,
        "wire_api": "responses",
    }
    if request_max_retries is not None:
        provider["request_max_retries"] = request_max_retries
    if stream_max_retries is not None:
        provider["stream_max_retries"] = stream_max_retries
    if stream_idle_timeout_ms is not None:
        provider["stream_idle_timeout_ms"] = stream_idle_timeout_ms
    if http_headers:
        provider["http_headers"] = dict(http_headers)
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
    lines += ["", "[analytics]", "enabled = false", "", "[features]", "plugins = false"]
    lines += ["", f"[model_providers.{PROVIDER_ID}]"]
    lines += [f"{k} = {_toml(v)}" for k, v in provider.items()]
    return "\n".join(lines) + "\n"


def codex_env(home: Path, api_key: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: nothing of the caller's but PATH and locale."""
    variables = {
        "CODEX_HOME": str(home),
        ENV_KEY: api_key,
    }
    return minimal_env(home, variables, extra)


class CodexResult(subprocess.CompletedProcess[str]):
    """CompletedProcess plus the parsed ``--json`` events and the last agent message."""

    events: list[dict[str, Any]]
    last_message: str | None
    home: Path | None

    def turn_usage(self) -> dict[str, int]:
        """``usage`` of the last ``turn.completed`` event (input, cached, output...)."""
        for event in reversed(self.events):
            if event.get("type") == "turn.completed":
                return dict(event.get("usage") or {})
        return {}


parse_events = json_lines  # the JSON lines of its output


def run_codex(
    *,
    base_url: str,
    api_key: str,
    model: str,
    prompt: str,
    workdir: Path,
    timeout: float = 120.0,
    home: Path | None = None,
    json_events: bool = True,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    request_max_retries: int | None = 0,
    stream_max_retries: int | None = 0,
    stream_idle_timeout_ms: int | None = None,
    http_headers: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> CodexResult:
    """Run ``codex exec PROMPT`` in ``workdir`` against ``base_url`` (ending in /v1).

    Codex POSTs ``{base_url}/responses`` with ``Authorization: Bearer {api_key}``.
    Exit code 0 means the turn completed; Codex prints errors on stderr and exits 1.
    ``home`` (CODEX_HOME) is a fresh temporary directory removed afterwards unless
    given. On timeout the whole process group is killed and TimeoutExpired raised.
    """
    binary = codex_binary()
    if binary is None:
        raise FileNotFoundError("Codex CLI not installed: run `npm ci --prefix tests/agents`")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    own_home = home is None
    home_path = Path(tempfile.mkdtemp(prefix="codex-home-")) if home is None else Path(home)
    home_path.mkdir(parents=True, exist_ok=True)
    (home_path / "config.toml").write_text(
        codex_config(
            base_url=base_url,
            model=model,
            request_max_retries=request_max_retries,
            stream_max_retries=stream_max_retries,
            stream_idle_timeout_ms=stream_idle_timeout_ms,
            http_headers=http_headers,
            extra=config,
        )
    )
    last_file = home_path / "last-message.txt"
    args = [
        str(binary),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "--ephemeral",
        "--color",
        "never",
        "--cd",
        str(workdir),
        "--output-last-message",
        str(last_file),
    ]
    if json_events:
        args.append("--json")
    args += [*extra_args, "--", prompt]
    try:
        returncode, stdout, stderr = agent_run(
            args, cwd=workdir, env=codex_env(home_path, api_key, env), timeout=timeout
        )
        result = CodexResult(args, returncode, stdout, stderr)
        result.events = parse_events(stdout) if json_events else []
        result.last_message = last_file.read_text() if last_file.exists() else None
        result.home = None if own_home else home_path
        return result
    finally:
        if own_home:
            shutil.rmtree(home_path, ignore_errors=True)
