"""Non-streaming responses both ways: stop reasons, content, tool calls, thinking,
usage (cache tokens counted once) and ids; checked by the SDKs' own models."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from gateway.protocols.responses import (
    anthropic_response_from_openai,
    openai_response_from_anthropic,
)

ANTHROPIC_MESSAGE = {
    "id": "msg_01XYZ",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "The user wants", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Reading "},
        {"type": "text", "text": "now."},
        {"type": "tool_use", "id": "toolu_01A", "name": "read_file", "input": {"path": "é.py"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "output_tokens": 30,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 300,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
    },
}

OPENAI_COMPLETION = {
    "id": "chatcmpl-Bx9",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-5",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "logprobs": None,
            "message": {
                "role": "assistant",
                "content": "Reading now.",
                "refusal": None,
                "reasoning_content": "Because",
                "tool_calls": [
                    {
                        "id": "call_A1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                    }
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 1500,
        "completion_tokens": 40,
        "total_tokens": 1540,
        "prompt_tokens_details": {"cached_tokens": 1024},
    },
}


def test_an_anthropic_message_becomes_a_valid_chat_completion() -> None:
    out = openai_response_from_anthropic(
        ANTHROPIC_MESSAGE, model="claude-sonnet-4.5", created=1700000000
    )
    completion = ChatCompletion.model_validate(out)
    choice = completion.choices[0]
    assert completion.id == "chatcmpl-01XYZ" and completion.model == "claude-sonnet-4.5"
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Reading now."
    assert choice.message.tool_calls[0].id == "call_01A"
    assert choice.message.tool_calls[0].function.arguments == '{"path": "é.py"}'
    assert out["choices"][0]["message"]["reasoning_content"] == "The user wants"
    assert out["choices"][0]["message"]["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "text": "The user wants",
            "signature": "sig1",
            "format": "anthropic-claude-v1",
            "index": 0,
        },
        {
            "type": "reasoning.encrypted",
            "data": "opaque",
            "format": "anthropic-claude-v1",
            "index": 1,
        },
    ]


def test_anthropic_usage_becomes_openai_usage_with_cache_tokens_inside_prompt() -> None:
    usage = openai_response_from_anthropic(ANTHROPIC_MESSAGE, model="m")["usage"]
    assert usage["prompt_tokens"] == 20 + 1000 + 300
    assert usage["completion_tokens"] == 30
    assert usage["total_tokens"] == 1350
    assert usage["prompt_tokens_details"]["cached_tokens"] == 1000
    assert usage["cache_read_input_tokens"] == 1000
    assert usage["cache_creation_input_tokens"] == 300


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
        ("model_context_window_exceeded", "length"),
        # A paused server-tool turn is unfinished: "stop" would tell the client the
        # answer is complete (native_finish_reason still says pause_turn).
        ("pause_turn", "length"),
    ],
)
def test_stop_reasons_become_finish_reasons(stop_reason: Any, finish_reason: str) -> None:
    out = openai_response_from_anthropic(
        {**ANTHROPIC_MESSAGE, "stop_reason": stop_reason}, model="m"
    )
    assert out["choices"][0]["finish_reason"] == finish_reason


def test_a_tool_only_message_has_null_content() -> None:
    out = openai_response_from_anthropic(
        {**ANTHROPIC_MESSAGE, "content": [ANTHROPIC_MESSAGE["content"][-1]]}, model="m"
    )
    assert out["choices"][0]["message"]["content"] is None
    assert "reasoning_content" not in out["choices"][0]["message"]


def test_a_chat_completion_becomes_a_valid_anthropic_message() -> None:
    out = anthropic_response_from_openai(OPENAI_COMPLETION, model="gpt-5")
    message = Message.model_validate(out)
    assert message.id == "msg_Bx9" and message.model == "gpt-5"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[2].id == "toolu_A1"
    assert message.content[2].input == {"path": "a.py"}
    assert message.stop_reason == "tool_use"


def test_openai_usage_becomes_anthropic_usage_with_cached_tokens_apart() -> None:
    usage = anthropic_response_from_openai(OPENAI_COMPLETION, model="m")["usage"]
    assert usage["input_tokens"] == 1500 - 1024
    assert usage["cache_read_input_tokens"] == 1024
    assert usage["output_tokens"] == 40


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_finish_reasons_become_stop_reasons(finish_reason: Any, stop_reason: str) -> None:
    completion = {
        **OPENAI_COMPLETION,
        "choices": [{**OPENAI_COMPLETION["choices"][0], "finish_reason": finish_reason}],
    }
    assert anthropic_response_from_openai(completion, model="m")["stop_reason"] == stop_reason


def test_broken_tool_arguments_are_kept_rather_than_guessed() -> None:
    completion = {
        **OPENAI_COMPLETION,
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"path": "a'},
                        }
                    ],
                },
            }
        ],
    }
    out = anthropic_response_from_openai(completion, model="m")
    assert out["content"] == [
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "f",
            "input": {"_raw_arguments": '{"path": "a'},
        }
    ]


def test_a_refusal_becomes_text_with_the_refusal_stop_reason() -> None:
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "content_filter",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": "I can't help with that.",
                },
            }
        ],
    }
    out = anthropic_response_from_openai(completion, model="m")
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"
    assert out["usage"]["input_tokens"] == 0
