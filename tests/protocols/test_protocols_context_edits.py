"""Claude Code's main-loop request fields on a model served through an OpenAI-protocol
provider: `context_management` edits (gateway.protocols.context_edits) and
mid-conversation `role: "system"` messages."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.protocols.context_edits import CLEARED
from gateway.protocols.requests import TranslationError, openai_request_from_anthropic

TOOL = {"name": "read", "input_schema": {"type": "object"}}


def translate(body: dict[str, Any]) -> dict[str, Any]:
    return openai_request_from_anthropic(
        {"max_tokens": 1024, "tools": [TOOL], **body},
        upstream_model="gpt-5",
        max_output_tokens=32000,
    )


def tool_loop(calls: int) -> list[dict[str, Any]]:
    """A user turn, then `calls` rounds of a read call and its result."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "read them"}]
    for n in range(calls):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "tool_use", "id": f"toolu_{n}", "name": "read", "input": {"n": n}},
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": f"r{n}"}
                ],
            }
        )
    return messages


def tool_messages(out: dict[str, Any]) -> list[str]:
    return [m["content"] for m in out["messages"] if m["role"] == "tool"]


def test_claude_codes_clear_thinking_edit_is_a_no_op_upstream_never_sees_old_thinking():
    messages = tool_loop(2)
    edits = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}

    with_edits = translate({"messages": messages, "context_management": edits})

    assert with_edits == translate({"messages": messages})
    assert "context_management" not in with_edits


def test_clear_tool_uses_clears_all_but_the_newest_results_once_triggered():
    edit = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "tool_uses", "value": 2},
        "keep": {"type": "tool_uses", "value": 1},
        "clear_tool_inputs": True,
    }

    out = translate({"messages": tool_loop(3), "context_management": {"edits": [edit]}})

    assert tool_messages(out) == [CLEARED, CLEARED, "r2"]
    calls = [
        m["tool_calls"][0]["function"]["arguments"] for m in out["messages"] if m.get("tool_calls")
    ]
    assert calls == ["{}", "{}", '{"n": 2}']


def test_clear_tool_uses_below_its_trigger_or_for_excluded_tools_changes_nothing():
    below = {"type": "clear_tool_uses_20250919"}  # default trigger: 100,000 input tokens
    excluded = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "tool_uses", "value": 0},
        "keep": {"type": "tool_uses", "value": 0},
        "exclude_tools": ["read"],
    }

    for edit in (below, excluded):
        out = translate({"messages": tool_loop(3), "context_management": {"edits": [edit]}})
        assert tool_messages(out) == ["r0", "r1", "r2"]


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"edits": [{"type": "compact_2099"}]}, "context_management.edits[0].type"),
        ({"edits": "all"}, "context_management"),
        ("clear", "context_management"),
        (
            {"edits": [{"type": "clear_tool_uses_20250919", "keep": {"type": "x", "value": 1}}]},
            "context_management.edits[0].keep",
        ),
    ],
)
def test_malformed_context_management_is_a_400_naming_the_field(config: Any, param: str):
    with pytest.raises(TranslationError) as caught:
        translate({"messages": tool_loop(1), "context_management": config})

    assert caught.value.status == 400 and caught.value.param == param


def test_a_mid_conversation_system_message_stays_in_place():
    out = translate(
        {
            "system": [
                {
                    "type": "text",
                    "text": "You are Claude Code",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "Agents: explore"}]},
                {"role": "system", "content": "Skills: none"},
                {"role": "user", "content": "go"},
            ],
        }
    )

    assert out["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "You are Claude Code"}]},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "Agents: explore"}]},
        {"role": "system", "content": "Skills: none"},
        {"role": "user", "content": "go"},
    ]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "system", "content": "first"}], "messages[0].role"),
        (
            [{"role": "user", "content": "hi"}, {"role": "system", "content": [{"type": "image"}]}],
            "messages[1].content[0]",
        ),
        (
            [{"role": "user", "content": "hi"}, {"role": "system", "content": 7}],
            "messages[1].content",
        ),
    ],
)
def test_system_messages_out_of_place_or_not_text_are_a_400(messages: list, param: str):
    with pytest.raises(TranslationError) as caught:
        translate({"messages": messages})

    assert caught.value.param == param
