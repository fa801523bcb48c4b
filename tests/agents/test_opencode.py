"""opencode itself (`opencode run`), through Tollgate on a real port: opencode's own
provider (OpenAI-compatible or Anthropic AI SDK) times the upstream wire (an OpenAI
Chat model or an Anthropic one). The fake upstream plays the model: on the user turn
it writes a file with the request's own tool (opencode's `write`; for GPT-named models
opencode offers `apply_patch` instead), after the tool result it answers in text.
The file must exist, opencode must have seen tool-call ids of its own provider's
protocol, and every request it made (the title request
included) must be in the request log with opencode's session and a cost equal to the
fake's usage at catalog prices."""

from __future__ import annotations

import pytest

from gateway.models import RequestLog
from tests.agents.opencode import opencode_binary, run_opencode

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        opencode_binary() is None,
        reason="opencode is not installed (npm ci --prefix tests/agents; make test does it)",
    ),
]

CONTENT = "hi from opencode"
PROMPT = "Create hello.txt saying hi from opencode"
UPSTREAM_PATHS = {"chat": "/v1/chat/completions", "anthropic": "/v1/messages"}
CALL_ID_PREFIX = {"openai": "call_", "anthropic": "toolu_"}  # by opencode's provider
CLIENT_PROTOCOL = {"openai": "openai", "anthropic": "anthropic"}


@pytest.fixture
def models(world):
    return {"chat": world.gpt, "anthropic": world.claude}


@pytest.mark.parametrize("wire", ["chat", "anthropic"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_opencode_writes_a_file_through_tollgate(
    world, models, provider, wire, tmp_path, upstream_replay, upstream_counts, vendor_cost
):
    model = models[wire]
    workdir = tmp_path / "work"
    workdir.mkdir()
    target = workdir / "hello.txt"
    world.fake.file_write = (str(target), CONTENT)
    result = run_opencode(
        gateway=world.url,
        api_key=world.secret,
        model=model.public_id,
        provider=provider,
        output_limit=model.max_output_tokens,
        prompt=PROMPT,
        workdir=workdir,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not result.errors(), result.errors()
    # opencode offers GPT-named models apply_patch instead of write; a patch's added
    # lines end with a newline.
    tool = "apply_patch" if "gpt-" in model.public_id else "write"
    assert target.read_text() == (CONTENT + "\n" if tool == "apply_patch" else CONTENT)

    # The tool call as opencode saw it: its own file tool, with an id in its own
    # provider's protocol.
    calls = result.tool_calls()
    assert [c["status"] for c in calls] == ["completed"], calls
    assert calls[0]["tool"] == tool, calls
    assert calls[0]["call_id"].startswith(CALL_ID_PREFIX[provider]), calls
    assert [s["reason"] for s in result.steps()] == ["tool-calls", "stop"]
    assert "Tool result" in result.text()

    # Upstream: the title request (no tools) and the two turns of the agent loop. The
    # tool result went back with the id in the upstream's form.
    sent = [r for r in world.fake.requests if r["path"] == UPSTREAM_PATHS[wire]]
    assert len(sent) == 3, [r["path"] for r in world.fake.requests]
    assert sum(1 for r in sent if not r["body"].get("tools")) == 1
    last = max(sent, key=lambda r: len(r["body"]["messages"]))
    if wire == "anthropic":
        returned = [
            block["tool_use_id"]
            for message in last["body"]["messages"]
            for block in (message["content"] if isinstance(message["content"], list) else [])
            if block.get("type") == "tool_result"
        ]
        assert returned and all(i.startswith("toolu_") for i in returned), returned
    else:
        returned = [m["tool_call_id"] for m in last["body"]["messages"] if m["role"] == "tool"]
        assert returned and all(i.startswith("call_") for i in returned), returned

    # Every request opencode made is logged, under the session it sent (x-session-id),
    # at the vendor's price for what the upstream reported. The title request runs
    # beside the first turn, so rows and upstream requests are compared as multisets.
    usages = upstream_replay()
    world.drain()
    rows = list(RequestLog.objects.filter(organisation=world.organisation).order_by("started_at"))
    assert len(rows) == len(usages) == 3
    assert result.session_id and result.session_id.startswith("ses_")
    for row in rows:
        assert row.status_code == 200, (row.status_code, row.error_type, row.error_message)
        assert row.client_protocol == CLIENT_PROTOCOL[provider]
        assert row.session_id == result.session_id
    expected = sorted(vendor_cost(upstream_counts(usage), model) for usage in usages)
    assert sorted(row.cost_nano for row in rows) == expected
    assert all(cost > 0 for cost in expected)

    # The output limit reached the upstream in the form it takes. opencode's
    # OpenAI-compatible provider sends `max_tokens`; OpenAI's reasoning models (gpt-5.x)
    # refuse it ("Use 'max_completion_tokens' instead"), so a Chat upstream must get
    # max_completion_tokens.
    for request in sent:
        assert _upstream_limit(wire, request["body"]) == model.max_output_tokens


@pytest.mark.parametrize(("provider", "wire"), [("openai", "chat"), ("anthropic", "anthropic")])
def test_opencode_default_output_limit_is_clamped(world, models, provider, wire, tmp_path):
    """Without `limit.output` in its config opencode asks for 32000 output tokens, more
    than either model allows: Tollgate must clamp that to the model's max output also
    when the client speaks the upstream's own protocol (across protocols it does)."""
    model = models[wire]
    world.fake.file_write = (str(tmp_path / "hello.txt"), CONTENT)
    result = run_opencode(
        gateway=world.url,
        api_key=world.secret,
        model=model.public_id,
        provider=provider,
        output_limit=None,
        title="clamp",
        prompt=PROMPT,
        workdir=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sent = [r for r in world.fake.requests if r["path"] == UPSTREAM_PATHS[wire]]
    assert len(sent) == 2
    limits = [_upstream_limit(wire, r["body"]) for r in sent]
    assert limits == [model.max_output_tokens] * 2, [
        {k: r["body"].get(k) for k in ("max_tokens", "max_completion_tokens")} for r in sent
    ]


def _upstream_limit(wire: str, body: dict) -> int | None:
    """The output limit of a request the gateway sent upstream; on a Chat upstream only
    `max_completion_tokens` counts (a `max_tokens` there is an error: see above)."""
    if wire == "chat":
        return None if "max_tokens" in body else body.get("max_completion_tokens")
    return body.get("max_tokens")
