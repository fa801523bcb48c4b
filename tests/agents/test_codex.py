"""Codex CLI itself, through Tollgate on a real port, once per upstream wire: the
fake upstream plays the model (the first turn calls Codex's own `exec_command` tool
to write a file, the turn after the tool result answers in text). The file must
exist, and every call Codex made must be in the request log with its session and a
cost equal to the fake's usage at catalog prices."""

from __future__ import annotations

import json
import shlex

import pytest

from gateway.models import RequestLog
from tests.agents.codex import codex_binary, run_codex

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        codex_binary() is None,
        reason="Codex CLI is not installed (npm ci --prefix tests/agents; make test does it)",
    ),
]

CONTENT = "hi from codex"
UPSTREAM_PATHS = {
    "responses": "/v1/responses",
    "chat": "/v1/chat/completions",
    "anthropic": "/v1/messages",
}


@pytest.fixture
def models(world, native_model):
    return {"responses": native_model, "chat": world.gpt, "anthropic": world.claude}


@pytest.mark.parametrize("wire", ["responses", "chat", "anthropic"])
def test_codex_writes_a_file_through_tollgate(
    world, models, wire, tmp_path, upstream_replay, upstream_counts, vendor_cost
):
    model = models[wire]
    workdir = tmp_path / "work"
    workdir.mkdir()
    world.fake.tool_arguments = {
        "exec_command": {"cmd": f"printf %s {shlex.quote(CONTENT)} > hello.txt"}
    }
    result = run_codex(
        base_url=world.openai_base,
        api_key=world.secret,
        model=model.public_id,
        prompt="Create hello.txt saying hi from codex",
        workdir=workdir,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (workdir / "hello.txt").read_text() == CONTENT
    assert "Tool result" in result.last_message

    sent = [r for r in world.fake.requests if r["path"] == UPSTREAM_PATHS[wire]]
    assert len(sent) == 2
    # The tool result Codex sent back carries the call id it was given, in its own
    # protocol's form; the upstream got it back in its own.
    call_ids = [
        item["call_id"]
        for item in json.loads(json.dumps(sent[1]["body"])).get("input", [])
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    if wire == "responses":
        assert call_ids and all(c.startswith("call_") for c in call_ids)
    elif wire == "anthropic":
        results = [
            block
            for message in sent[1]["body"]["messages"]
            for block in (message["content"] if isinstance(message["content"], list) else [])
            if block.get("type") == "tool_result"
        ]
        assert results and all(b["tool_use_id"].startswith("toolu_") for b in results)
    else:
        tool_messages = [m for m in sent[1]["body"]["messages"] if m["role"] == "tool"]
        assert tool_messages and tool_messages[0]["tool_call_id"].startswith("call_")

    usages = upstream_replay()
    world.drain()
    rows = list(RequestLog.objects.filter(organisation=world.organisation).order_by("started_at"))
    assert len(rows) == len(usages) == 2
    sessions = {row.session_id for row in rows}
    assert len(sessions) == 1 and sessions != {""}
    for row, usage in zip(rows, usages, strict=True):
        assert row.status_code == 200
        assert row.client_protocol == "responses"
        assert row.cost_nano == vendor_cost(upstream_counts(usage), model) > 0
