"""The Anthropic-native endpoint (POST /v1/messages, count_tokens, the model list),
called with the official `anthropic` SDK and with Roo Code's request shape against the
running ASGI server, served by an Anthropic upstream (claude-test-4.6) and, translated,
by an OpenAI upstream (test-gpt-5.5). Both upstreams are the fake, which refuses what
the real vendors refuse. Errors: test_proxy_anthropic_errors.py; prompt caching:
test_proxy_prompt_caching.py."""

from __future__ import annotations

import json
import re

import anthropic
import httpx
import pytest

from billing.models import LedgerEntry
from billing.selectors import balance_get
from gateway.models import RequestLog
from gateway.protocols.ids import tool_id_to_openai

pytestmark = pytest.mark.django_db(transaction=True)

CLAUDE, GPT = "claude-test-4.6", "test-gpt-5.5"
BOTH = pytest.mark.parametrize("model", [CLAUDE, GPT])
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
READ_FILE = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
    },
}
LIST_FILES = {"name": "list_files", "input_schema": {"type": "object", "properties": {}}}


def client(world, **kwargs) -> anthropic.Anthropic:
    kwargs.setdefault("timeout", 20)
    return anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0, **kwargs)


def model_of(world, model: str):
    return world.claude if model == CLAUDE else world.gpt


def upstream_calls(world) -> list[dict]:
    return [r for r in world.fake.requests if r["path"] in ("/v1/messages", "/v1/chat/completions")]


def counts(usage) -> dict[str, int]:
    """The five billable counts of an SDK Usage (Anthropic's split)."""
    split = usage.cache_creation
    return {
        "input": usage.input_tokens,
        "output": usage.output_tokens,
        "cache_read": usage.cache_read_input_tokens or 0,
        "write_5m": split.ephemeral_5m_input_tokens if split else 0,
        "write_1h": split.ephemeral_1h_input_tokens if split else 0,
    }


def assert_billed(
    world, request_id: str, cost_nano: int, *, model: str, tokens: dict[str, int]
) -> RequestLog:
    """The request log row and the ledger debit carry the same cost as the client saw."""
    world.drain()
    row = RequestLog.objects.get(request_id=request_id)
    assert (row.outcome, row.status_code, row.client_protocol) == ("ok", 200, "anthropic")
    assert row.resolved_model == model
    assert row.cost_nano == cost_nano
    assert (
        row.input_tokens,
        row.output_tokens,
        row.cache_read_tokens,
        row.cache_write_5m_tokens,
        row.cache_write_1h_tokens,
    ) == (
        tokens["input"],
        tokens["output"],
        tokens["cache_read"],
        tokens["write_5m"],
        tokens["write_1h"],
    )
    debit = LedgerEntry.objects.get(idempotency_key=f"usage:{request_id}")
    assert debit.amount_nano == -cost_nano
    return row


def stream_message(c: anthropic.Anthropic, **kwargs):
    """(final message, every event, response headers) of a streamed message."""
    with c.messages.stream(**kwargs) as stream:
        events = list(stream)
        final = stream.get_final_message()
        headers = stream.response.headers
    return final, events, headers


def delta_cost(events) -> float:
    """usage.cost of the (single) message_delta event."""
    deltas = [e for e in events if e.type == "message_delta"]
    assert len(deltas) == 1
    return deltas[0].usage.model_extra["cost"]


# --- messages, both upstreams ---------------------------------------------------------


@BOTH
def test_it_answers_a_message_with_usage_cost_log_and_debit(world, vendor_cost, model):
    raw = client(world).messages.with_raw_response.create(
        model=model,
        max_tokens=256,
        system="You are terse",
        messages=[{"role": "user", "content": "hello gateway world"}],
    )
    message = raw.parse()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Echo: hello gateway world"
    assert message.model == model
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    usage = message.usage
    # the fake counts words: 3 system + 3 user in, "Echo: hello gateway world" out
    assert (usage.input_tokens, usage.output_tokens) == (6, 4)
    assert usage.cache_read_input_tokens == 0 and usage.cache_creation_input_tokens == 0
    cost = vendor_cost(counts(usage), model_of(world, model))
    assert round(usage.model_extra["cost"] * 1e9) == cost
    assert raw.headers["x-tollgate-cost-usd"] == f"0.{cost:09d}"
    assert raw.headers["x-tollgate-model"] == model
    row = assert_billed(
        world, raw.headers["x-tollgate-request-id"], cost, model=model, tokens=counts(usage)
    )
    assert not row.stream and row.requested_model == model
    assert balance_get(organisation=world.organisation) == 100 * 10**9 - cost


@BOTH
def test_it_streams_a_message_with_cost_in_message_delta(world, vendor_cost, model):
    final, events, headers = stream_message(
        client(world),
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "one two three four"}],
    )
    assert final.content[0].text == "Echo: one two three four"
    assert final.stop_reason == "end_turn"
    assert events[0].type == "message_start"
    # Anthropic reports its count up front; an OpenAI upstream only at the end, so the
    # gateway's estimate stands in (never a silent 0) until message_delta corrects it.
    start_input = events[0].message.usage.input_tokens
    assert start_input == 4 if model == CLAUDE else start_input > 0
    assert events[-1].type == "message_stop"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 5)
    cost = vendor_cost(counts(final.usage), model_of(world, model))
    assert round(delta_cost(events) * 1e9) == cost
    row = assert_billed(
        world, headers["x-tollgate-request-id"], cost, model=model, tokens=counts(final.usage)
    )
    assert row.stream and row.ttfb_ms is not None and not row.usage_estimated


@BOTH
def test_tool_use_works_across_two_turns(world, model):
    c = client(world)
    messages: list[dict] = [{"role": "user", "content": "read the readme"}]
    first = c.messages.create(
        model=model, max_tokens=512, tools=[READ_FILE, LIST_FILES], messages=messages
    )
    assert first.stop_reason == "tool_use"
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert use.id.startswith("toolu_") and ANTHROPIC_ID.match(use.id)
    assert (use.name, use.input) == ("read_file", {"path": "path-value"})
    assert first.usage.output_tokens == 10  # one tool call

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "# Tollgate"}],
        },
    ]
    second = c.messages.create(
        model=model, max_tokens=512, tools=[READ_FILE, LIST_FILES], messages=messages
    )
    assert second.content[0].text == "Tool result: # Tollgate"
    assert second.stop_reason == "end_turn"
    _assert_upstream_got_the_call_back(world, model, use.id)


def _assert_upstream_got_the_call_back(world, model: str, client_id: str) -> None:
    """Turn 2 reached the upstream with the id it issued in turn 1, in its own protocol
    (the fake refuses unpaired or malformed ids, so the 200 already says much)."""
    body = upstream_calls(world)[-1]["body"]
    if model == CLAUDE:
        assistant, result = body["messages"][1], body["messages"][2]
        assert assistant["content"][-1]["id"] == client_id
        assert result["content"][0]["tool_use_id"] == client_id
    else:
        assistant, tool = body["messages"][1], body["messages"][2]
        upstream_id = tool_id_to_openai(client_id)
        assert upstream_id.startswith("call_") and len(upstream_id) <= 40
        assert assistant["tool_calls"][0]["id"] == upstream_id
        assert tool == {"role": "tool", "tool_call_id": upstream_id, "content": "# Tollgate"}


@BOTH
def test_streamed_tool_use_works_across_two_turns(world, vendor_cost, model):
    c = client(world)
    messages: list[dict] = [{"role": "user", "content": "narrate and read the readme"}]
    final, events, headers = stream_message(
        c, model=model, max_tokens=512, tools=[READ_FILE], messages=messages
    )
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Calling read_file."
    use = final.content[1]
    assert use.id.startswith("toolu_") and ANTHROPIC_ID.match(use.id)
    assert use.input == {"path": "path-value"}
    assert final.stop_reason == "tool_use"
    starts = [e for e in events if e.type == "content_block_start"]
    assert [e.index for e in starts] == [0, 1]
    assert starts[1].content_block.id == use.id
    cost = vendor_cost(counts(final.usage), model_of(world, model))
    assert round(delta_cost(events) * 1e9) == cost
    assert_billed(
        world, headers["x-tollgate-request-id"], cost, model=model, tokens=counts(final.usage)
    )

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "# Tollgate"}],
        },
    ]
    second, _, _ = stream_message(
        c, model=model, max_tokens=512, tools=[READ_FILE], messages=messages
    )
    assert second.content[0].text == "Tool result: # Tollgate"
    assert second.stop_reason == "end_turn"
    _assert_upstream_got_the_call_back(world, model, use.id)


def ask(c: anthropic.Anthropic, stream: bool, **kwargs):
    """One message, streamed (the SDK's accumulated final message) or not."""
    if stream:
        return stream_message(c, **kwargs)[0]
    return c.messages.create(**kwargs)


@BOTH
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_parallel_tool_results_go_back_together(world, model, stream):
    c = client(world)
    tools = [READ_FILE, LIST_FILES]
    messages: list[dict] = [{"role": "user", "content": "do both in parallel"}]
    first = ask(c, stream, model=model, max_tokens=512, tools=tools, messages=messages)
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [
        ("read_file", {"path": "path-value"}),
        ("list_files", {}),
    ]
    assert len({u.id for u in uses}) == 2
    assert first.usage.output_tokens == 20
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": "readme"},
                {"type": "tool_result", "tool_use_id": uses[1].id, "content": "a.py b.py"},
            ],
        },
    ]
    second = ask(c, stream, model=model, max_tokens=512, tools=tools, messages=messages)
    assert second.content[0].text == "Tool result: readme | a.py b.py"


def test_a_forced_tool_choice_reaches_an_openai_upstream(world):
    message = client(world).messages.create(
        model=GPT,
        max_tokens=512,
        tools=[READ_FILE, LIST_FILES],
        tool_choice={"type": "tool", "name": "list_files"},
        messages=[{"role": "user", "content": "anything"}],
    )
    assert [b.name for b in message.content if b.type == "tool_use"] == ["list_files"]
    assert upstream_calls(world)[-1]["body"]["tool_choice"] == {
        "type": "function",
        "function": {"name": "list_files"},
    }


def test_thinking_becomes_reasoning_effort_for_an_openai_upstream(world):
    message = client(world).messages.create(
        model=GPT,
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "think hard"}],
    )
    assert upstream_calls(world)[-1]["body"]["reasoning_effort"] == "low"
    assert message.content[-1].text == "Echo: think hard"
    assert message.usage.output_tokens == 8 + 3  # low effort's reasoning, then the text


@BOTH
def test_a_missing_max_tokens_means_the_models_maximum(world, model):
    response = httpx.post(
        f"{world.url}/v1/messages",
        timeout=20,
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": world.secret, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 200, response.text
    body = upstream_calls(world)[-1]["body"]
    limit = body["max_tokens"] if model == CLAUDE else body["max_completion_tokens"]
    assert limit == model_of(world, model).max_output_tokens


def test_disable_parallel_tool_use_reaches_an_openai_upstream(world):
    client(world).messages.create(
        model=GPT,
        max_tokens=512,
        tools=[READ_FILE, LIST_FILES],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "do both in parallel"}],
    )
    body = upstream_calls(world)[-1]["body"]
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("auto", False)


@BOTH
def test_stop_sequences_and_max_tokens_give_their_stop_reasons(world, model):
    c = client(world)
    stopped = c.messages.create(
        model=model,
        max_tokens=256,
        stop_sequences=["gamma"],
        messages=[{"role": "user", "content": "alpha beta gamma"}],
    )
    assert stopped.content[0].text == "Echo: alpha beta"
    if model == CLAUDE:
        assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "gamma")
    else:  # OpenAI's "stop" does not say whether a sequence matched
        assert (stopped.stop_reason, stopped.stop_sequence) == ("end_turn", None)
    sent = upstream_calls(world)[-1]["body"]
    assert sent["stop_sequences" if model == CLAUDE else "stop"] == ["gamma"]
    cut = c.messages.create(
        model=model, max_tokens=2, messages=[{"role": "user", "content": "alpha beta gamma"}]
    )
    assert cut.stop_reason == "max_tokens"
    assert cut.content[0].text == "Echo: alpha"


def test_an_openai_upstream_never_sees_cache_control_or_anthropic_only_fields(world):
    client(world).messages.create(
        model=GPT,
        max_tokens=256,
        system=[
            {
                "type": "text",
                "text": "You are terse",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        metadata={"user_id": "u-1"},
    )
    body = upstream_calls(world)[-1]["body"]
    assert "cache_control" not in json.dumps(body)
    assert body["safety_identifier"] == "u-1"
    assert body["model"] == "gpt-5.5"


# --- Roo Code's "Anthropic" provider --------------------------------------------------

ROO_BETA = "fine-grained-tool-streaming-2025-05-14,prompt-caching-2024-07-31"


def _roo_body(**extra) -> dict:
    return {
        "model": "claude-test-4-6",
        "max_tokens": 8192,
        "temperature": 0,
        "stream": True,
        "system": [
            {
                "text": "You are Roo, a skilled engineer.",
                "type": "text",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<task>read the readme</task>",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            }
        ],
        "tools": [
            {
                "name": "read_file",
                "description": "Read a file",
                "input_schema": READ_FILE["input_schema"],
            }
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": False},
        **extra,
    }


def _roo_post(world, body: dict) -> list[tuple[str, dict]]:
    headers = {
        "x-api-key": world.secret,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": ROO_BETA,
        "content-type": "application/json",
    }
    events = []
    with httpx.stream(
        "POST", f"{world.url}/v1/messages", json=body, headers=headers, timeout=20
    ) as response:
        assert response.status_code == 200, response.read()
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


def test_roo_codes_anthropic_provider_works_with_the_hyphenated_id(world):
    events = _roo_post(world, _roo_body())
    seen = upstream_calls(world)[-1]
    assert seen["body"]["model"] == "claude-sonnet-4-6"
    assert seen["headers"]["anthropic-beta"] == ROO_BETA
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["headers"]["x-api-key"] == "upstream-key"
    assert seen["body"]["system"] == _roo_body()["system"]
    assert seen["body"]["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": False}
    start = next(data for name, data in events if name == "message_start")
    assert "cache_creation_input_tokens" in start["message"]["usage"]
    delta = next(data for name, data in events if name == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == 10 and delta["usage"]["cost"] > 0
    world.drain()
    row = RequestLog.objects.get()
    assert (row.requested_model, row.resolved_model) == ("claude-test-4-6", CLAUDE)
    assert row.cache_write_5m_tokens > 0  # the system prompt and task were written


def test_roo_codes_thinking_turn_and_its_tool_result_reach_the_upstream(world):
    thinking = {"type": "enabled", "budget_tokens": 8192}
    body = _roo_body(max_tokens=16384, thinking=thinking)
    del body["temperature"]  # Roo sends no temperature with thinking on
    events = _roo_post(world, body)
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [b["type"] for b in starts] == ["thinking", "tool_use"]
    # Roo asks 16,384 tokens of a model whose maximum here is 8,192: clamped, with
    # the thinking budget kept below the limit, as Anthropic requires.
    sent = world.fake.requests[-1]["body"]
    assert sent["max_tokens"] == world.claude.max_output_tokens == 8192
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 8191}
    thought = "".join(
        d["delta"]["thinking"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "thinking_delta"
    )
    signature = next(
        d["delta"]["signature"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"
    )
    tool = starts[1]
    body["messages"] += [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": thought, "signature": signature},
                {
                    "type": "tool_use",
                    "id": tool["id"],
                    "name": tool["name"],
                    "input": {"path": "path-value"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool["id"], "content": "# Tollgate"}
            ],
        },
    ]
    events = _roo_post(world, body)
    text = "".join(
        d["delta"]["text"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "text_delta"
    )
    assert text == "Tool result: # Tollgate"


# --- models and token counting --------------------------------------------------------


def test_models_list_in_anthropics_shape(world):
    models = list(client(world).models.list())
    ids = {m.id for m in models}
    assert {CLAUDE, GPT} <= ids
    assert "test-gpt-pro" not in ids  # only in the pro group
    assert all(m.type == "model" and m.created_at for m in models)
    assert client(world).models.retrieve("claude-test-4-6").id == CLAUDE


def test_count_tokens_is_forwarded_for_an_anthropic_upstream(world):
    raw = client(world).messages.with_raw_response.count_tokens(
        model=CLAUDE,
        system="You are terse",
        tools=[READ_FILE],
        messages=[{"role": "user", "content": "count these four words"}],
    )
    # the fake's formula: 3 system + 4 user + (10 + 3 description) for the tool
    assert raw.parse().input_tokens == 20
    seen = world.fake.requests[-1]
    assert seen["path"] == "/v1/messages/count_tokens"
    assert seen["body"]["model"] == "claude-sonnet-4-6"
    assert "x-tollgate-token-count" not in raw.headers
    world.drain()
    assert not RequestLog.objects.exists()  # free, and not a model call


def test_count_tokens_is_estimated_locally_for_an_openai_upstream(world):
    raw = client(world).messages.with_raw_response.count_tokens(
        model=GPT, messages=[{"role": "user", "content": "count these four words " * 40}]
    )
    estimate = raw.parse().input_tokens
    assert raw.headers["x-tollgate-token-count"] == "estimated"
    # about four characters a token: 920 characters
    assert 200 <= estimate <= 300
    assert world.fake.requests == []
