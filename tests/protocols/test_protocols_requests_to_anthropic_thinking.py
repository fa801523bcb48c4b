"""OpenAI client -> Anthropic upstream: reasoning_effort as thinking, and signed
thinking carried back across a tool loop (docs/protocols.md, Requests)."""

from __future__ import annotations

import pytest

from gateway.protocols.requests import (
    TranslationError,
)
from tests.protocols.test_protocols_requests_to_anthropic import TOOL, call, translate, user


@pytest.mark.parametrize(("effort", "budget"), [("low", 2048), ("medium", 8192), ("high", 16384)])
def test_it_turns_reasoning_effort_into_a_thinking_budget(effort: str, budget: int) -> None:
    out = translate(
        {"messages": [user()], "reasoning_effort": effort, "temperature": 0, "top_p": 0.5}
    )
    assert out["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert out["thinking"]["budget_tokens"] < out["max_tokens"]
    # Anthropic refuses a modified temperature (and top_p below 0.95) with thinking.
    assert "temperature" not in out and "top_p" not in out


def test_it_keeps_the_budget_below_max_tokens() -> None:
    out = translate({"messages": [user()], "reasoning_effort": "high", "max_tokens": 4000})
    assert out["thinking"]["budget_tokens"] == 3999


def test_it_refuses_reasoning_with_too_few_max_tokens() -> None:
    with pytest.raises(TranslationError):
        translate({"messages": [user()], "reasoning_effort": "low", "max_tokens": 1000})


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-opus-4.7", "claude-opus-5"])
def test_it_uses_adaptive_thinking_on_newer_claude_models(model: str) -> None:
    out = translate({"messages": [user()], "reasoning_effort": "minimal"}, model=model)
    assert out["thinking"] == {"type": "adaptive"}
    assert out["output_config"] == {"effort": "low"}


@pytest.mark.parametrize(
    "model",
    ["claude-sonnet-4-20250514", "claude-3-7-sonnet-20250219", "claude-haiku-4-5", "demo-claude"],
)
def test_it_uses_a_budget_on_older_or_unknown_models(model: str) -> None:
    out = translate({"messages": [user()], "reasoning_effort": "medium"}, model=model)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert "output_config" not in out


def test_reasoning_effort_none_means_no_thinking() -> None:
    assert "thinking" not in translate({"messages": [user()], "reasoning_effort": "none"})


def test_it_refuses_thinking_with_a_forced_tool() -> None:
    with pytest.raises(TranslationError) as caught:
        translate(
            {
                "messages": [user()],
                "tools": [TOOL],
                "tool_choice": "required",
                "reasoning_effort": "high",
            }
        )
    assert caught.value.param == "tool_choice"


def test_it_skips_thinking_mid_tool_loop_when_the_client_lost_the_signature() -> None:
    body = {
        "tools": [TOOL],
        "reasoning_effort": "high",
        "messages": [
            user(),
            {"role": "assistant", "reasoning_content": "hmm", "tool_calls": [call("call_1")]},
            {"role": "tool", "tool_call_id": "call_1", "content": "x"},
        ],
    }
    assert "thinking" not in translate(body)


def test_it_sends_signed_thinking_back_first_in_the_assistant_turn() -> None:
    body = {
        "tools": [TOOL],
        "reasoning_effort": "high",
        "messages": [
            user(),
            {
                "role": "assistant",
                "content": "Let me look.",
                "reasoning_content": "hmm",
                "reasoning_details": [
                    {"type": "reasoning.text", "text": "hmm", "signature": "sig==", "index": 0},
                    {"type": "reasoning.encrypted", "data": "opaque", "index": 1},
                ],
                "tool_calls": [call("call_1")],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "x"},
        ],
    }
    out = translate(body)
    assert out["messages"][1]["content"][:3] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Let me look."},
    ]
    assert out["thinking"]["type"] == "enabled"
