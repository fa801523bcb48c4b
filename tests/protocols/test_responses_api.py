"""Non-streaming Responses objects from the Chat hub and from Anthropic, read back with
the openai SDK's `Response` type (strict pydantic validation)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openai.types.responses import Response

from gateway.protocols.reasoning_carrier import reasoning_details_from
from gateway.protocols.registry import route
from gateway.protocols.responses_api import output_text_of, responses_from_chat
from gateway.protocols.usage import Usage

REQUEST: dict[str, Any] = {
    "model": "public",
    "instructions": "Be brief.",
    "input": "hi",
    "tools": [
        {"type": "function", "name": "read_file", "parameters": {"type": "object"}, "strict": True},
        {"type": "web_search"},
    ],
    "tool_choice": "auto",
    "reasoning": {"effort": "low", "summary": "auto"},
    "text": {"format": {"type": "text"}},
    "max_output_tokens": 1000,
    "metadata": {"k": "v"},
}


def chat(
    message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": usage
        or {
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 10},
        },
    }


def valid(data: dict[str, Any]) -> Response:
    return Response.model_validate(data, strict=False)


def test_text_and_tool_calls() -> None:
    data = chat(
        {
            "content": "Reading.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"p":1}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": "{}"},
                },
            ],
        },
        finish="tool_calls",
    )
    out = responses_from_chat(data, model="public", request=REQUEST, created=7)
    response = valid(out)
    assert (
        response.id == "resp_abc" and response.status == "completed" and response.model == "public"
    )
    assert response.output_text == "Reading." == output_text_of(out)
    message, call1, call2 = response.output
    assert message.type == "message" and message.id == "msg_abc" and message.status == "completed"
    assert (call1.type, call1.call_id, call1.name, call1.arguments) == (
        "function_call",
        "call_1",
        "read_file",
        '{"p":1}',
    )
    assert call1.id == "fc_1" and call2.call_id == "call_2"
    # the request's settings are echoed, with only the tools that could run
    assert response.instructions == "Be brief." and response.max_output_tokens == 1000
    assert [t.type for t in response.tools] == ["function"]
    assert response.reasoning.effort == "low" and response.metadata == {"k": "v"}
    assert response.usage.input_tokens == 120
    assert response.usage.input_tokens_details.cached_tokens == 100
    assert (
        response.usage.output_tokens == 30
        and response.usage.output_tokens_details.reasoning_tokens == 10
    )
    assert response.usage.total_tokens == 150


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_incomplete(finish: str, reason: str) -> None:
    response = valid(responses_from_chat(chat({"content": "cut"}, finish=finish), model="m"))
    assert response.status == "incomplete" and response.incomplete_details.reason == reason
    assert response.output[0].status == "incomplete"


def test_refusal_is_a_refusal_part() -> None:
    response = valid(responses_from_chat(chat({"content": None, "refusal": "No."}), model="m"))
    (message,) = response.output
    assert message.content[0].type == "refusal" and message.content[0].refusal == "No."


def test_unsigned_reasoning_is_a_summary_without_encrypted_content() -> None:
    response = valid(
        responses_from_chat(chat({"content": "Hi", "reasoning_content": "Thinking."}), model="m")
    )
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Thinking."
    assert reasoning.encrypted_content is None


ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_01XYZ",
    "type": "message",
    "role": "assistant",
    "model": "claude",
    "content": [
        {"type": "thinking", "thinking": "Plan.", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "toolu_01T", "name": "read_file", "input": {"p": "a"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
    },
}


def test_anthropic_through_the_hub_keeps_signed_thinking() -> None:
    r = route("responses", "anthropic")
    data = copy.deepcopy(ANTHROPIC_MESSAGE)
    usage = r.usage(data)
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (20, 30)
    out = r.response(
        data, model="public", usage=usage, usage_extra={"cost": 0.01}, request_body=REQUEST
    )
    response = valid(out)
    assert response.id == "resp_01XYZ"
    reasoning, message, call = response.output
    assert reasoning.summary[0].text == "Plan."
    details = reasoning_details_from(reasoning.encrypted_content, param="x")
    assert [d["type"] for d in details] == ["reasoning.text", "reasoning.encrypted"]
    assert details[0]["signature"] == "sig1" and details[1]["data"] == "opaque"
    assert message.content[0].text == "Calling."
    assert call.call_id == "call_01T" and call.arguments == '{"p": "a"}'
    assert response.usage.input_tokens == 160  # input includes cache reads and writes
    assert response.usage.input_tokens_details.cached_tokens == 100
    assert response.usage.input_tokens_details.cache_write_tokens == 50
    assert out["usage"]["cost"] == 0.01
    assert ANTHROPIC_MESSAGE == data  # not modified


def test_the_passthrough_body_keeps_upstream_usage_details_and_gets_cost() -> None:
    upstream = {
        "id": "resp_up",
        "object": "response",
        "created_at": 1,
        "model": "gpt-up",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 50,
            "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 55,
            "extra_detail": 1,
        },
    }
    r = route("responses", "responses")
    usage = r.usage(upstream)
    assert usage == Usage(input_tokens=30, output_tokens=5, cache_read_tokens=20)
    out = r.response(upstream, model="public", usage=usage, usage_extra={"cost": 0.5})
    assert (
        out["model"] == "public"
        and out["usage"]["extra_detail"] == 1
        and out["usage"]["cost"] == 0.5
    )
    assert out["usage"]["input_tokens"] == 50
    valid(out)


def test_usage_round_trip() -> None:
    usage = Usage(
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=3,
        cache_write_5m_tokens=2,
        reasoning_tokens=1,
    )
    shape = usage.to_responses()
    assert shape["input_tokens"] == 15 and shape["total_tokens"] == 20
    assert Usage.from_responses(shape) == usage
    assert Usage.from_responses(None) == Usage()


def test_chat_cache_writes_are_read_from_prompt_tokens_details() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 100,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 30},
        }
    )
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_5m_tokens) == (
        30,
        40,
        30,
    )
