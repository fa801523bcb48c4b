"""The fake's Anthropic Messages, driven by the official anthropic SDK: answers,
streams, thinking and its signatures, prompt caching, token counting, validation."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from tests.fakeupstream.conftest import CLAUDE, TIME_TOOL, WEATHER_TOOL, post_messages

# -- Anthropic -------------------------------------------------------------------------


def test_it_answers_a_message_with_usage_and_headers(claude):
    raw = claude.messages.with_raw_response.create(
        model=CLAUDE,
        max_tokens=100,
        system="Be brief",
        messages=[{"role": "user", "content": "hi you"}],
    )
    message = raw.parse()

    assert message.id.startswith("msg_")
    assert [block.text for block in message.content] == ["Echo: hi you"]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 3)
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "3999"


def test_it_streams_thinking_text_and_tool_use_in_order(fake_upstream):
    # raw SSE, because the SDK hides ping events
    response = post_messages(
        fake_upstream,
        {
            "model": CLAUDE,
            "max_tokens": 4096,
            "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "narrate the weather"}],
        },
    )
    lines = [line for line in response.text.split("\n") if line]
    names = [line.removeprefix("event: ") for line in lines[0::2]]
    events = [json.loads(line.removeprefix("data: ")) for line in lines[1::2]]

    assert [e["type"] for e in events] == names
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    deltas = [
        (e["index"], e["delta"]["type"]) for e in events if e["type"] == "content_block_delta"
    ]
    assert (0, "signature_delta") in deltas and (1, "text_delta") in deltas
    fragments = [
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    ]
    assert len([f for f in fragments if f]) > 1
    assert json.loads("".join(fragments)) == {"city": "city-value", "unit": "c"}
    start_usage = events[0]["message"]["usage"]
    assert start_usage["cache_read_input_tokens"] == 0
    assert start_usage["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 0,
    }
    final = events[-2]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens"] == 6 + 2 + 10  # thinking, "Calling get_weather."
    assert final["usage"]["input_tokens"] == start_usage["input_tokens"]


def test_it_takes_back_its_own_thinking_and_refuses_a_forged_signature(claude):
    first = claude.messages.create(
        model=CLAUDE,
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[TIME_TOOL],
        messages=[{"role": "user", "content": "time?"}],
    )
    turn = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": first.content[-1].id, "content": "noon"}
            ],
        },
    ]

    second = claude.messages.create(
        model=CLAUDE,
        max_tokens=4096,
        tools=[TIME_TOOL],
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=turn,
    )
    turn[1]["content"][0]["signature"] = "forged"

    assert second.content[-1].text == "Tool result: noon"
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        claude.messages.create(
            model=CLAUDE,
            max_tokens=4096,
            tools=[TIME_TOOL],
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=turn,
        )


def test_it_writes_then_reads_the_prompt_cache_split_by_ttl(claude):
    system = [
        {"type": "text", "text": "rules " * 50, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]

    def ask(text: str) -> anthropic.types.Usage:
        return claude.messages.create(
            model=CLAUDE,
            max_tokens=20,
            system=system,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}
                    ],
                }
            ],
        ).usage

    first, second = ask("first question"), ask("second one here")

    assert (
        first.cache_creation.ephemeral_1h_input_tokens,
        first.cache_creation.ephemeral_5m_input_tokens,
    ) == (50, 2)
    assert (first.cache_read_input_tokens, first.input_tokens) == (0, 0)
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (50, 3)


def test_it_counts_tokens_without_max_tokens(claude):
    count = claude.messages.count_tokens(
        model=CLAUDE, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "a b c"}]
    )

    assert count.input_tokens == 10 + 4 + 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "messages: text content blocks must be non-empty",
        ),
        (
            {"temperature": 0.5, "top_p": 0.9},
            "`temperature` and `top_p` cannot both be specified for this model",
        ),
        (
            {"stop_sequences": ["\n"]},
            "stop_sequences: each stop sequence must contain non-whitespace",
        ),
        (
            {
                "system": [
                    {"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}}
                    for i in range(5)
                ]
            },
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
        ({"tools": None}, "Requests which include `tool_use` or `tool_result` blocks must define"),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}
                        ],
                    },
                    {"role": "user", "content": "and?"},
                ]
            },
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
            "toolu_1.",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "call.1", "name": "get_time", "input": {}}
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "call.1", "content": "x"}
                        ],
                    },
                ]
            },
            "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
        ),
    ],
)
def test_it_rejects_what_anthropic_rejects(fake_upstream, change, message):
    body = {
        "model": CLAUDE,
        "max_tokens": 50,
        "tools": [TIME_TOOL],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "noon"}],
            },
        ],
    }
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}

    response = post_messages(fake_upstream, body)

    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"] == message or message in error["error"]["message"]
    assert error["request_id"] == response.headers["request-id"]


def test_it_allows_temperature_with_top_p_on_older_models(fake_upstream):
    response = post_messages(
        fake_upstream,
        {
            "model": "claude-3-haiku-20240307",
            "max_tokens": 10,
            "temperature": 0.5,
            "top_p": 0.9,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )

    assert response.status_code == 200


def _post_with_betas(fake_upstream, body, betas=""):
    headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    if betas:
        headers["anthropic-beta"] = betas
    return httpx.post(f"{fake_upstream.url}/v1/messages", json=body, headers=headers)


MID_SYSTEM = {
    "model": CLAUDE,
    "max_tokens": 100,
    "messages": [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "Skills: none"}]},
        {"role": "user", "content": "again"},
    ],
}


def test_mid_conversation_system_messages_need_their_beta_before_claude_4_8(fake_upstream):
    refused = _post_with_betas(fake_upstream, MID_SYSTEM)
    accepted = _post_with_betas(
        fake_upstream, MID_SYSTEM, "claude-code-20250219,mid-conversation-system-2026-04-07"
    )

    assert refused.status_code == 400
    assert "messages.1.role" in refused.json()["error"]["message"]
    newer = _post_with_betas(fake_upstream, {**MID_SYSTEM, "model": "claude-opus-4-8"})

    assert accepted.status_code == 200, accepted.text
    # "hi" + "Skills: none" + "again" = 4 words
    assert accepted.json()["usage"]["input_tokens"] == 4
    assert newer.status_code == 200, newer.text  # Claude 4.8 and later need no beta


def test_thinking_on_refuses_a_tool_loop_whose_assistant_turn_lost_its_thinking(fake_upstream):
    body = {
        "model": CLAUDE,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sun"}],
            },
        ],
    }

    refused = _post_with_betas(fake_upstream, body)
    without_thinking = _post_with_betas(fake_upstream, {**body, "thinking": {"type": "disabled"}})

    assert refused.status_code == 400
    assert "must start with a thinking block" in refused.json()["error"]["message"]
    assert without_thinking.status_code == 200, without_thinking.text
