"""OpenAI client -> Anthropic upstream requests: one test (or table) per row of the
"Requests" table in docs/protocols.md (thinking and the Anthropic-to-Anthropic preparation
have files of their own)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.protocols.requests import (
    TranslationError,
    anthropic_request_from_openai,
)

MAX = 64000


def translate(body: dict[str, Any], model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    return anthropic_request_from_openai(body, upstream_model=model, max_output_tokens=MAX)


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def call(call_id: str, name: str = "read_file", arguments: str = '{"path": "a.py"}'):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


TOOL = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
            "additionalProperties": False,
        },
    },
}


def test_it_moves_system_and_developer_messages_to_system_in_order() -> None:
    out = translate(
        {
            "messages": [
                {"role": "system", "content": "one"},
                {
                    "role": "developer",
                    "content": [
                        {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}
                    ],
                },
                user(),
            ]
        }
    )
    assert out["system"] == [
        {"type": "text", "text": "one"},
        {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}},
    ]
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_it_drops_empty_text_parts() -> None:
    out = translate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": ""},
                        {"type": "text", "text": "  "},
                        {"type": "text", "text": "real"},
                    ],
                }
            ]
        }
    )
    assert out["messages"][0]["content"] == [{"type": "text", "text": "real"}]


@pytest.mark.parametrize(
    ("url", "source"),
    [
        (
            "data:image/png;base64,iVBORw0KGgo=",
            {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        ),
        ("https://example.com/cat.jpg", {"type": "url", "url": "https://example.com/cat.jpg"}),
    ],
)
def test_it_translates_images(url: str, source: dict[str, Any]) -> None:
    out = translate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": url, "detail": "high"}}],
                }
            ]
        }
    )
    assert out["messages"][0]["content"] == [{"type": "image", "source": source}]


def test_it_refuses_image_types_anthropic_cannot_read() -> None:
    with pytest.raises(TranslationError) as caught:
        translate(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,Qk0="},
                            }
                        ],
                    }
                ]
            }
        )
    assert caught.value.status == 400
    assert caught.value.param == "messages[0].content[0].image_url.url"


def test_it_translates_tools_and_drops_strict() -> None:
    out = translate({"messages": [user()], "tools": [TOOL]})
    assert out["tools"] == [
        {
            "name": "read_file",
            "description": "Read a file",
            "input_schema": TOOL["function"]["parameters"],
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "read_file"}},
            {"type": "tool", "name": "read_file"},
        ),
    ],
)
def test_it_translates_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    out = translate({"messages": [user()], "tools": [TOOL], "tool_choice": choice})
    assert out["tool_choice"] == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_it_disables_parallel_tool_use(choice: Any, expected: dict[str, Any]) -> None:
    body = {"messages": [user()], "tools": [TOOL], "parallel_tool_calls": False}
    if choice:
        body["tool_choice"] = choice
    assert translate(body)["tool_choice"] == expected


def test_it_turns_tool_calls_into_tool_use_blocks_after_the_text() -> None:
    out = translate(
        {
            "tools": [TOOL],
            "messages": [
                user(),
                {"role": "assistant", "content": "Reading.", "tool_calls": [call("call_1")]},
                {"role": "tool", "tool_call_id": "call_1", "content": "print(1)"},
            ],
        }
    )
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.py"}},
        ],
    }


def test_it_merges_consecutive_tool_messages_into_one_user_message_results_first() -> None:
    out = translate(
        {
            "tools": [TOOL],
            "messages": [
                user(),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("call_1"), call("call_2", arguments="")],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "one"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [
                        {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}
                    ],
                },
                {"role": "user", "content": "now what?"},
            ],
        }
    )
    assert len(out["messages"]) == 3
    assert out["messages"][1]["content"][1]["input"] == {}
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": [
                    {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {"type": "text", "text": "now what?"},
        ],
    }


def test_tool_results_come_first_even_after_a_note_the_client_put_before_them() -> None:
    out = translate(
        {
            "tools": [TOOL],
            "messages": [
                user(),
                {"role": "assistant", "tool_calls": [call("call_1")]},
                {"role": "user", "content": "(environment details)"},
                {"role": "tool", "tool_call_id": "call_1", "content": "one"},
            ],
        }
    )
    assert [block["type"] for block in out["messages"][2]["content"]] == ["tool_result", "text"]


def test_it_refuses_a_tool_call_left_without_its_result() -> None:
    with pytest.raises(TranslationError, match="call_2"):
        translate(
            {
                "tools": [TOOL],
                "messages": [
                    user(),
                    {"role": "assistant", "tool_calls": [call("call_1"), call("call_2")]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "one"},
                ],
            }
        )


def test_it_refuses_arguments_that_are_not_json() -> None:
    with pytest.raises(TranslationError) as caught:
        translate(
            {
                "tools": [TOOL],
                "messages": [
                    user(),
                    {"role": "assistant", "tool_calls": [call("call_1", arguments="{oops")]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                ],
            }
        )
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_it_defines_used_tools_when_history_has_calls_but_the_request_has_no_tools() -> None:
    out = translate(
        {
            "messages": [
                user(),
                {"role": "assistant", "tool_calls": [call("call_1")]},
                {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                user("summarise"),
            ]
        }
    )
    assert [tool["name"] for tool in out["tools"]] == ["read_file"]
    assert out["tool_choice"] == {"type": "none"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, MAX),
        ({"max_tokens": -1}, MAX),
        ({"max_completion_tokens": 0}, MAX),
        ({"max_completion_tokens": -1, "max_tokens": 100}, MAX),
        ({"max_tokens": 1000}, 1000),
        ({"max_completion_tokens": 2000, "max_tokens": 1000}, 2000),
        ({"max_tokens": 10**6}, MAX),
    ],
)
def test_it_resolves_max_tokens(fields: dict[str, Any], expected: int) -> None:
    assert translate({"messages": [user()], **fields})["max_tokens"] == expected


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ["END"]), (["END", "\n", " "], ["END"]), (["\n\n"], None), (None, None)],
)
def test_it_translates_stop_dropping_whitespace_only(stop: Any, expected: Any) -> None:
    out = translate({"messages": [user()], "stop": stop})
    assert out.get("stop_sequences") == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"temperature": 1.7}, {"temperature": 1.0}),
        ({"temperature": 0}, {"temperature": 0.0}),
        ({"temperature": 0.3, "top_p": 0.9}, {"temperature": 0.3}),
        ({"top_p": 0.9}, {"top_p": 0.9}),
    ],
)
def test_it_clamps_temperature_and_keeps_it_over_top_p(fields: dict, expected: dict) -> None:
    out = translate({"messages": [user()], **fields})
    assert {k: out[k] for k in ("temperature", "top_p") if k in out} == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("presence_penalty", 0.5),
        ("logit_bias", {"1": 2}),
        ("audio", {"voice": "alloy"}),
        ("modalities", ["text", "audio"]),
    ],
)
def test_it_refuses_what_anthropic_cannot_do(field: str, value: Any) -> None:
    with pytest.raises(TranslationError) as caught:
        translate({"messages": [user()], field: value})
    assert caught.value.status == 400
    assert caught.value.param == field
    assert caught.value.openai_body()["error"]["param"] == field


def test_it_accepts_neutral_values_of_unsupported_fields() -> None:
    out = translate(
        {
            "messages": [user()],
            "n": 1,
            "presence_penalty": 0,
            "frequency_penalty": 0.0,
            "logprobs": False,
            "seed": 7,
        }
    )
    assert "n" not in out and "seed" not in out


def test_it_translates_json_schema_to_output_config_format() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": False,
    }
    out = translate(
        {
            "messages": [user()],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema, "strict": True},
            },
        }
    )
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_it_refuses_json_object_mode_with_a_way_out() -> None:
    with pytest.raises(TranslationError, match="json_schema"):
        translate({"messages": [user()], "response_format": {"type": "json_object"}})


@pytest.mark.parametrize("field", ["user", "safety_identifier"])
def test_it_passes_the_end_user_as_metadata_user_id(field: str) -> None:
    out = translate({"messages": [user()], field: "u-42"})
    assert out["metadata"] == {"user_id": "u-42"}


def test_it_copies_cache_control_onto_the_matching_blocks() -> None:
    marker = {"type": "ephemeral", "ttl": "1h"}
    out = translate(
        {
            "messages": [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "sys", "cache_control": marker}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "a"},
                        {"type": "text", "text": "b", "cache_control": marker},
                    ],
                },
            ],
            "tools": [{**TOOL, "cache_control": marker}],
        }
    )
    assert out["system"][0]["cache_control"] == marker
    assert out["messages"][0]["content"][1]["cache_control"] == marker
    assert "cache_control" not in out["messages"][0]["content"][0]
    assert out["tools"][0]["cache_control"] == marker


def test_it_sets_the_upstream_model_and_streaming() -> None:
    out = translate(
        {
            "model": "claude-sonnet-4.5",
            "messages": [user()],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert out["model"] == "claude-sonnet-4-5"
    assert out["stream"] is True
    assert "stream_options" not in out


def test_it_does_not_modify_the_clients_body() -> None:
    body = {
        "tools": [TOOL],
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            },
            user(),
            {"role": "assistant", "tool_calls": [call("call_1")]},
            {"role": "tool", "tool_call_id": "call_1", "content": "x"},
        ],
    }
    before = copy.deepcopy(body)
    out = translate(body)
    out["tools"][0]["input_schema"]["x"] = 1
    out["system"][0]["cache_control"]["ttl"] = "1h"
    assert body == before
