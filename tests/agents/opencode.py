"""Run the pinned opencode CLI (`opencode run`) against Tollgate, non-interactively.

The binary comes from `npm ci --prefix tests/agents` (package `opencode-ai`, whose
postinstall links the native Bun executable of the platform package to
`opencode-ai/bin/opencode.exe`). Every run gets a fresh HOME whose XDG directories
hold only a generated global config (`~/.config/opencode/opencode.json`) defining one
custom provider, ``tollgate``, in one of two flavours:

- ``"openai"``: ``npm: "@ai-sdk/openai-compatible"``; opencode POSTs
  ``{gateway}/v1/chat/completions``.
- ``"anthropic"``: ``npm: "@ai-sdk/anthropic"``; opencode POSTs ``{gateway}/v1/messages``.

Both AI SDK packages are bundled in the binary: nothing is installed for them.

    from tests.agents.opencode import opencode_binary, run_opencode

    if opencode_binary() is None:
        pytest.skip("opencode not installed: npm ci --prefix tests/agents")
    result = run_opencode(gateway=world.url, api_key=secret, model="test-gpt-5.5",
                          provider="openai", prompt="create hello.txt", workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    result.tool_calls()  # [{"tool": "write", "call_id": "call_...", ...}]

opencode makes no request but to the gateway (checked with `strace -f -e trace=connect`,
see opencode.md): ``OPENCODE_DISABLE_MODELS_FETCH=1`` stops the catalog download
(GET https://models.opencode.ai/api.json), and the config directory is pre-seeded so
that opencode's background ``npm install @opencode-ai/plugin`` into it (from
registry.npmjs.org) finds nothing to do. The other switches (autoupdate, share,
plugins, LSP downloads, external skills) are off too, for good measure.
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
OPENCODE_VERSION = "1.18.33"  # must match package.json
PROVIDER_ID = "tollgate"
ENV_KEY = "TOLLGATE_API_KEY"
PROVIDER_PACKAGES = {
    "openai": "@ai-sdk/openai-compatible",  # POST {baseURL}/chat/completions
    "anthropic": "@ai-sdk/anthropic",  # POST {baseURL}/messages
}

# Switches that keep opencode off the network (and away from the caller's machine).
QUIET_ENV = {
    "OPENCODE_DISABLE_MODELS_FETCH": "1",  # else GET https://models.opencode.ai/api.json
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_PURE": "1",  # no external plugins
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",  # no ~/.claude prompt or skills
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",  # no opencode.json from the work dir's parents
}

_PLATFORM_PACKAGES = {
    ("Linux", "x86_64"): "opencode-linux-x64",
    ("Linux", "aarch64"): "opencode-linux-arm64",
    ("Darwin", "x86_64"): "opencode-darwin-x64",
    ("Darwin", "arm64"): "opencode-darwin-arm64",
}


def opencode_binary() -> Path | None:
    """The opencode executable installed under tests/agents/node_modules, or None."""
    modules = AGENTS_DIR / "node_modules"
    candidates = [modules / "opencode-ai" / "bin" / "opencode.exe"]
    package = _PLATFORM_PACKAGES.get((platform.system(), platform.machine()))
    if package:
        candidates += [modules / package / "bin" / "opencode"]
        candidates += [modules / f"{package}-baseline" / "bin" / "opencode"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def opencode_config(
    *,
    base_url: str,
    model: str,
    provider: str = "openai",
    output_limit: int | None = None,
    context_limit: int = 200_000,
    small_model: bool = True,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """opencode.json for a custom provider ``tollgate`` serving one model.

    ``base_url`` ends in /v1 (both SDKs append their path to it). ``output_limit`` is
    the model's max output: opencode sends it as ``max_tokens`` (without it, opencode's
    own default, 32000). ``small_model`` points title generation at the same model;
    False leaves opencode to choose (it then falls back to the main model)."""
    if provider not in PROVIDER_PACKAGES:
        raise ValueError(f"provider is one of {sorted(PROVIDER_PACKAGES)}, not {provider!r}")
    entry: dict[str, Any] = {"name": model, "tool_call": True}
    if output_limit is not None:
        entry["limit"] = {"context": context_limit, "output": output_limit}
    options: dict[str, Any] = {"baseURL": base_url, "apiKey": "{env:" + ENV_KEY + "}"}
    if headers:
        options["headers"] = dict(headers)
    config: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "model": f"{PROVIDER_ID}/{model}",
        "autoupdate": False,
        "share": "disabled",
        # Everything is allowed without a prompt, except the tools that reach the web.
        "permission": {"*": "allow", "webfetch": "deny", "websearch": "deny"},
        "provider": {
            PROVIDER_ID: {
                "npm": PROVIDER_PACKAGES[provider],
                "name": "Tollgate",
                "options": options,
                "models": {model: entry},
            }
        },
    }
    if small_model:
        config["small_model"] = f"{PROVIDER_ID}/{model}"
    config.update(extra or {})
    return config


def seed_config_dir(config_dir: Path, config: Mapping[str, Any]) -> None:
    """Write opencode.json, plus what makes opencode's dependency install a no-op.

    For every config directory opencode runs (in the background) an npm install of
    ``@opencode-ai/plugin``, unless ``node_modules/`` exists and package-lock.json's
    root package already lists it: that is what is written here."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "opencode.json").write_text(json.dumps(config, indent=2) + "\n")
    (config_dir / "node_modules").mkdir(exist_ok=True)
    deps = {"@opencode-ai/plugin": OPENCODE_VERSION}
    (config_dir / "package.json").write_text(json.dumps({"dependencies": deps}) + "\n")
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": deps}}}
    (config_dir / "package-lock.json").write_text(json.dumps(lock) + "\n")


def opencode_env(
    home: Path, api_key: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A minimal environment: nothing of the caller's but PATH and locale."""
    variables = {
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        ENV_KEY: api_key,
        **QUIET_ENV,
    }
    return minimal_env(home, variables, extra)


class OpencodeResult(subprocess.CompletedProcess[str]):
    """CompletedProcess plus the parsed ``--format json`` events."""

    events: list[dict[str, Any]]
    home: Path | None

    @property
    def session_id(self) -> str | None:
        """The session id opencode sends as ``x-session-id`` (``ses_...``)."""
        for event in self.events:
            if event.get("sessionID"):
                return event["sessionID"]
        return None

    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls opencode ran: tool, call_id (as its provider gave it), status,
        input and output."""
        calls = []
        for event in self.events:
            part = event.get("part") or {}
            if event.get("type") == "tool_use" and part.get("type") == "tool":
                state = part.get("state") or {}
                calls.append(
                    {
                        "tool": part.get("tool"),
                        "call_id": part.get("callID"),
                        "status": state.get("status"),
                        "input": state.get("input"),
                        "output": state.get("output"),
                    }
                )
        return calls

    def steps(self) -> list[dict[str, Any]]:
        """One ``step_finish`` part per model call of the agent loop (title generation
        not included): reason ("tool-calls", "stop"...) and tokens."""
        return [e["part"] for e in self.events if e.get("type") == "step_finish"]

    def text(self) -> str:
        return "".join(
            (e.get("part") or {}).get("text") or "" for e in self.events if e.get("type") == "text"
        )

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == "error"]


parse_events = json_lines  # the JSON lines of its output


def run_opencode(
    *,
    gateway: str,
    api_key: str,
    model: str,
    prompt: str,
    workdir: Path,
    provider: str = "openai",
    output_limit: int | None = None,
    small_model: bool = True,
    title: str | None = None,
    base_url: str | None = None,
    timeout: float = 120.0,
    home: Path | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> OpencodeResult:
    """Run ``opencode run --format json PROMPT`` in ``workdir`` against ``gateway``
    (the server's root URL; the provider's baseURL is ``{gateway}/v1``).

    ``provider`` is "openai" (OpenAI-compatible, Bearer key) or "anthropic" (the
    Anthropic SDK, ``x-api-key``). ``title`` set: no title-generation request.
    ``base_url`` replaces ``{gateway}/v1`` as the provider's baseURL.
    ``home`` is a fresh temporary directory removed afterwards unless given. On
    timeout the whole process group is killed and TimeoutExpired raised."""
    binary = opencode_binary()
    if binary is None:
        raise FileNotFoundError("opencode not installed: run `npm ci --prefix tests/agents`")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    own_home = home is None
    home_path = Path(tempfile.mkdtemp(prefix="opencode-home-")) if home is None else Path(home)
    home_path.mkdir(parents=True, exist_ok=True)
    seed_config_dir(
        home_path / ".config" / "opencode",
        opencode_config(
            base_url=base_url or f"{gateway.rstrip('/')}/v1",
            model=model,
            provider=provider,
            output_limit=output_limit,
            small_model=small_model,
            headers=headers,
            extra=config,
        ),
    )
    args = [str(binary), "run", "--format", "json", "--print-logs", "--log-level", "INFO"]
    if title is not None:
        args += ["--title", title]
    args += [*extra_args, "--", prompt]
    try:
        returncode, stdout, stderr = agent_run(
            args, cwd=workdir, env=opencode_env(home_path, api_key, env), timeout=timeout
        )
        result = OpencodeResult(args, returncode, stdout, stderr)
        result.events = parse_events(stdout)
        result.home = None if own_home else home_path
        return result
    finally:
        if own_home:
            shutil.rmtree(home_path, ignore_errors=True)
