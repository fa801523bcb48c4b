"""Claude Code itself, through Tollgate on a real port. Claude Code speaks only
Anthropic Messages, so the matrix is that one client protocol times each upstream
wire: an Anthropic-protocol model (passed through) and an OpenAI Chat Completions
one (translated). The fake upstream plays the model: the first turn calls Claude
Code's own `Write` tool to write a file, the turn after the tool result answers in
text. The file must exist, the tool-call ids Claude Code saw must be Anthropic's, and
every call Claude Code made must be in the request log with its session and a cost
equal to the fake's usage at catalog prices."""

from __future__ import annotations

import uuid

import pytest

from gateway.models import RequestLog
from tests.agents.claude_code import claude_binary, run_claude

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        claude_binary() is None,
        reason="Claude Code is not installed (npm ci --prefix tests/agents; make test does it)",
    ),
]

CONTENT = "hi from claude code"
UPSTREAM_PATHS = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions"}


@pytest.fixture
def models(world):
    return {"anthropic": world.claude, "chat": world.gpt}


def _tool_result_ids(body: dict) -> list[str]:
    return [
        block["tool_use_id"]
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


@pytest.mark.parametrize("wire", ["anthropic", "chat"])
def test_claude_code_writes_a_file_through_tollgate(
    world, models, wire, tmp_path, upstream_replay, upstream_counts, vendor_cost
):
    model = models[wire]
    workdir = tmp_path / "work"
    workdir.mkdir()
    target = workdir / "hello.txt"
    world.fake.file_write = (str(target), CONTENT)
    session = str(uuid.uuid4())  # Claude Code sends it as x-claude-code-session-id
    result = run_claude(
        base_url=world.url,
        api_key=world.secret,
        model=model.public_id,
        prompt="Create hello.txt saying hi from claude code",
        workdir=workdir,
        timeout=60,
        session_id=session,
    )
    detail = f"stdout tail: {result.stdout[-3000:]}\nstderr: {result.stderr[-2000:]}"
    assert result.returncode == 0, detail
    assert result.result is not None and result.result["is_error"] is False, detail
    assert result.session_id == session
    assert target.read_text() == CONTENT

    # What Claude Code saw, from its own output: one Write call with an Anthropic id,
    # its result sent back under the same id, then the model's text answer.
    uses = result.tool_uses()
    assert [use["name"] for use in uses] == ["Write"]
    assert all(use["id"].startswith("toolu_") for use in uses)
    assert [r["tool_use_id"] for r in result.tool_results()] == [uses[0]["id"]]
    assert result.result_text.startswith("Tool result: ")

    # Every request Claude Code made reached the model, was answered 200 and logged
    # once, under Claude Code's session. (Claude Code quietly resends a call refused
    # with a 400, e.g. without its mid-conversation `role: "system"` messages, so a
    # run can succeed with a 400 in the log: that is a failure here.)
    world.drain()
    rows = list(RequestLog.objects.filter(organisation=world.organisation).order_by("started_at"))
    sent = [r for r in world.fake.requests if r["method"] == "POST"]
    assert [(row.status_code, row.error_message) for row in rows] == [(200, "")] * len(rows)
    assert {row.session_id for row in rows} == {session}
    assert all(row.client_protocol == "anthropic" for row in rows)
    assert len(rows) == len(sent) == 2  # the Write call, then the answer to its result
    assert [r["path"] for r in sent] == [UPSTREAM_PATHS[wire]] * 2

    # The upstream got the tool result back under the id it gave, in its own protocol.
    if wire == "anthropic":
        assert _tool_result_ids(sent[1]["body"]) == [uses[0]["id"]]
    else:
        tool_messages = [m for m in sent[1]["body"]["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tool_messages]
        assert all(m["tool_call_id"].startswith("call_") for m in tool_messages)

    usages = upstream_replay()
    assert len(usages) == len(rows)
    for row, usage in zip(rows, usages, strict=True):
        assert row.cost_nano == vendor_cost(upstream_counts(usage), model) > 0
