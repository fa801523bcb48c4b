"""The fake's Chat Completions, driven by the official openai SDK: answers, streams,
tool calls, reasoning, caching and what OpenAI rejects."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.fakeupstream.conftest import CLAUDE, TIME_TOOL, WEATHER_TOOL, openai_tool

# -- OpenAI ----------------------------------------------------------------------------


def test_it_echoes_the_user_with_word_counted_usage(oai):
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "hello there world"},
        ],
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Echo: hello there world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id.startswith("chatcmpl-")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 4)
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"


def test_it_streams_text_then_a_usage_chunk_without_choices(oai):
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])


def test_it_streams_parallel_tool_calls_by_index(oai):
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "check in parallel"}],
            tools=[openai_tool(WEATHER_TOOL), openai_tool(TIME_TOOL)],
            stream=True,
        )
    )

    deltas = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
    calls: dict[int, dict] = {}
    for delta in deltas:
        if delta.index not in calls:
            assert delta.id.startswith("call_") and delta.type == "function"
            calls[delta.index] = {"name": delta.function.name, "args": "", "fragments": 0}
        else:
            assert delta.id is None and delta.function.name is None
            calls[delta.index]["args"] += delta.function.arguments
            calls[delta.index]["fragments"] += 1
    assert [calls[0]["name"], calls[1]["name"]] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["args"]) == {"city": "city-value", "unit": "c"}
    assert calls[0]["fragments"] > 1
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_it_answers_a_tool_result_with_its_content(oai):
    completion = oai.chat.completions.create(
        model="gpt-4o",
        tools=[openai_tool(WEATHER_TOOL)],
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny and 21"},
        ],
    )

    assert completion.choices[0].message.content == "Tool result: sunny and 21"
    assert completion.choices[0].message.tool_calls is None


def test_it_counts_reasoning_and_truncates_at_max_completion_tokens(oai):
    completion = oai.chat.completions.create(
        model="o4-mini",
        messages=[{"role": "user", "content": "a b c d"}],
        reasoning_effort="low",
        max_completion_tokens=10,
    )

    assert completion.choices[0].message.content == "Echo: a"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 10
    assert completion.usage.completion_tokens_details.reasoning_tokens == 8


def test_it_reports_automatic_prompt_caching(fake_upstream, oai):
    fake_upstream.app.openai_cache_min_tokens = 4
    history = [{"role": "system", "content": "one two three four five"}]

    first = oai.chat.completions.create(
        model="gpt-4o", messages=[*history, {"role": "user", "content": "first question"}]
    )
    second = oai.chat.completions.create(
        model="gpt-4o", messages=[*history, {"role": "user", "content": "second question"}]
    )

    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == 5
    assert second.usage.prompt_tokens == 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra_body": {"top_k": 3}}, "Unrecognized request argument supplied: top_k"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
                        ],
                    }
                ]
            },
            "Unknown parameter: 'messages[0].content[0].cache_control'.",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "call_x", "content": "42"},
                ]
            },
            "messages with role 'tool' must be a response to a preceeding message",
        ),
        ({"max_completion_tokens": -1}, "Expected a value >= 1, but got -1 instead."),
        ({"parallel_tool_calls": True}, "'parallel_tool_calls' is only allowed when 'tools'"),
    ],
)
def test_it_rejects_what_openai_rejects(oai, kwargs, message):
    kwargs.setdefault("messages", [{"role": "user", "content": "hi"}])

    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="gpt-4o", **kwargs)

    assert message in caught.value.message
    assert caught.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (
            {"messages": [{"role": "user", "content": "hi"}]},
            "you must provide a model parameter",
            None,
        ),
        ({"model": "gpt-4o"}, "Missing required parameter: 'messages'.", "messages"),
    ],
)
def test_it_requires_model_and_messages(fake_upstream, body, message, param):
    response = httpx.post(
        f"{fake_upstream.url}/v1/chat/completions",
        json=body,
        headers={"authorization": "Bearer sk-test"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert response.json()["error"]["param"] == param


def test_it_rejects_an_unanswered_tool_call(oai):
    with pytest.raises(openai.BadRequestError, match="did not have response messages: call_9"):
        oai.chat.completions.create(
            model="gpt-4o",
            tools=[openai_tool(TIME_TOOL)],
            messages=[
                {"role": "user", "content": "time?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "user", "content": "well?"},
            ],
        )


def test_it_lists_models_in_each_vendor_shape(fake_upstream, oai, claude):
    assert "gpt-4o" in [m.id for m in oai.models.list()]
    assert CLAUDE in [m.id for m in claude.models.list()]
