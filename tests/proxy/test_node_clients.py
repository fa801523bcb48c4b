"""The official Node SDKs (openai, @anthropic-ai/sdk, pinned in tests/node) work
against the running gateway. Skipped where Node or the installed packages are missing
(`make test` installs them with `npm ci`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent.parent / "node"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (NODE_DIR / "node_modules" / "openai").exists(),
        reason="run `npm ci` in tests/node (make test does)",
    ),
]


def test_the_node_sdks_work_through_the_gateway(world):
    result = subprocess.run(
        ["node", "clients.mjs", world.url, world.secret, "test-gpt-5.5", "claude-test-4.6"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["openai_text"] == "Echo: hello from node"
    assert report["openai_cost"] > 0
    assert report["openai_stream_text"] == "Echo: stream from node"
    assert report["openai_stream_cost"] > 0
    assert report["openai_error"] == {"status": 404, "class": "NotFoundError"}
    assert report["anthropic_text"] == "Echo: hello claude from node"
    assert report["anthropic_stream_text"] == "Echo: stream claude"
    assert report["anthropic_stream_output_tokens"] > 0
