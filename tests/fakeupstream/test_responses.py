"""The fake's OpenAI Responses wire, driven by the official openai SDK: answers,
streams, function calls, reasoning with encrypted_content, validation, caching."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.fakeupstream.conftest import WEATHER_TOOL

# -- OpenAI Responses ------------------------------------------------------------------

WEATHER_FUNCTION = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER_TOOL["input_schema"],
}


def test_responses_echo_the_user_with_the_same_usage_as_chat(oai):
    chat = oai.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "hello there world"},
        ],
    )
    raw = oai.responses.with_raw_response.create(
        model="gpt-4o", instructions="Be brief", input="hello there world"
    )
    response = raw.parse()

    assert response.output_text == "Echo: hello there world"
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.output[0].id.startswith("msg_") and response.output[0].status == "completed"
    assert response.usage.input_tokens == chat.usage.prompt_tokens == 5
    assert response.usage.output_tokens == chat.usage.completion_tokens == 4
    assert response.instructions == "Be brief" and response.store is True
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"


def test_responses_stream_with_event_lines_and_sequence_numbers(fake_upstream):
    response = httpx.post(
        f"{fake_upstream.url}/v1/responses",
        json={"model": "gpt-4o", "input": "one two", "stream": True},
        headers={"authorization": "Bearer sk-test"},
    )
    events = [block for block in response.text.split("\n\n") if block]

    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = []
    for number, block in enumerate(events):
        name, data = block.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}" and payload["sequence_number"] == number
        kinds.append(payload["type"])
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.count("response.output_text.delta") == 3
    assert kinds[-1] == "response.completed"


def test_responses_stream_a_function_call_the_sdk_accumulates(oai):
    with oai.responses.stream(
        model="gpt-4o", input="weather in paris?", tools=[WEATHER_FUNCTION]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    (call,) = final.output
    assert call.type == "function_call" and call.call_id.startswith("call_")
    assert call.id.startswith("fc_") and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "city-value", "unit": "c"}
    assert kinds.count("response.function_call_arguments.delta") > 1
    assert "response.function_call_arguments.done" in kinds
    assert final.usage.output_tokens == 10


def test_responses_answer_function_call_outputs_from_the_history(oai):
    first = oai.responses.create(model="gpt-4o", input="weather?", tools=[WEATHER_FUNCTION])
    call = first.output[0]
    second = oai.responses.create(
        model="gpt-4o",
        tools=[WEATHER_FUNCTION],
        input=[
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny and 21"},
        ],
    )

    assert second.output_text == "Tool result: sunny and 21"
    assert second.usage.input_tokens == 1 + 10 + (10 + 4) + 3  # user, call, tool, output


def test_responses_reasoning_carries_encrypted_content_that_must_come_back_intact(oai):
    ask = {
        "model": "o4-mini",
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
    }
    first = oai.responses.create(input="a b", **ask)
    reasoning = first.output[0]

    assert reasoning.type == "reasoning" and reasoning.encrypted_content.startswith("gAAAAA")
    assert reasoning.summary[0].text == "Let me think about this request."
    assert first.usage.output_tokens_details.reasoning_tokens == 8
    history = [
        {"role": "user", "content": "a b"},
        reasoning.model_dump(exclude_none=True),
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "again"},
    ]
    assert oai.responses.create(input=history, **ask).output_text.startswith("Echo: again")
    forged = [{**history[1], "encrypted_content": "tgr1.W10"}, history[3]]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(input=forged, **ask)
    assert caught.value.code == "invalid_encrypted_content"
    bare = [{k: v for k, v in history[1].items() if k != "encrypted_content"}, history[3]]
    with pytest.raises(openai.BadRequestError, match="not persisted"):
        oai.responses.create(input=bare, **ask)


def test_responses_without_summary_or_include_hide_the_reasoning(oai):
    response = oai.responses.create(model="o4-mini", input="x", reasoning={"effort": "low"})

    assert response.output[0].summary == [] and response.output[0].encrypted_content is None


def test_responses_truncate_at_max_output_tokens(oai):
    response = oai.responses.create(
        model="o4-mini", input=" ".join("w" * 1 for _ in range(30)), max_output_tokens=16
    )

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 16


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({"input": "x"}, "Missing required parameter: 'model'.", "model"),
        ({"model": "gpt-4o"}, "Missing required parameter: 'input'.", "input"),
        ({"model": "gpt-4o", "input": "x", "messages": []}, "Unknown parameter: 'messages'.", None),
        ({"model": "gpt-4o", "input": [{"type": "bogus"}]}, "Invalid value: 'bogus'.", None),
        (
            {"model": "gpt-4o", "input": "x", "previous_response_id": "resp_1"},
            "Previous response with id 'resp_1' not found.",
            "previous_response_id",
        ),
        (
            {"model": "gpt-4o", "input": "x", "max_output_tokens": 5},
            "Invalid 'max_output_tokens'",
            "max_output_tokens",
        ),
        (
            {
                "model": "gpt-4o",
                "input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}],
            },
            "No tool call found for function call output with call_id call_x.",
            "input",
        ),
        (
            {
                "model": "gpt-4o",
                "input": [
                    {"type": "function_call", "call_id": "call_y", "name": "f", "arguments": "{}"}
                ],
            },
            "No tool output found for function call call_y.",
            "input",
        ),
        (
            {"model": "gpt-4o", "input": [{"type": "item_reference", "id": "msg_1"}]},
            "Item with id 'msg_1' not found.",
            "input",
        ),
        (
            {"model": "gpt-4o", "input": "x", "tools": [{"type": "browser"}]},
            "Invalid value: 'browser'.",
            "tools[0].type",
        ),
    ],
)
def test_responses_reject_what_openai_rejects(fake_upstream, body, message, param):
    response = httpx.post(
        f"{fake_upstream.url}/v1/responses",
        json=body,
        headers={"authorization": "Bearer sk-test"},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith(message) and error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


def test_responses_authenticate_and_fail_like_chat(fake_upstream, oai):
    bad = openai.OpenAI(base_url=f"{fake_upstream.url}/v1", api_key="bad-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.responses.create(model="gpt-4o", input="x")
    anonymous = httpx.post(f"{fake_upstream.url}/v1/responses", json={"model": "m", "input": "x"})
    assert anonymous.status_code == 401 and "API key" in anonymous.json()["error"]["message"]

    fake_upstream.app.script("gpt-4o", [{"status": 429, "headers": {"retry-after": "1"}}])
    with pytest.raises(openai.RateLimitError) as caught:
        oai.responses.create(model="gpt-4o", input="x")
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "1"
    assert fake_upstream.app.requests[-1]["path"] == "/v1/responses"


def test_a_responses_mid_stream_error_is_an_error_event_the_sdk_raises(fake_upstream, oai):
    fake_upstream.app.script("gpt-4o", [{"stream_error_after_chunks": 3}])
    seen = []

    with pytest.raises(openai.APIError, match="The server had an error"):
        for event in oai.responses.create(model="gpt-4o", input="a b c", stream=True):
            seen.append(event.type)

    assert seen == ["response.created", "response.in_progress", "response.output_item.added"]
    raw = fake_upstream.app
    raw.script("gpt-4o", [{"stream_error_after_chunks": 2}])
    text = httpx.post(
        f"{fake_upstream.url}/v1/responses",
        json={"model": "gpt-4o", "input": "x", "stream": True},
        headers={"authorization": "Bearer sk-test"},
    ).text
    last = json.loads(text.strip().split("\n\n")[-1].split("\n")[1].removeprefix("data: "))
    assert last["type"] == "error" and last["sequence_number"] == 2
    assert last["error"]["type"] == "server_error"


def test_responses_cache_automatically_like_chat(fake_upstream, oai):
    fake_upstream.app.openai_cache_min_tokens = 4
    instructions = "one two three four five"

    oai.responses.create(model="gpt-4o", instructions=instructions, input="first question")
    second = oai.responses.create(model="gpt-4o", instructions=instructions, input="second one")

    assert second.usage.input_tokens_details.cached_tokens == 5
