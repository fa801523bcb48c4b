"""Run the pinned Claude Code CLI (`claude -p`) against an Anthropic Messages endpoint.

The binary comes from `npm ci --prefix tests/agents` (see claude_code.md beside this
file). Every run gets a fresh HOME (and temp dir) in a temporary folder, a minimal
environment (no inherited ANTHROPIC_* or other keys), no stdin, and flags that need no
login, no onboarding and no permission prompt, so a test can drive Claude Code through
Tollgate:

    from tests.agents.claude_code import claude_binary, run_claude

    if claude_binary() is None:
        pytest.skip("Claude Code not installed: npm ci --prefix tests/agents")
    result = run_claude(base_url=gateway, api_key=secret, model="claude-test-4.6",
                        prompt="create hello.txt containing 'hi'", workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.tool_use_ids() and result.result_text.startswith("Tool result")

``base_url`` is the bare gateway URL: Claude Code appends ``/v1/messages`` itself.
With the environment below it makes no request but to ``base_url`` (no DNS lookup
either): CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC alone turns off the telemetry to
api.anthropic.com and the ``HEAD {base_url}/api/hello`` preconnect; the others are
kept as a second line.
"""

from __future__ import annotations

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
CLAUDE_CODE_VERSION = "2.1.332"  # must match package.json
PACKAGE_DIR = AGENTS_DIR / "node_modules" / "@anthropic-ai"

# npm installs one of these optional packages; each holds the native `claude`.
_PLATFORM_PACKAGES = {
    ("Linux", "x86_64"): ("claude-code-linux-x64", "claude-code-linux-x64-musl"),
    ("Linux", "aarch64"): ("claude-code-linux-arm64", "claude-code-linux-arm64-musl"),
    ("Darwin", "x86_64"): ("claude-code-darwin-x64",),
    ("Darwin", "arm64"): ("claude-code-darwin-arm64",),
}

# Off: everything but the model calls. CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is the
# one that matters (see claude_code.md for what each run tried without it).
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
}


def claude_binary() -> Path | None:
    """The native Claude Code executable under tests/agents/node_modules, or None."""
    for package in _PLATFORM_PACKAGES.get((platform.system(), platform.machine()), ()):
        path = PACKAGE_DIR / package / "claude"
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def claude_env(
    home: Path, base_url: str, api_key: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A minimal environment: nothing of the caller's but PATH and locale.

    The key goes in ANTHROPIC_API_KEY (sent as ``x-api-key``); in ``-p`` mode that
    needs no login and no onboarding. ANTHROPIC_AUTH_TOKEN would send it as
    ``Authorization: Bearer`` instead.
    """
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    variables = {
        "TMPDIR": str(tmp),  # else it writes /tmp/claude-<uid>/
        "CLAUDE_CODE_TMPDIR": str(tmp),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        **QUIET_ENV,
    }
    return minimal_env(home, variables, extra)


class ClaudeResult(subprocess.CompletedProcess[str]):
    """CompletedProcess plus the parsed ``stream-json`` events.

    ``result`` is the last ``{"type": "result"}`` event (``is_error``, ``result``,
    ``session_id``, ``num_turns``, ``usage``...), or None if Claude Code printed none.
    """

    events: list[dict[str, Any]]
    home: Path | None

    @property
    def result(self) -> dict[str, Any] | None:
        for event in reversed(self.events):
            if event.get("type") == "result":
                return event
        return None

    @property
    def result_text(self) -> str | None:
        """The final answer's text (``result`` of the result event)."""
        return (self.result or {}).get("result")

    @property
    def session_id(self) -> str | None:
        """The session id of the ``system/init`` event."""
        for event in self.events:
            if event.get("type") == "system" and event.get("subtype") == "init":
                return event.get("session_id")
        return None

    def assistant_blocks(self, kind: str) -> list[dict[str, Any]]:
        """Content blocks of type ``kind`` in the assistant messages Claude Code got."""
        return [
            block
            for event in self.events
            if event.get("type") == "assistant"
            for block in (event.get("message") or {}).get("content") or ()
            if isinstance(block, dict) and block.get("type") == kind
        ]

    def tool_uses(self) -> list[dict[str, Any]]:
        """The ``tool_use`` blocks the model sent (id, name, input)."""
        return self.assistant_blocks("tool_use")

    def tool_use_ids(self) -> list[str]:
        return [block["id"] for block in self.tool_uses()]

    def tool_results(self) -> list[dict[str, Any]]:
        """The ``tool_result`` blocks Claude Code sent back (tool_use_id, content)."""
        return [
            block
            for event in self.events
            if event.get("type") == "user"
            for block in (event.get("message") or {}).get("content") or ()
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]


parse_events = json_lines  # the JSON lines of its output


def run_claude(
    *,
    base_url: str,
    api_key: str,
    model: str,
    prompt: str,
    workdir: Path,
    timeout: float = 120.0,
    home: Path | None = None,
    permission_mode: str = "acceptEdits",
    allowed_tools: Sequence[str] = ("Write",),
    max_retries: int | None = 0,
    session_id: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ClaudeResult:
    """Run ``claude -p PROMPT --output-format stream-json --verbose`` in ``workdir``.

    Claude Code POSTs ``{base_url}/v1/messages?beta=true`` with the key in
    ``x-api-key``. Exit code 0 with a result event whose ``is_error`` is false means
    the task completed; on an API error it prints a result event with
    ``is_error: true`` (the error text in ``result``) and exits 1.

    ``permission_mode`` "acceptEdits" lets Write/Edit run in the working directory
    without asking, and ``allowed_tools`` pre-approves tools by name (pass
    ``permission_mode="bypassPermissions"`` for everything: as root Claude Code
    refuses it unless IS_SANDBOX=1 is in ``env``). ``max_retries`` is
    CLAUDE_CODE_MAX_RETRIES, 0 so that a gateway error fails the run at once (its
    default is 10 retries with backoff); None keeps the default.

    ``session_id`` (a UUID) is passed as ``--session-id``: Claude Code then sends it as
    ``x-claude-code-session-id`` on every request and in its events; without it a
    random one is made.

    ``home`` is a fresh temporary directory removed afterwards unless given. On
    timeout the whole process group is killed and TimeoutExpired raised.
    """
    binary = claude_binary()
    if binary is None:
        raise FileNotFoundError("Claude Code not installed: run `npm ci --prefix tests/agents`")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    own_home = home is None
    home_path = Path(tempfile.mkdtemp(prefix="claude-home-")) if home is None else Path(home)
    home_path.mkdir(parents=True, exist_ok=True)
    extra_env = {} if max_retries is None else {"CLAUDE_CODE_MAX_RETRIES": str(max_retries)}
    extra_env.update(env or {})
    args = [
        str(binary),
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        model,
        "--permission-mode",
        permission_mode,
        "--no-session-persistence",
    ]
    if session_id is not None:
        args += ["--session-id", session_id]
    if allowed_tools:
        args += ["--allowedTools", ",".join(allowed_tools)]
    args += [*extra_args, "--", prompt]
    try:
        returncode, stdout, stderr = agent_run(
            args,
            cwd=workdir,
            env=claude_env(home_path, base_url, api_key, extra_env),
            timeout=timeout,
        )
        result = ClaudeResult(args, returncode, stdout, stderr)
        result.events = parse_events(stdout)
        result.home = None if own_home else home_path
        return result
    finally:
        if own_home:
            shutil.rmtree(home_path, ignore_errors=True)
