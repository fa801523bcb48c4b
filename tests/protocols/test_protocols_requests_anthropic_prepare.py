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
