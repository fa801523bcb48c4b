"""The OpenAI-compatible endpoint, called with the official openai SDK against the
running ASGI server, served by the fake upstream."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from billing.models import LedgerEntry
from billing.selectors import balance_get
from gateway.models import RequestLog
from testkit.fakeupstream.errors import default_error_body

pytestmark = pytest.mark.django_db(transaction=True)


def client(world, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("timeout", 20)
    return openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0, **kwargs)


def expected_cost_nano(input_tokens: int, output_tokens: int) -> int:
    # test-gpt-5.5: $1.25 in, $10 out per million tokens = 1250 / 10000 pico per token
    pico = input_tokens * 1_250_000 + output_tokens * 10_000_000
    return (pico + 500) // 1000


def test_it_answers_a_chat_completion_with_cost(world):
    raw = client(world).chat.completions.with_raw_response.create(
        model="test-gpt-5.5",
        messages=[{"role": "user", "content": "hello gateway world"}],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello gateway world"
    assert completion.model == "test-gpt-5.5"
    usage = completion.usage
    cost_nano = expected_cost_nano(usage.prompt_tokens, usage.completion_tokens)
    assert usage.model_extra["cost"] == pytest.approx(cost_nano / 1e9, rel=0, abs=1e-15)
    assert usage.model_extra["cache_read_input_tokens"] == 0
    assert raw.headers["x-tollgate-provider"] == "fakeai"
    assert raw.headers["x-tollgate-model"] == "test-gpt-5.5"
    request_id = raw.headers["x-tollgate-request-id"]
    assert raw.headers["x-tollgate-cost-usd"] == f"0.{cost_nano:09d}"

    world.drain()
    row = RequestLog.objects.get(request_id=request_id)
    assert (row.outcome, row.status_code, row.stream) == ("ok", 200, False)
    assert row.cost_nano == cost_nano
    assert row.input_tokens == usage.prompt_tokens
    assert row.output_tokens == usage.completion_tokens
    assert row.api_key_id == world.key.pk
    assert row.provider == "fakeai" and row.upstream_model == "gpt-5.5"
    assert len(row.attempts) == 1 and row.attempts[0]["status"] == 200
    debit = LedgerEntry.objects.get(idempotency_key=f"usage:{request_id}")
    assert debit.amount_nano == -cost_nano
    assert balance_get(organisation=world.organisation) == 100 * 10**9 - cost_nano


def test_the_upstream_gets_its_own_model_name_and_key_never_the_clients(world):
    client(world).chat.completions.create(
        model="gpt-latest", messages=[{"role": "user", "content": "x"}]
    )
    seen = world.fake.requests[-1]
    assert seen["body"]["model"] == "gpt-5.5"
    assert seen["headers"]["authorization"] == "Bearer upstream-key"
    assert world.secret not in json.dumps(seen)


def test_it_streams_with_usage_and_cost_in_the_last_chunk(world):
    stream = client(world).chat.completions.create(
        model="test-gpt-5.5",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three four"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.model_extra["cost"] > 0
    world.drain()
    row = RequestLog.objects.get()
    assert row.stream and row.outcome == "ok"
    assert row.cost_nano == expected_cost_nano(usage.prompt_tokens, usage.completion_tokens)
    assert row.ttfb_ms is not None


def test_it_hides_the_usage_chunk_from_clients_that_did_not_ask(world):
    stream = client(world).chat.completions.create(
        model="test-gpt-5.5",
        stream=True,
        messages=[{"role": "user", "content": "hi"}],
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    # ...but the upstream was asked for it, and the request is still billed.
    assert world.fake.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    world.drain()
    assert RequestLog.objects.get().cost_nano > 0


def test_tool_calls_work_across_two_turns(world):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                },
            },
        }
    ]
    messages = [{"role": "user", "content": "read the readme"}]
    c = client(world)
    first = c.chat.completions.create(model="test-gpt-5.5", messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "read_file"
    assert "path" in json.loads(call.function.arguments)
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "# Tollgate"},
    ]
    second = c.chat.completions.create(model="test-gpt-5.5", messages=messages, tools=tools)
    assert second.choices[0].message.content == "Tool result: # Tollgate"


def test_streamed_tool_calls_carry_the_id_in_their_first_delta(world):
    tools = [
        {
            "type": "function",
            "function": {"name": "list_files", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    stream = client(world).chat.completions.create(
        model="test-gpt-5.5",
        stream=True,
        tools=tools,
        messages=[{"role": "user", "content": "list"}],
    )
    deltas = [tc for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "list_files"


def test_the_async_client_works(world):
    async def main() -> str:
        async with openai.AsyncOpenAI(
            base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
        ) as c:
            completion = await c.chat.completions.create(
                model="test-gpt-5.5", messages=[{"role": "user", "content": "async"}]
            )
        return completion.choices[0].message.content

    assert asyncio.run(main()) == "Echo: async"


def test_roo_code_quirks_are_tolerated(world):
    """What Roo Code's OpenAI-compatible provider sends: developer role, cache_control on
    parts, max_completion_tokens -1, reasoning_details, custom headers, x-api-key."""
    body = {
        "model": "test-gpt-5.5",
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": -1,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "attempt_completion",
                    "strict": True,
                    "parameters": {
                        "type": "object",
                        "properties": {"result": {"type": "string"}},
                        "required": ["result"],
                        "additionalProperties": False,
                    },
                },
            }
        ],
        "messages": [
            {
                "role": "developer",
                "content": [
                    {"type": "text", "text": "You are Roo", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "assistant", "content": "hello", "reasoning_details": []},
            {"role": "user", "content": "do it"},
        ],
    }
    headers = {
        "x-api-key": world.secret,
        "X-Title": "Roo Code",
        "HTTP-Referer": "x",
        "X-Tollgate-Session-Id": "task-42",
    }
    with httpx.stream(
        "POST",
        f"{world.url}/v1//chat/completions".replace("//chat", "/chat"),
        json=body,
        headers=headers,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    usage = json.loads(lines[-2][6:])["usage"]
    assert usage["cost"] > 0 and "cache_creation_input_tokens" in usage
    sent = world.fake.requests[-1]["body"]
    assert "cache_control" not in json.dumps(sent)
    world.drain()
    assert RequestLog.objects.get().session_id == "task-42"


def test_models_lists_what_the_keys_group_may_use(world):
    models = client(world).models.list()
    ids = {m.id for m in models}
    assert {"test-gpt-5.5", "claude-test-4.6"} <= ids
    assert "test-gpt-pro" not in ids  # only in the pro group
    gpt = next(m for m in models if m.id == "test-gpt-5.5")
    assert gpt.model_extra["pricing"]["input"] == "1.25"
    assert gpt.model_extra["context_length"] == world.gpt.context_window
    response = httpx.get(
        f"{world.url}/v1//models", headers={"authorization": f"Bearer {world.secret}"}
    )
    assert response.status_code == 200
    assert {m["id"] for m in response.json()["data"]} == ids


# --- errors ---------------------------------------------------------------------------


def test_it_rejects_a_bad_key_with_401(world):
    bad = openai.OpenAI(base_url=world.openai_base, api_key="sk-tg-nope", max_retries=0, timeout=20)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="test-gpt-5.5", messages=[])
    assert info.value.body["code"] == "invalid_api_key"


def test_it_rejects_a_revoked_key_on_the_next_request(world):
    from accounts.services import api_key_revoke

    c = client(world)
    c.chat.completions.create(model="test-gpt-5.5", messages=[{"role": "user", "content": "a"}])
    api_key_revoke(api_key=world.key)
    with pytest.raises(openai.AuthenticationError) as info:
        c.chat.completions.create(model="test-gpt-5.5", messages=[{"role": "user", "content": "b"}])
    assert info.value.body["code"] == "key_revoked"


def test_an_unknown_model_is_404_with_suggestions(world):
    with pytest.raises(openai.NotFoundError) as info:
        client(world).chat.completions.create(model="test-gpt-5.4", messages=[])
    assert info.value.body["code"] == "model_not_found"
    assert "test-gpt-5.5" in info.value.message


def test_a_model_outside_the_keys_group_is_403_naming_the_group(world):
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(world).chat.completions.create(
            model="test-gpt-pro", messages=[{"role": "user", "content": "x"}]
        )
    assert "'default'" in info.value.message
    assert info.value.body["code"] == "model_not_allowed"


@pytest.mark.parametrize(
    "body, param",
    [
        (b"{not json", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "test-gpt-5.5"}', "messages"),
        (b"[1, 2]", None),
    ],
)
def test_a_malformed_body_is_400_saying_what_is_wrong(world, body, param):
    response = httpx.post(
        f"{world.url}/v1/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {world.secret}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"]


def test_upstream_rate_limits_reach_the_client_as_429(world):
    limits = {
        "retry-after": "7",
        "retry-after-ms": "6500",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6.5s",
    }
    world.fake.script("gpt-5.5", [{"status": 429, "headers": limits}])
    with pytest.raises(openai.RateLimitError) as info:
        client(world).chat.completions.create(
            model="test-gpt-5.5", messages=[{"role": "user", "content": "x"}]
        )
    # OpenAI's own error (type, code, param, message) and its rate-limit headers.
    assert info.value.body == default_error_body("openai", 429, "gpt-5.5")["error"]
    for name, value in limits.items():
        assert info.value.response.headers[name] == value
    assert info.value.response.headers["x-tollgate-provider"] == "fakeai"
    world.drain()
    row = RequestLog.objects.get()
    assert (row.outcome, row.status_code, row.cost_nano) == ("error", 429, 0)
    assert row.attempts[0]["status"] == 429


@pytest.mark.parametrize(
    "upstream, status, exc",
    [
        (500, 500, openai.InternalServerError),
        (503, 503, openai.InternalServerError),
    ],
)
def test_upstream_failures_are_5xx_with_the_upstreams_message(world, upstream, status, exc):
    world.fake.script("gpt-5.5", [{"status": upstream}])
    with pytest.raises(exc) as info:
        client(world).chat.completions.create(
            model="test-gpt-5.5", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == status  # the upstream's own, with its message
    assert info.value.message.startswith(f"Error code: {status} - ")
    assert info.value.response.headers["x-tollgate-provider"] == "fakeai"


def test_an_upstream_that_does_not_answer_in_time_is_504(world, settings):
    world.fake.script("gpt-5.5", [{"hang": True}])
    settings.TOLLGATE_UPSTREAM_READ_TIMEOUT = 0.3
    from gateway.runtime import runtime
    from gateway.upstream import Upstream

    old, runtime.upstream = runtime.upstream, Upstream()
    try:
        with pytest.raises(openai.APIStatusError) as info:
            client(world).chat.completions.create(
                model="test-gpt-5.5", messages=[{"role": "user", "content": "x"}]
            )
    finally:
        runtime.upstream = old
    assert info.value.status_code == 504


def test_an_upstream_error_mid_stream_reaches_the_client(world):
    world.fake.script("gpt-5.5", [{"stream_error_after_chunks": 2}])
    with pytest.raises(openai.APIError):
        list(
            client(world).chat.completions.create(
                model="test-gpt-5.5",
                stream=True,
                messages=[{"role": "user", "content": "a b c d e f"}],
            )
        )
    world.drain()
    assert RequestLog.objects.get().outcome == "error"


def test_errors_are_never_html(world):
    for method, path in [
        ("GET", "/v1/nothing"),
        ("POST", "/v1/models"),
        ("DELETE", "/v1/chat/completions"),
    ]:
        response = httpx.request(
            method, f"{world.url}{path}", headers={"authorization": f"Bearer {world.secret}"}
        )
        assert response.status_code in (404, 405)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["message"]
