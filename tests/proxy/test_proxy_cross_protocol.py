"""OpenAI clients served by an Anthropic upstream: the official `openai` SDK against
POST /v1/chat/completions for claude-test-4.6 (upstream claude-sonnet-4-6), with the
request, response, stream, tool-call ids, usage, cost and errors translated. The fake
upstream refuses what Anthropic refuses, so every 200 here is also a request Anthropic
would have taken. (Anthropic clients served by an OpenAI upstream are in
test_proxy_anthropic.py, parametrised over both upstreams; prompt caching for both
client protocols is in test_proxy_prompt_caching.py.)"""

from __future__ import annotations

import json
import re

import openai
import pytest

from billing.models import LedgerEntry
from gateway.models import RequestLog
from gateway.protocols.ids import tool_id_to_anthropic

pytestmark = pytest.mark.django_db(transaction=True)

CLAUDE = "claude-test-4.6"
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
}
LIST_FILES = {
    "type": "function",
    "function": {"name": "list_files", "parameters": {"type": "object", "properties": {}}},
}


def client(world, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("timeout", 20)
    return openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0, **kwargs)


def upstream_bodies(world) -> list[dict]:
    return [r["body"] for r in world.fake.requests if r["path"] == "/v1/messages"]


def openai_counts(usage) -> dict[str, int]:
    """The billable counts an OpenAI-shaped usage implies, for usage without 1h writes
    (OpenAI's shape cannot tell 5m from 1h)."""
    read = usage.prompt_tokens_details.cached_tokens
    written = usage.model_extra["cache_creation_input_tokens"]
    return {
        "input": usage.prompt_tokens - read - written,
        "cache_read": read,
        "write_5m": written,
        "write_1h": 0,
        "output": usage.completion_tokens,
    }


def assert_billed(world, request_id: str, cost_nano: int, *, stream: bool) -> None:
    world.drain()
    row = RequestLog.objects.get(request_id=request_id)
    assert (row.outcome, row.status_code, row.stream) == ("ok", 200, stream)
    assert (row.client_protocol, row.provider, row.upstream_model) == (
        "openai",
        "fakeanthropic",
        "claude-sonnet-4-6",
    )
    assert row.cost_nano == cost_nano
    assert LedgerEntry.objects.get(idempotency_key=f"usage:{request_id}").amount_nano == -cost_nano


# --- text -----------------------------------------------------------------------------


def test_it_answers_a_chat_completion_from_an_anthropic_upstream(world, vendor_cost):
    raw = client(world).chat.completions.with_raw_response.create(
        model=CLAUDE,
        messages=[
            {"role": "system", "content": "You are terse"},
            {"role": "user", "content": "hello gateway world"},
        ],
    )
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.message.content == "Echo: hello gateway world"
    assert choice.finish_reason == "stop"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == CLAUDE
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (6, 4, 10)
    assert usage.model_extra["cache_read_input_tokens"] == 0
    cost = vendor_cost(openai_counts(usage), world.claude)
    assert round(usage.model_extra["cost"] * 1e9) == cost
    assert raw.headers["x-tollgate-provider"] == "fakeanthropic"
    assert_billed(world, raw.headers["x-tollgate-request-id"], cost, stream=False)
    sent = upstream_bodies(world)[-1]
    assert sent["system"] == [{"type": "text", "text": "You are terse"}]
    assert sent["max_tokens"] == world.claude.max_output_tokens  # absent: the model's max


def test_it_streams_from_an_anthropic_upstream_with_usage_last(world, vendor_cost):
    stream = client(world).chat.completions.with_raw_response.create(
        model=CLAUDE,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four"}],
    )
    chunks = list(stream.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 5)
    cost = vendor_cost(openai_counts(usage), world.claude)
    assert round(usage.model_extra["cost"] * 1e9) == cost
    assert_billed(world, stream.headers["x-tollgate-request-id"], cost, stream=True)


def test_a_stream_without_include_usage_has_no_usage_chunk_but_is_billed(world):
    chunks = list(
        client(world).chat.completions.create(
            model=CLAUDE, stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert all(c.choices and c.usage is None for c in chunks)
    world.drain()
    assert RequestLog.objects.get().cost_nano > 0


# --- tools ----------------------------------------------------------------------------


def _assert_turn2_ids(world, call_ids: list[str]) -> None:
    """The upstream got back, in turn 2, the toolu_ ids it issued in turn 1."""
    body = upstream_bodies(world)[-1]
    uses = [b for b in body["messages"][1]["content"] if b["type"] == "tool_use"]
    results = [b for b in body["messages"][2]["content"] if b["type"] == "tool_result"]
    expected = ["toolu_" + call_id.removeprefix("call_") for call_id in call_ids]
    assert [b["id"] for b in uses] == expected
    assert [b["tool_use_id"] for b in results] == expected
    assert all(ANTHROPIC_ID.match(i) for i in expected)


def test_tool_calls_work_across_two_turns(world):
    c = client(world)
    messages: list[dict] = [{"role": "user", "content": "read the readme"}]
    first = c.chat.completions.create(model=CLAUDE, messages=messages, tools=[READ_FILE])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_") and len(call.id) <= 40
    assert call.function.name == "read_file"
    assert json.loads(call.function.arguments) == {"path": "path-value"}

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "# Tollgate"},
    ]
    second = c.chat.completions.create(model=CLAUDE, messages=messages, tools=[READ_FILE])
    assert second.choices[0].message.content == "Tool result: # Tollgate"
    assert second.choices[0].finish_reason == "stop"
    _assert_turn2_ids(world, [call.id])


def test_streamed_tool_calls_work_across_two_turns(world):
    c = client(world)
    messages: list[dict] = [{"role": "user", "content": "narrate and read the readme"}]
    chunks = list(
        c.chat.completions.create(
            model=CLAUDE,
            messages=messages,
            tools=[READ_FILE],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
    assert deltas[0].id.startswith("call_") and deltas[0].function.name == "read_file"
    assert all(d.index == 0 for d in deltas) and all(d.id is None for d in deltas[1:])
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == {"path": "path-value"}
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Calling read_file."
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
    assert chunks[-1].usage.completion_tokens == 12  # two words and one call

    call_id = deltas[0].id
    messages += [
        {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "read_file", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "# Tollgate"},
    ]
    chunks = list(
        c.chat.completions.create(model=CLAUDE, messages=messages, tools=[READ_FILE], stream=True)
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Tool result: # Tollgate"
    _assert_turn2_ids(world, [call_id])


def ask(c: openai.OpenAI, stream: bool, **kwargs) -> dict:
    """One completion as the assistant message dict a client sends back next turn
    (streamed chunks assembled the way Roo Code does: tool calls by index)."""
    if not stream:
        choice = c.chat.completions.create(**kwargs).choices[0]
        return {
            **choice.message.model_dump(exclude_none=True),
            "finish_reason": choice.finish_reason,
        }
    text, calls, finish = "", {}, None
    for chunk in c.chat.completions.create(stream=True, **kwargs):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                call = calls.setdefault(
                    tc.index,
                    {"id": tc.id, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["function"]["name"] += tc.function.name or ""
                call["function"]["arguments"] += tc.function.arguments or ""
    message = {"role": "assistant", "content": text or None, "finish_reason": finish}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_parallel_tool_results_are_merged_into_one_user_message(world, stream):
    c = client(world)
    tools = [READ_FILE, LIST_FILES]
    messages: list[dict] = [{"role": "user", "content": "do both in parallel"}]
    first = ask(c, stream, model=CLAUDE, messages=messages, tools=tools)
    assert first.pop("finish_reason") == "tool_calls"
    calls = first["tool_calls"]
    assert [tc["function"]["name"] for tc in calls] == ["read_file", "list_files"]
    assert [json.loads(tc["function"]["arguments"]) for tc in calls] == [{"path": "path-value"}, {}]
    messages += [
        first,
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "readme"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "a.py b.py"},
    ]
    second = ask(c, stream, model=CLAUDE, messages=messages, tools=tools)
    assert second["content"] == "Tool result: readme | a.py b.py"
    body = upstream_bodies(world)[-1]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    _assert_turn2_ids(world, [tc["id"] for tc in calls])


def test_parallel_tool_calls_false_disables_parallel_tool_use(world):
    first = client(world).chat.completions.create(
        model=CLAUDE,
        tools=[READ_FILE, LIST_FILES],
        parallel_tool_calls=False,
        messages=[{"role": "user", "content": "do both in parallel"}],
    )
    assert len(first.choices[0].message.tool_calls) == 1
    assert upstream_bodies(world)[-1]["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }


def test_foreign_tool_call_ids_reach_anthropic_as_valid_ids(world):
    """Ids other OpenAI-compatible providers made (history replayed after switching
    models) are outside Anthropic's pattern: they are encoded, reversibly."""
    odd = ["functions.read_file:0", "call_" + "x" * 60, "call_ok"]
    messages: list[dict] = [
        {"role": "user", "content": "read three"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": i,
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a"}'},
                }
                for i in odd
            ],
        },
        *({"role": "tool", "tool_call_id": i, "content": f"file {n}"} for n, i in enumerate(odd)),
    ]
    completion = client(world).chat.completions.create(
        model=CLAUDE, messages=messages, tools=[READ_FILE]
    )
    assert completion.choices[0].message.content == "Tool result: file 0 | file 1 | file 2"
    body = upstream_bodies(world)[-1]
    ids = [b["id"] for b in body["messages"][1]["content"]]
    assert ids == [tool_id_to_anthropic(i) for i in odd]
    assert all(ANTHROPIC_ID.match(i) for i in ids)


# --- what the upstream would refuse is never sent -------------------------------------


def test_empty_text_and_blank_stop_sequences_are_not_sent(world):
    completion = client(world).chat.completions.create(
        model=CLAUDE,
        stop=[" ", "\n", "zzz"],
        messages=[
            {"role": "system", "content": ""},
            {
                "role": "user",
                "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi there"}],
            },
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "again"},
        ],
    )
    assert completion.choices[0].message.content == "Echo: hi there again"
    body = upstream_bodies(world)[-1]
    assert body["stop_sequences"] == ["zzz"]
    assert "system" not in body
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_temperature_is_clamped_and_kept_over_top_p(world):
    client(world).chat.completions.create(
        model=CLAUDE, temperature=1.5, top_p=0.9, messages=[{"role": "user", "content": "hi"}]
    )
    body = upstream_bodies(world)[-1]
    assert body["temperature"] == 1.0
    assert "top_p" not in body  # claude-sonnet-4-6 refuses both at once


def test_roo_code_openai_compatible_quirks_reach_claude(world):
    """Roo Code's OpenAI-compatible provider pointed at a Claude model: developer role,
    max_completion_tokens -1, parallel_tool_calls, reasoning_details on assistants."""
    completion = client(world).chat.completions.create(
        model="claude-test-4-6",
        temperature=0,
        max_completion_tokens=-1,
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=[READ_FILE],
        messages=[
            {"role": "developer", "content": "You are Roo"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello", "reasoning_details": []},  # type: ignore[typeddict-unknown-key]
            {"role": "user", "content": "read the readme"},
        ],
    )
    assert completion.choices[0].message.tool_calls[0].function.name == "read_file"
    body = upstream_bodies(world)[-1]
    assert body["max_tokens"] == world.claude.max_output_tokens
    assert body["system"] == [{"type": "text", "text": "You are Roo"}]
    assert body["tool_choice"] == {"type": "auto"}


def test_a_user_message_after_tool_results_joins_them_after_the_results(world):
    """Roo Code sends its environment details as a user message after the tool
    messages; Anthropic wants one user turn with the tool_result blocks first."""
    completion = client(world).chat.completions.create(
        model=CLAUDE,
        tools=[READ_FILE],
        messages=[
            {"role": "user", "content": "read"},
            {
                "role": "assistant",
                "content": "Reading.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path": "a"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
            {"role": "user", "content": "<environment_details>cwd</environment_details>"},
        ],
    )
    assert completion.choices[0].message.content == "Tool result: done"
    turn = upstream_bodies(world)[-1]["messages"][2]
    assert [b["type"] for b in turn["content"]] == ["tool_result", "text"]


def test_a_tool_call_without_its_result_is_a_clear_400(world):
    with pytest.raises(openai.BadRequestError) as info:
        client(world).chat.completions.create(
            model=CLAUDE,
            tools=[READ_FILE],
            messages=[
                {"role": "user", "content": "read"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "read_file", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "user", "content": "never mind"},
            ],
        )
    assert "call_1" in info.value.message
    assert info.value.body["param"] == "messages"
    assert upstream_bodies(world) == []


def test_tool_history_without_tools_is_answered_in_text(world):
    completion = client(world).chat.completions.create(
        model=CLAUDE,
        messages=[
            {"role": "user", "content": "read"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
    )
    assert completion.choices[0].message.content == "Tool result: done"
    assert upstream_bodies(world)[-1]["tool_choice"] == {"type": "none"}


def test_n_above_one_is_a_clear_400(world):
    with pytest.raises(openai.BadRequestError) as info:
        client(world).chat.completions.create(
            model=CLAUDE, n=2, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["param"] == "n"
    assert "one choice" in info.value.message
    assert upstream_bodies(world) == []
    world.drain()
    assert RequestLog.objects.get().status_code == 400


# --- reasoning ------------------------------------------------------------------------


def test_reasoning_comes_back_and_its_signed_thinking_continues_the_tool_loop(world):
    c = client(world)
    messages: list[dict] = [{"role": "user", "content": "read the readme"}]
    first = c.chat.completions.create(
        model=CLAUDE, reasoning_effort="high", temperature=0, tools=[READ_FILE], messages=messages
    )
    sent = upstream_bodies(world)[-1]
    assert sent["thinking"] == {"type": "adaptive"}  # Claude 4.6: adaptive, with effort
    assert sent["output_config"]["effort"] == "high"
    message = first.choices[0].message
    assert message.model_extra["reasoning_content"] == "Let me think about this request."
    details = message.model_extra["reasoning_details"]
    assert details[0]["signature"]
    messages += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "# Tollgate"},
    ]
    second = c.chat.completions.create(
        model=CLAUDE, reasoning_effort="high", tools=[READ_FILE], messages=messages
    )
    assert second.choices[0].message.content == "Tool result: # Tollgate"
    assistant = upstream_bodies(world)[-1]["messages"][1]["content"]
    assert [b["type"] for b in assistant] == ["thinking", "tool_use"]


def test_streamed_reasoning_carries_the_signed_thinking_into_the_next_turn(world):
    """Roo Code reads `reasoning_content` deltas and echoes `reasoning_details` on the
    assistant message; Anthropic needs the signed block back first in the turn."""
    c = client(world)
    messages: list[dict] = [{"role": "user", "content": "read the readme"}]
    chunks = [
        ch
        for ch in c.chat.completions.create(
            model=CLAUDE,
            reasoning_effort="medium",
            tools=[READ_FILE],
            stream=True,
            messages=messages,
        )
        if ch.choices
    ]
    deltas = [ch.choices[0].delta for ch in chunks]
    reasoning = "".join(d.model_extra.get("reasoning_content") or "" for d in deltas)
    assert reasoning == "Let me think about this request."
    details = [item for d in deltas for item in d.model_extra.get("reasoning_details") or []]
    assert len(details) == 1 and details[0]["signature"]
    [call] = [tc for d in deltas for tc in d.tool_calls or [] if tc.id]
    messages += [
        {
            "role": "assistant",
            "content": None,
            "reasoning_details": details,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path":"x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "# Tollgate"},
    ]
    chunks = list(
        c.chat.completions.create(
            model=CLAUDE,
            reasoning_effort="medium",
            tools=[READ_FILE],
            stream=True,
            messages=messages,
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Tool result: # Tollgate"
    assistant = upstream_bodies(world)[-1]["messages"][1]["content"]
    assert [b["type"] for b in assistant] == ["thinking", "tool_use"]
    assert assistant[0]["thinking"] == reasoning


def test_a_client_that_drops_the_reasoning_details_still_gets_its_tool_result_answered(world):
    """A plain OpenAI client keeps no reasoning_details: Anthropic would refuse a thinking
    turn whose tool loop lacks its signed block, so that turn goes without thinking."""
    c = client(world)
    messages: list[dict] = [{"role": "user", "content": "read the readme"}]
    first = (
        c.chat.completions.create(
            model=CLAUDE, reasoning_effort="low", tools=[READ_FILE], messages=messages
        )
        .choices[0]
        .message
    )
    messages += [
        first.model_dump(exclude_none=True, exclude={"reasoning_details"}),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "ok"},
    ]
    second = c.chat.completions.create(
        model=CLAUDE, reasoning_effort="low", tools=[READ_FILE], messages=messages
    )
    assert second.choices[0].message.content == "Tool result: ok"
    assert "thinking" not in upstream_bodies(world)[-1]


# --- errors, in OpenAI's shape --------------------------------------------------------


def test_an_anthropic_rate_limit_is_a_rate_limit_error(world):
    world.fake.script("claude-sonnet-4-6", [{"status": 429, "headers": {"retry-after": "3"}}])
    with pytest.raises(openai.RateLimitError) as info:
        client(world).chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["type"] == "rate_limit_error"
    assert "fakeanthropic" in info.value.message


def test_an_overloaded_anthropic_upstream_is_503_for_openai_clients(world):
    world.fake.script("claude-sonnet-4-6", [{"status": 529}])
    with pytest.raises(openai.InternalServerError) as info:
        client(world).chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 503
    assert info.value.body["code"] == "upstream_overloaded"
    assert "overloaded" in info.value.message.lower()


def test_an_anthropic_error_mid_stream_reaches_the_openai_client(world):
    world.fake.script("claude-sonnet-4-6", [{"stream_error_after_chunks": 4}])
    with pytest.raises(openai.APIError) as info:
        list(
            client(world).chat.completions.create(
                model=CLAUDE, stream=True, messages=[{"role": "user", "content": "a b c d e"}]
            )
        )
    assert "overloaded" in str(info.value).lower()
    world.drain()
    assert RequestLog.objects.get().outcome == "error"
