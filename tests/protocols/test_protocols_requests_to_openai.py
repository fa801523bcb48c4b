"""Anthropic client -> OpenAI upstream requests, row by row (docs/protocols.md), plus
the OpenAI-to-OpenAI preparation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.protocols.requests import (
    TranslationError,
    openai_request_from_anthropic,
    openai_request_prepare,
)

MAX = 32000


def translate(body: dict[str, Any], model: str = "gpt-5") -> dict[str, Any]:
    return openai_request_from_anthropic(
        {"max_tokens": 1024, **body}, upstream_model=model, max_output_tokens=MAX
    )


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


TOOL = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    "cache_control": {"type": "ephemeral"},
}


def test_it_turns_system_into_the_first_message() -> None:
    assert translate({"system": "be brief", "messages": [user()]})["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


def test_it_keeps_system_blocks_as_text_parts_without_cache_control() -> None:
    out = translate(
        {
            "system": [
                {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "b"},
            ],
            "messages": [user()],
        }
    )
    assert out["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }


def test_it_translates_text_and_images() -> None:
    out = translate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "what is this?",
                            "cache_control": {"type": "ephemeral"},
                        },
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBOR",
                            },
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                    ],
                }
            ]
        }
    )
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        }
    ]


def test_it_translates_tools() -> None:
    out = translate({"messages": [user()], "tools": [TOOL]})
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file",
                "parameters": TOOL["input_schema"],
            },
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "none"}, "none", None),
        ({"type": "any"}, "required", None),
        (
            {"type": "tool", "name": "read_file"},
            {"type": "function", "function": {"name": "read_file"}},
            None,
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "auto", "disable_parallel_tool_use": False}, "auto", None),
    ],
)
def test_it_translates_tool_choice(choice: dict, expected: Any, parallel: Any) -> None:
    out = translate({"messages": [user()], "tools": [TOOL], "tool_choice": choice})
    assert out["tool_choice"] == expected
    assert out.get("parallel_tool_calls") == parallel


def test_it_refuses_server_tools() -> None:
    with pytest.raises(TranslationError) as caught:
        translate(
            {"messages": [user()], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
        )
    assert caught.value.param == "tools[0]"


def test_it_refuses_tool_names_openai_cannot_take() -> None:
    with pytest.raises(TranslationError):
        translate({"messages": [user()], "tools": [{**TOOL, "name": "x" * 65}]})


def test_it_turns_tool_use_and_results_into_tool_calls_and_tool_messages() -> None:
    out = translate(
        {
            "tools": [TOOL],
            "messages": [
                user(),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "text", "text": "Reading."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "read_file",
                            "input": {"path": "é"},
                        },
                        {"type": "tool_use", "id": "toolu_2", "name": "read_file", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "is_error": True,
                            "content": [
                                {"type": "text", "text": "not found"},
                                {"type": "image", "source": {"type": "url", "url": "https://i"}},
                            ],
                        },
                        {"type": "text", "text": "go on"},
                    ],
                },
            ],
        }
    )
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Reading.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "é"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: not found"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://i"}},
                {"type": "text", "text": "go on"},
            ],
        },
    ]


def test_an_assistant_turn_of_only_tool_calls_has_null_content() -> None:
    out = translate(
        {
            "tools": [TOOL],
            "messages": [
                user(),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}
                    ],
                },
            ],
        }
    )
    assert out["messages"][1]["content"] is None


@pytest.mark.parametrize(
    ("value", "expected"), [(None, MAX), (-1, MAX), (4096, 4096), (10**6, MAX)]
)
def test_it_resolves_max_tokens_to_max_completion_tokens(value: Any, expected: int) -> None:
    body: dict[str, Any] = {"messages": [user()], "max_tokens": value}
    out = openai_request_from_anthropic(body, upstream_model="gpt-5", max_output_tokens=MAX)
    assert out["max_completion_tokens"] == expected
    assert "max_tokens" not in out


def test_it_refuses_cache_prewarming_with_max_tokens_zero() -> None:
    with pytest.raises(TranslationError) as caught:
        translate({"messages": [user()], "max_tokens": 0})
    assert caught.value.param == "max_tokens"


def test_it_translates_stop_sequences_and_sampling() -> None:
    out = translate(
        {"messages": [user()], "stop_sequences": ["END"], "temperature": 0.2, "top_p": 0.9}
    )
    assert (out["stop"], out["temperature"], out["top_p"]) == (["END"], 0.2, 0.9)


def test_it_refuses_more_stop_sequences_than_openai_takes() -> None:
    with pytest.raises(TranslationError):
        translate({"messages": [user()], "stop_sequences": list("abcde")})


def test_it_refuses_top_k() -> None:
    with pytest.raises(TranslationError) as caught:
        translate({"messages": [user()], "top_k": 5})
    assert caught.value.param == "top_k"


def test_it_translates_output_config_format_to_json_schema() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    out = translate(
        {
            "messages": [user()],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        }
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": True},
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 8000}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 30000}}, "high"),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}, "max"),
        ({"thinking": {"type": "adaptive"}}, None),
        ({"thinking": {"type": "disabled"}}, None),
    ],
)
def test_it_turns_thinking_into_reasoning_effort(fields: dict, expected: Any) -> None:
    assert translate({"messages": [user()], **fields}).get("reasoning_effort") == expected


def test_it_does_not_send_reasoning_effort_to_models_that_refuse_it() -> None:
    out = translate(
        {"messages": [user()], "thinking": {"type": "enabled", "budget_tokens": 4000}},
        model="gpt-4o-mini",
    )
    assert "reasoning_effort" not in out


def test_it_passes_metadata_user_id_as_safety_identifier_within_openais_limit() -> None:
    assert (
        translate({"messages": [user()], "metadata": {"user_id": "u-1"}})["safety_identifier"]
        == "u-1"
    )
    long_id = "user_" + "a" * 200
    hashed = translate({"messages": [user()], "metadata": {"user_id": long_id}})
    assert len(hashed["safety_identifier"]) == 64
    again = translate({"messages": [user()], "metadata": {"user_id": long_id}})
    assert again["safety_identifier"] == hashed["safety_identifier"]


def test_it_always_asks_for_usage_when_streaming() -> None:
    out = translate({"messages": [user()], "stream": True})
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_it_drops_cache_control_which_openai_refuses() -> None:
    out = translate(
        {
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "messages": [user()],
            "tools": [TOOL],
            "cache_control": {"type": "ephemeral"},
        }
    )
    assert "cache_control" not in str(out)


# --- OpenAI client -> OpenAI upstream -----------------------------------------------
def prepare(body: dict[str, Any]) -> dict[str, Any]:
    return openai_request_prepare(body, upstream_model="gpt-5-mini", max_output_tokens=MAX)


def test_prepare_strips_cache_control_and_reasoning_details() -> None:
    body = {
        "model": "fast",
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": "a",
                "reasoning_content": "r",
                "reasoning_details": [{"type": "reasoning.text", "text": "r"}],
            },
        ],
        "tools": [
            {"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}
        ],
    }
    before = copy.deepcopy(body)
    out = prepare(body)
    assert out["model"] == "gpt-5-mini"
    assert out["messages"][0]["content"] == [{"type": "text", "text": "s"}]
    assert out["messages"][2] == {"role": "assistant", "content": "a", "reasoning_content": "r"}
    assert out["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert body == before


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": -1}, {}),
        ({"max_completion_tokens": 0}, {}),
        ({"max_completion_tokens": -1, "max_tokens": 50}, {"max_tokens": 50}),
        ({"max_completion_tokens": 100}, {"max_completion_tokens": 100}),
    ],
)
def test_prepare_removes_no_limit_max_tokens(fields: dict, expected: dict) -> None:
    out = prepare({"messages": [user()], **fields})
    assert {k: out[k] for k in ("max_tokens", "max_completion_tokens") if k in out} == expected


def test_prepare_always_asks_for_usage_when_streaming() -> None:
    out = prepare(
        {"messages": [user()], "stream": True, "stream_options": {"include_obfuscation": False}}
    )
    assert out["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert "stream_options" not in prepare({"messages": [user()]})
