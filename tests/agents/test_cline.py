"""Cline CLI itself, through Tollgate on a real port: each of Cline's two providers
that take a base URL (OpenAI-compatible, Anthropic) against each upstream wire (a model
served over OpenAI Chat Completions, one served over Anthropic Messages). The fake
upstream plays the model: the first turn calls Cline's own file-writing tool (`editor`,
or `apply_patch` for a model id containing "gpt"), the turn after the tool result
answers in text, which ends Cline's task. The file must exist, the tool-call id Cline
saw must be in its provider's format, and both calls must be in the request log with
the run's session and a cost equal to the fake's usage at catalog prices."""

from __future__ import annotations

import pytest

from gateway.models import RequestLog
from tests.agents.cline import cline_binary, run_cline

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        cline_binary() is None,
        reason="Cline CLI is not installed (npm ci --prefix tests/agents; make test does it)",
    ),
]

CONTENT = "hi from cline"
UPSTREAM_PATHS = {"chat": "/v1/chat/completions", "anthropic": "/v1/messages"}
# The id prefix of a tool call as each client protocol spells it.
CALL_ID_PREFIX = {"openai": "call_", "anthropic": "toolu_"}


@pytest.fixture
def models(world):
    return {"chat": world.gpt, "anthropic": world.claude}


def _upstream_call_ids(wire: str, body: dict) -> list[str]:
    """The ids of the tool results in a request the gateway sent upstream."""
    if wire == "anthropic":
        return [
            block["tool_use_id"]
            for message in body["messages"]
            for block in (message["content"] if isinstance(message["content"], list) else [])
            if block.get("type") == "tool_result"
        ]
    return [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]


@pytest.mark.parametrize("wire", ["chat", "anthropic"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_cline_writes_a_file_through_tollgate(
    world, models, provider, wire, tmp_path, upstream_replay, upstream_counts, vendor_cost
):
    model = models[wire]
    workdir = tmp_path / "work"
    workdir.mkdir()
    target = workdir / "hello.txt"
    world.fake.file_write = (str(target), CONTENT)
    session = f"cline-{provider}-{wire}"
    result = run_cline(
        provider=provider,
        # Both providers POST {base_url}/<path>: chat/completions or messages.
        base_url=world.openai_base,
        api_key=world.secret,
        model=model.public_id,
        prompt="Create hello.txt saying hi from cline",
        workdir=workdir,
        # Cline sends no session header of its own: this is Tollgate's, set through
        # the provider's `headers` setting.
        headers={"X-Tollgate-Session-Id": session},
        timeout=60,
    )
    assert result.returncode == 0, result.error
    assert result.run_result["finishReason"] == "completed"
    calls = result.tool_calls()
    assert [c["toolName"] for c in calls] == [
        "apply_patch" if "gpt" in model.public_id else "editor"
    ]
    assert target.read_text() == CONTENT  # Cline's apply_patch adds no final newline
    # The id Cline saw is in its own provider's protocol form...
    assert all(i.startswith(CALL_ID_PREFIX[provider]) for i in result.tool_call_ids())
    assert result.run_result["text"].startswith("Tool result")

    # ...and the upstream got it back in its own. Cline makes no side requests (no
    # model list, no token count, no title): every upstream request is a model call.
    sent = world.fake.requests
    assert [(r["method"], r["path"]) for r in sent] == [("POST", UPSTREAM_PATHS[wire])] * 2
    upstream_ids = _upstream_call_ids(wire, sent[1]["body"])
    assert upstream_ids and all(
        i.startswith(CALL_ID_PREFIX["anthropic" if wire == "anthropic" else "openai"])
        for i in upstream_ids
    )
    # Cline's Anthropic provider asks for max_tokens 128000 for a model it does not
    # know; what reaches the upstream must fit the model.
    for request in sent:
        asked = request["body"].get("max_tokens") or request["body"].get("max_completion_tokens")
        assert asked is None or asked <= model.max_output_tokens, asked

    usages = upstream_replay()
    world.drain()
    rows = list(RequestLog.objects.filter(organisation=world.organisation).order_by("started_at"))
    assert len(rows) == len(usages) == 2
    for row, usage in zip(rows, usages, strict=True):
        assert row.status_code == 200
        assert row.client_protocol == provider
        assert row.session_id == session
        assert row.cost_nano == vendor_cost(upstream_counts(usage), model) > 0


def test_cline_anthropic_provider_on_the_bare_address(world, tmp_path):
    """Cline's Anthropic provider (the AI SDK's) POSTs {base_url}/messages: given the
    bare address, as Anthropic's own base URL is often written, that is /messages."""
    workdir = tmp_path / "work"
    target = workdir / "hello.txt"
    world.fake.file_write = (str(target), CONTENT)
    result = run_cline(
        provider="anthropic",
        base_url=world.url,
        api_key=world.secret,
        model=world.claude.public_id,
        prompt="Create hello.txt saying hi from cline",
        workdir=workdir,
        max_tokens=world.claude.max_output_tokens,
        timeout=60,
    )
    assert result.returncode == 0, result.error
    assert target.read_text() == CONTENT
    assert [r["path"] for r in world.fake.requests] == ["/v1/messages"] * 2
    world.drain()
    rows = RequestLog.objects.filter(organisation=world.organisation)
    assert [row.status_code for row in rows] == [200, 200]
