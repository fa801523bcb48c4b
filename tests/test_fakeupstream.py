"""The fake upstream, driven by the official `openai` and `anthropic` SDKs over HTTP:
wire shapes, streams, tool calls, auth, validation, caching and scripted failures."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from testkit.fakeupstream.reply import Conversation, plan_reply

CLAUDE = "claude-sonnet-4-6"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"enum": ["c", "f"]},
            "days": {"type": "integer"},
        },
        "required": ["city", "unit"],
    },
}
TIME_TOOL = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def openai_tool(tool: dict) -> dict:
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": tool["input_schema"],
        },
    }


@pytest.fixture
def oai(fake_upstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{fake_upstream.url}/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def claude(fake_upstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake_upstream.url, api_key="sk-ant-test", max_retries=0)


def post_messages(fake_upstream, body: dict) -> httpx.Response:
    return httpx.post(
        f"{fake_upstream.url}/v1/messages",
        json=body,
        headers={"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"},
    )


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


# -- Anthropic -------------------------------------------------------------------------


def test_it_answers_a_message_with_usage_and_headers(claude):
    raw = claude.messages.with_raw_response.create(
        model=CLAUDE,
        max_tokens=100,
        system="Be brief",
        messages=[{"role": "user", "content": "hi you"}],
    )
    message = raw.parse()

    assert message.id.startswith("msg_")
    assert [block.text for block in message.content] == ["Echo: hi you"]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 3)
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "3999"


def test_it_streams_thinking_text_and_tool_use_in_order(fake_upstream):
    # raw SSE, because the SDK hides ping events
    response = post_messages(
        fake_upstream,
        {
            "model": CLAUDE,
            "max_tokens": 4096,
            "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "narrate the weather"}],
        },
    )
    lines = [line for line in response.text.split("\n") if line]
    names = [line.removeprefix("event: ") for line in lines[0::2]]
    events = [json.loads(line.removeprefix("data: ")) for line in lines[1::2]]

    assert [e["type"] for e in events] == names
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    deltas = [
        (e["index"], e["delta"]["type"]) for e in events if e["type"] == "content_block_delta"
    ]
    assert (0, "signature_delta") in deltas and (1, "text_delta") in deltas
    fragments = [
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    ]
    assert len([f for f in fragments if f]) > 1
    assert json.loads("".join(fragments)) == {"city": "city-value", "unit": "c"}
    start_usage = events[0]["message"]["usage"]
    assert start_usage["cache_read_input_tokens"] == 0
    assert start_usage["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 0,
    }
    final = events[-2]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens"] == 6 + 2 + 10  # thinking, "Calling get_weather."
    assert final["usage"]["input_tokens"] == start_usage["input_tokens"]


def test_it_takes_back_its_own_thinking_and_refuses_a_forged_signature(claude):
    first = claude.messages.create(
        model=CLAUDE,
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[TIME_TOOL],
        messages=[{"role": "user", "content": "time?"}],
    )
    turn = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": first.content[-1].id, "content": "noon"}
            ],
        },
    ]

    second = claude.messages.create(
        model=CLAUDE,
        max_tokens=4096,
        tools=[TIME_TOOL],
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=turn,
    )
    turn[1]["content"][0]["signature"] = "forged"

    assert second.content[-1].text == "Tool result: noon"
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        claude.messages.create(
            model=CLAUDE,
            max_tokens=4096,
            tools=[TIME_TOOL],
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=turn,
        )


def test_it_writes_then_reads_the_prompt_cache_split_by_ttl(claude):
    system = [
        {"type": "text", "text": "rules " * 50, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]

    def ask(text: str) -> anthropic.types.Usage:
        return claude.messages.create(
            model=CLAUDE,
            max_tokens=20,
            system=system,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}
                    ],
                }
            ],
        ).usage

    first, second = ask("first question"), ask("second one here")

    assert (
        first.cache_creation.ephemeral_1h_input_tokens,
        first.cache_creation.ephemeral_5m_input_tokens,
    ) == (50, 2)
    assert (first.cache_read_input_tokens, first.input_tokens) == (0, 0)
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (50, 3)


def test_it_counts_tokens_without_max_tokens(claude):
    count = claude.messages.count_tokens(
        model=CLAUDE, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "a b c"}]
    )

    assert count.input_tokens == 10 + 4 + 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "messages: text content blocks must be non-empty",
        ),
        (
            {"temperature": 0.5, "top_p": 0.9},
            "`temperature` and `top_p` cannot both be specified for this model",
        ),
        (
            {"stop_sequences": ["\n"]},
            "stop_sequences: each stop sequence must contain non-whitespace",
        ),
        (
            {
                "system": [
                    {"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}}
                    for i in range(5)
                ]
            },
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
        ({"tools": None}, "Requests which include `tool_use` or `tool_result` blocks must define"),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}
                        ],
                    },
                    {"role": "user", "content": "and?"},
                ]
            },
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
            "toolu_1.",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "call.1", "name": "get_time", "input": {}}
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "call.1", "content": "x"}
                        ],
                    },
                ]
            },
            "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
        ),
    ],
)
def test_it_rejects_what_anthropic_rejects(fake_upstream, change, message):
    body = {
        "model": CLAUDE,
        "max_tokens": 50,
        "tools": [TIME_TOOL],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "noon"}],
            },
        ],
    }
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}

    response = post_messages(fake_upstream, body)

    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"] == message or message in error["error"]["message"]
    assert error["request_id"] == response.headers["request-id"]


def test_it_allows_temperature_with_top_p_on_older_models(fake_upstream):
    response = post_messages(
        fake_upstream,
        {
            "model": "claude-3-haiku-20240307",
            "max_tokens": 10,
            "temperature": 0.5,
            "top_p": 0.9,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )

    assert response.status_code == 200


# -- auth ------------------------------------------------------------------------------


def test_it_refuses_bad_keys_in_each_vendor_shape(fake_upstream):
    bad_oai = openai.OpenAI(
        base_url=f"{fake_upstream.url}/v1", api_key="bad-key-1234", max_retries=0
    )
    bad_claude = anthropic.Anthropic(base_url=fake_upstream.url, api_key="bad-key", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as oai_error:
        bad_oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.AuthenticationError) as claude_error:
        bad_claude.messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )

    assert oai_error.value.code == "invalid_api_key"
    assert "bad*****1234" in oai_error.value.message
    assert claude_error.value.body["error"]["type"] == "authentication_error"


def test_it_answers_401_without_a_key(fake_upstream):
    openai_response = httpx.post(f"{fake_upstream.url}/v1/chat/completions", json={})
    anthropic_response = httpx.post(
        f"{fake_upstream.url}/v1/messages", json={}, headers={"anthropic-version": "2023-06-01"}
    )

    assert openai_response.status_code == 401
    assert "You didn't provide an API key" in openai_response.json()["error"]["message"]
    assert anthropic_response.status_code == 401
    assert anthropic_response.json()["error"]["message"] == "x-api-key header is required"


def test_it_accepts_only_configured_keys_when_given(fake_upstream, oai):
    fake_upstream.app.valid_keys = {"sk-byok-1"}
    allowed = openai.OpenAI(base_url=f"{fake_upstream.url}/v1", api_key="sk-byok-1", max_retries=0)

    allowed.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


# -- scripted behaviours ---------------------------------------------------------------


def test_a_scripted_429_carries_retry_after_and_the_vendor_body(fake_upstream, oai):
    fake_upstream.app.script("gpt-4o", [{"status": 429, "headers": {"retry-after": "1"}}])

    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    after = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])

    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    assert after.choices[0].message.content == "Echo: x"


def test_scripts_run_in_order_with_star_as_fallback(fake_upstream, claude):
    fake_upstream.app.script("*", [{"status": 500}])
    fake_upstream.app.script(CLAUDE, [{"status": 529}])
    ask = {"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}

    with pytest.raises(anthropic.OverloadedError) as first:
        claude.messages.create(**ask)
    with pytest.raises(anthropic.InternalServerError) as second:
        claude.messages.create(**ask)
    claude.messages.create(**ask)

    assert first.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert second.value.status_code == 500


def test_a_hanging_upstream_is_released_by_the_client_timeout(fake_upstream, oai):
    fake_upstream.app.script("gpt-4o", [{"hang": True}])

    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.3).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    ).choices


def test_a_dropped_stream_fails_after_the_chunks_sent(fake_upstream, oai):
    fake_upstream.app.script("gpt-4o", [{"drop_after_chunks": 2, "chunk_delay_ms": 1}])
    received = []

    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "a b c d"}], stream=True
        ):
            received.append(chunk)

    assert len(received) == 2


def test_a_mid_stream_error_reaches_each_sdk(fake_upstream, oai, claude):
    fake_upstream.app.script("*", [{"stream_error_after_chunks": 2}] * 2)

    with pytest.raises(openai.APIError, match="The server had an error"):
        list(
            oai.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "a b"}], stream=True
            )
        )
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        list(
            claude.messages.create(
                model=CLAUDE,
                max_tokens=5,
                stream=True,
                messages=[{"role": "user", "content": "a b"}],
            )
        )


def test_the_admin_api_scripts_records_and_resets(fake_upstream, oai):
    admin = httpx.Client(base_url=f"{fake_upstream.url}/_fake")
    assert admin.post(
        "/script", json={"model": "gpt-4o", "behaviours": [{"status": 503, "body": None}]}
    ).is_success
    assert (
        admin.post("/script", json={"model": "gpt-4o", "behaviours": [{"stauts": 503}]}).status_code
        == 400
    )

    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    recorded = admin.get("/requests").json()
    admin.post("/reset")

    assert recorded[-1]["path"] == "/v1/chat/completions"
    assert recorded[-1]["body"]["messages"] == [{"role": "user", "content": "x"}]
    assert recorded[-1]["headers"]["authorization"] == "Bearer sk-test"
    assert admin.get("/requests").json() == []


# -- the reply rules, without HTTP -----------------------------------------------------


def test_a_stop_sequence_cuts_the_reply():
    conv = Conversation(
        model="m", units=[], last_kind="user", last_text="one STOP two", tools=[], stop=["STOP"]
    )

    plan = plan_reply(conv)

    assert (plan.text, plan.stop, plan.stop_sequence) == ("Echo: one", "stop_sequence", "STOP")


def test_a_forced_tool_is_called_even_after_a_tool_result():
    conv = Conversation(
        model="m",
        units=[],
        last_kind="tool_result",
        last_text="done",
        tools=[("a", {}), ("b", {})],
        tool_mode="tool",
        forced_tool="b",
    )

    plan = plan_reply(conv)

    assert plan.tool_calls == [("b", "{}")] and plan.stop == "tool_use"


def test_a_default_behaviour_serves_every_unscripted_request():
    from testkit.fakeupstream import FakeUpstream
    from testkit.fakeupstream.script import Behaviour
    from testkit.tenants import ServedApp

    app = FakeUpstream(default=Behaviour.parse({"status": 503}))
    served = ServedApp(app, lifespan="off")
    try:
        app.script("gpt-4o", [{"status": 429}])
        oai = openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-test", max_retries=0)
        statuses = []
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as info:
                oai.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )
            statuses.append(info.value.status_code)
    finally:
        served.stop()
    assert statuses == [429, 503, 503]  # the script first, then the default


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
