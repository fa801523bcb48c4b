"""Local token estimates: proportional to what the model reads, never zero."""

from __future__ import annotations

from gateway.protocols.tokens import (
    ANTHROPIC_IMAGE_TOKENS,
    estimate_tokens_anthropic,
    estimate_tokens_openai,
)

TEXT = "word " * 400  # 2,000 characters, about 500 tokens


def test_it_counts_about_four_characters_per_token() -> None:
    estimate = estimate_tokens_anthropic({"messages": [{"role": "user", "content": TEXT}]})
    assert 500 <= estimate <= 520


def test_it_counts_system_tools_and_tool_traffic() -> None:
    base = {"messages": [{"role": "user", "content": "hi"}]}
    richer = {
        "system": [{"type": "text", "text": TEXT}],
        "tools": [{"name": "read_file", "description": TEXT, "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "read_file",
                        "input": {"path": TEXT},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": TEXT}],
            },
        ],
    }
    assert estimate_tokens_anthropic(richer) - estimate_tokens_anthropic(base) >= 4 * 500


def test_it_gives_images_a_fixed_cost() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "x" * 10},
    }
    body = {"messages": [{"role": "user", "content": [image]}]}
    assert estimate_tokens_anthropic(body) >= ANTHROPIC_IMAGE_TOKENS


def test_openai_estimates_agree_with_anthropic_ones_for_the_same_conversation() -> None:
    openai_body = {
        "messages": [{"role": "system", "content": TEXT}, {"role": "user", "content": TEXT}]
    }
    anthropic_body = {"system": TEXT, "messages": [{"role": "user", "content": TEXT}]}
    assert (
        abs(estimate_tokens_openai(openai_body) - estimate_tokens_anthropic(anthropic_body)) <= 10
    )


def test_it_is_never_zero_for_a_request() -> None:
    assert estimate_tokens_openai({"messages": [{"role": "user", "content": ""}]}) > 0
    assert estimate_tokens_anthropic({"messages": [{"role": "user", "content": "a"}]}) > 0
