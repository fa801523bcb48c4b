"""Anthropic client -> Anthropic upstream: the preparation of the client's own body."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.protocols.requests import (
    anthropic_request_prepare,
)
from tests.protocols.test_protocols_requests_to_anthropic import MAX, user


# --- Anthropic client -> Anthropic upstream -----------------------------------------
def prepare(body: dict[str, Any]) -> dict[str, Any]:
    return anthropic_request_prepare(
        body, upstream_model="claude-sonnet-4-5", max_output_tokens=MAX
    )


@pytest.mark.parametrize(("value", "expected"), [(None, MAX), (-1, MAX), (0, 0), (512, 512)])
def test_prepare_fixes_max_tokens_but_keeps_cache_prewarming(value: Any, expected: int) -> None:
    body: dict[str, Any] = {"model": "claude-sonnet-4.5", "messages": [user()]}
    if value is not None:
        body["max_tokens"] = value
    out = prepare(body)
    assert out["max_tokens"] == expected
    assert out["model"] == "claude-sonnet-4-5"


def test_prepare_passes_cache_control_through_untouched() -> None:
    body = {
        "max_tokens": 10,
        "system": [
            {"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    }
    out = prepare(body)
    assert out["system"] == body["system"] and out["messages"] == body["messages"]


def test_prepare_drops_unsigned_thinking_blocks() -> None:
    body = {
        "max_tokens": 10,
        "messages": [
            user(),
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "from an OpenAI upstream", "signature": ""},
                    {"type": "thinking", "thinking": "signed", "signature": "sig"},
                    {"type": "text", "text": "answer"},
                ],
            },
            user(),
        ],
    }
    out = prepare(body)
    assert out["messages"][1]["content"] == body["messages"][1]["content"][1:]
    assert len(body["messages"][1]["content"]) == 3


# --- what Anthropic would refuse ------------------------------------------------------
MID_SYSTEM = [
    {"role": "user", "content": "hi"},
    {"role": "system", "content": [{"type": "text", "text": "Agents: explore"}]},
    {"role": "assistant", "content": "hello"},
    {"role": "system", "content": "Skills: none"},
    {"role": "user", "content": [{"type": "text", "text": "go"}]},
]


def test_mid_conversation_system_messages_fold_into_user_turns_before_claude_4_8() -> None:
    out = anthropic_request_prepare(
        {"max_tokens": 10, "messages": MID_SYSTEM},
        upstream_model="claude-sonnet-4-6",
        max_output_tokens=MAX,
    )

    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "text", "text": "<system-reminder>\nAgents: explore\n</system-reminder>"},
            ],
        },
        {"role": "assistant", "content": "hello"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\nSkills: none\n</system-reminder>"}
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "go"}]},
    ]


def test_mid_conversation_system_messages_pass_through_to_claude_4_8_and_later() -> None:
    body = {"max_tokens": 10, "messages": MID_SYSTEM}

    out = anthropic_request_prepare(body, upstream_model="claude-opus-4-8", max_output_tokens=MAX)

    assert out["messages"] == MID_SYSTEM


def _tool_loop(first_block: dict[str, Any] | None) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}
    return [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [first_block, call] if first_block else [call]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
        },
    ]


@pytest.mark.parametrize(
    "thinking", [{"type": "adaptive"}, {"type": "enabled", "budget_tokens": 2048}]
)
def test_thinking_is_left_off_for_a_tool_loop_that_lost_its_thinking_block(thinking) -> None:
    lost = prepare({"max_tokens": 4096, "thinking": thinking, "messages": _tool_loop(None)})
    kept = prepare(
        {
            "max_tokens": 4096,
            "thinking": thinking,
            "messages": _tool_loop({"type": "thinking", "thinking": "t", "signature": "s"}),
        }
    )
    fresh = prepare(
        {"max_tokens": 4096, "thinking": thinking, "messages": [{"role": "user", "content": "hi"}]}
    )

    assert "thinking" not in lost
    assert kept["thinking"] == thinking
    assert fresh["thinking"] == thinking
