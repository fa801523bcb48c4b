"""POST /v1/responses with the official openai SDK, served over each upstream wire:
Responses itself (passed through to a provider that speaks it), Chat Completions and
Anthropic Messages (translated), with the cost billed to the nano-dollar against the
fake upstream's own usage, and every request in the request log."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from billing.money import nano_to_usd_str
from gateway.models import RequestLog

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = {
    "responses": "test-gpt-native",
    "chat": "test-gpt-5.5",
    "anthropic": "claude-test-4.6",
}
UPSTREAM_PATHS = {
    "responses": "/v1/responses",
    "chat": "/v1/chat/completions",
    "anthropic": "/v1/messages",
}
WRITE_FILE = {
    "type": "function",
    "name": "write_file",
    "description": "Write a file",
    "parameters": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
}


@pytest.fixture
def served(world, native_model):
    """The world, plus a model on a provider that speaks the Responses API."""
    return world


def client(world) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
    )


def model_of(world, wire: str):
    return {"responses": world.native, "chat": world.gpt, "anthropic": world.claude}[wire]


def upstream_requests(world, wire: str) -> list[dict]:
    return [r for r in world.fake.requests if r["path"] == UPSTREAM_PATHS[wire]]


def assert_billed_exactly(world, wire, request_ids, upstream_replay, upstream_counts, vendor_cost):
    """Each request's logged cost and ledger debit equal the vendor's price of the
    usage the fake upstream reports for what the gateway sent it."""
    from billing.models import LedgerEntry

    usages = upstream_replay()
    assert len(usages) == len(request_ids)
    world.drain()
    for request_id, usage in zip(request_ids, usages, strict=True):
        row = RequestLog.objects.get(request_id=request_id)
        expected = vendor_cost(upstream_counts(usage), model_of(world, wire))
        assert row.cost_nano == expected > 0
        assert LedgerEntry.objects.get(reference=request_id).amount_nano == -expected
        assert row.client_protocol == "responses"


@pytest.mark.parametrize("wire", list(MODELS))
def test_text_answer_is_billed_exactly(served, wire, upstream_replay, upstream_counts, vendor_cost):
    raw = client(served).responses.with_raw_response.create(
        model=MODELS[wire], input="Say hello", instructions="Be brief."
    )
    response = raw.parse()
    assert response.status == "completed"
    assert response.output_text == "Echo: Say hello"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    # The cost the client is shown is the one logged and debited.
    served.drain()
    row = RequestLog.objects.get(request_id=raw.headers["x-tollgate-request-id"])
    assert raw.headers["x-tollgate-cost-usd"] == nano_to_usd_str(row.cost_nano)
    assert_billed_exactly(
        served,
        wire,
        [raw.headers["x-tollgate-request-id"]],
        upstream_replay,
        upstream_counts,
        vendor_cost,
    )
    # The system prompt reached the upstream in its own form.
    sent = upstream_requests(served, wire)[0]["body"]
    assert "Be brief." in json.dumps(sent)


@pytest.mark.parametrize("wire", list(MODELS))
def test_text_stream(served, wire, upstream_replay, upstream_counts, vendor_cost):
    with client(served).responses.with_streaming_response.create(
        model=MODELS[wire], input="Say hello there", stream=True
    ) as raw:
        request_id = raw.headers["x-tollgate-request-id"]
        events = [json.loads(line[5:]) for line in raw.iter_lines() if line.startswith("data:")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == sorted(e["sequence_number"] for e in events)
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "Echo: Say hello there"
    completed = events[-1]["response"]
    assert completed["usage"]["output_tokens"] > 0
    assert completed["usage"]["cost"] > 0
    assert_billed_exactly(served, wire, [request_id], upstream_replay, upstream_counts, vendor_cost)


@pytest.mark.parametrize("wire", list(MODELS))
def test_sdk_stream_helper_accumulates_the_answer(served, wire):
    with client(served).responses.stream(model=MODELS[wire], input="Say hello") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "Echo: Say hello"


@pytest.mark.parametrize("wire", list(MODELS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_function_tool_across_two_turns(
    served, wire, stream, upstream_replay, upstream_counts, vendor_cost
):
    api = client(served)
    ids = []

    def create(**kwargs):
        if not stream:
            raw = api.responses.with_raw_response.create(**kwargs)
            ids.append(raw.headers["x-tollgate-request-id"])
            return raw.parse()
        with api.responses.stream(**kwargs) as s:
            for _ in s:
                pass
            return s.get_final_response()

    first = create(
        model=MODELS[wire], input="Write hi to a.txt", tools=[WRITE_FILE], tool_choice="auto"
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "write_file"
    assert json.loads(call.arguments) == {"path": "path-value", "content": "content-value"}
    assert call.call_id.startswith("call_")
    second = create(
        model=MODELS[wire],
        input=[
            {"role": "user", "content": "Write hi to a.txt"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "written"},
        ],
        tools=[WRITE_FILE],
    )
    assert second.output_text == "Tool result: written"
    assert second.status == "completed"
    if not stream:
        assert_billed_exactly(served, wire, ids, upstream_replay, upstream_counts, vendor_cost)


@pytest.mark.parametrize("wire", ["responses", "anthropic"])
def test_reasoning_round_trips_as_encrypted_content(served, wire):
    """The model's reasoning comes back as an opaque encrypted_content; sent back with
    the tool result, the upstream gets its own signed reasoning again (the fake refuses
    a forged or missing signature), so a tool loop keeps thinking."""
    api = client(served)
    args = {
        "model": MODELS[wire],
        "tools": [WRITE_FILE],
        "reasoning": {"effort": "medium", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
    }
    first = api.responses.create(input="Write hi to a.txt", **args)
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert len(reasoning) == 1 and reasoning[0].encrypted_content
    assert "Let me think" in reasoning[0].summary[0].text
    call = next(item for item in first.output if item.type == "function_call")
    second = api.responses.create(
        input=[
            {"role": "user", "content": "Write hi to a.txt"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "done"},
        ],
        **args,
    )
    assert second.output_text == "Tool result: done"
    sent = upstream_requests(served, wire)[-1]["body"]
    if wire == "anthropic":
        assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
        assert assistant["content"][0]["type"] == "thinking"
        assert assistant["content"][0]["signature"]
    else:
        assert any(item.get("type") == "reasoning" for item in sent["input"])


@pytest.mark.parametrize("wire", list(MODELS))
def test_json_schema_output_reaches_the_upstream(served, wire):
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
        "additionalProperties": False,
    }
    response = client(served).responses.create(
        model=MODELS[wire],
        input="Name it",
        text={"format": {"type": "json_schema", "name": "title", "schema": schema}},
    )
    assert response.status == "completed"
    sent = upstream_requests(served, wire)[-1]["body"]
    if wire == "chat":
        assert sent["response_format"]["json_schema"]["schema"] == schema
    elif wire == "anthropic":
        assert sent["output_config"]["format"]["schema"] == schema
    else:
        assert sent["text"]["format"]["schema"] == schema


@pytest.mark.parametrize("wire", ["chat", "anthropic"])
def test_tools_the_upstream_cannot_run_are_dropped_and_named(served, wire):
    raw = client(served).responses.with_raw_response.create(
        model=MODELS[wire],
        input="Hello",
        tools=[{"type": "web_search"}, WRITE_FILE],
        tool_choice="auto",
    )
    assert raw.headers["x-tollgate-dropped-tools"] == "web_search"
    sent = upstream_requests(served, wire)[-1]["body"]
    assert len(sent["tools"]) == 1
    assert raw.parse().output


def test_a_required_tool_the_upstream_cannot_run_is_refused(served):
    with pytest.raises(openai.BadRequestError) as info:
        client(served).responses.create(
            model=MODELS["chat"],
            input="Hello",
            tools=[{"type": "web_search"}],
            tool_choice={"type": "web_search"},
        )
    assert "web_search" in info.value.message
    assert upstream_requests(served, "chat") == []


def test_previous_response_id_is_refused_with_what_to_do(served):
    for model in MODELS.values():
        with pytest.raises(openai.BadRequestError) as info:
            client(served).responses.create(
                model=model, input="Hello", previous_response_id="resp_123"
            )
        assert "input" in info.value.message
    assert served.fake.requests == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"api_key": "sk-tg-nope"}, openai.AuthenticationError),
        ({"model": "no-such-model"}, openai.NotFoundError),
        ({"model": "test-gpt-pro"}, openai.PermissionDeniedError),
        ({"input": 42}, openai.BadRequestError),
    ],
)
def test_errors_raise_the_sdk_exception_for_their_status(served, call, error):
    api = openai.OpenAI(
        base_url=served.openai_base,
        api_key=call.pop("api_key", served.secret),
        max_retries=0,
        timeout=20,
    )
    with pytest.raises(error) as info:
        api.responses.create(**{"model": MODELS["chat"], "input": "Hi", **call})
    assert info.value.body["message"]


@pytest.mark.parametrize("wire", list(MODELS))
def test_an_upstream_rate_limit_is_a_rate_limit_error(served, wire):
    upstream = model_of(served, wire).deployments.first().upstream_model
    served.fake.script(upstream, [{"status": 429, "headers": {"retry-after": "3"}}])
    with pytest.raises(openai.RateLimitError) as info:
        client(served).responses.create(model=MODELS[wire], input="Hi")
    assert info.value.response.headers["retry-after"] == "3"


def test_codex_session_header_groups_requests(served):
    api = client(served)
    for _ in range(2):
        api.responses.create(
            model=MODELS["chat"], input="Hi", extra_headers={"session-id": "codex-thread-1"}
        )
    served.drain()
    assert RequestLog.objects.filter(session_id="codex-thread-1").count() == 2
    api.responses.create(
        model=MODELS["chat"],
        input="Hi",
        extra_headers={"session-id": "codex-thread-1", "x-tollgate-session-id": "mine"},
    )
    served.drain()
    assert RequestLog.objects.filter(session_id="mine").count() == 1


def test_a_fallback_keeps_the_client_protocol(served):
    """The Responses provider fails; a Chat Completions deployment of the same model
    serves, and the client still gets a Responses object."""
    from gateway.models import Deployment

    Deployment.objects.create(
        model=served.native, provider=served.openai, upstream_model="gpt-5.5-backup", priority=1
    )
    served.fake.script("gpt-5.5", [{"status": 503}])
    raw = client(served).responses.with_raw_response.create(model=MODELS["responses"], input="Hi")
    response = raw.parse()
    assert response.object == "response" and response.output_text == "Echo: Hi"
    assert raw.headers["x-tollgate-attempted-count"] == "2"
    assert raw.headers["x-tollgate-provider"] == "fakeai"


def test_bad_input_items_are_a_400_in_openai_shape(served):
    response = httpx.post(
        f"{served.openai_base}/responses",
        headers={"authorization": f"Bearer {served.secret}"},
        json={"model": MODELS["chat"], "input": [{"type": "no_such_item"}]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"]


@pytest.mark.parametrize("wire", list(MODELS))
def test_an_upstream_failure_is_a_server_error(served, wire):
    upstream = model_of(served, wire).deployments.first().upstream_model
    served.fake.script(upstream, [{"status": 500}])
    with pytest.raises(openai.InternalServerError) as info:
        client(served).responses.create(model=MODELS[wire], input="Hi")
    # A Responses upstream's own 500 is relayed as it was; a translated one is a 502.
    assert info.value.status_code == (500 if wire == "responses" else 502)


def test_insufficient_credit_says_what_was_needed(served):
    from billing.models import EntryKind
    from billing.services import ledger_post

    ledger_post(
        organisation=served.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=-100 * 10**9,
        idempotency_key="test:drain",
    )
    with pytest.raises(openai.APIStatusError) as info:
        client(served).responses.create(model=MODELS["chat"], input="Hi")
    assert info.value.status_code == 402
    assert "may cost up to" in info.value.message
    assert served.fake.requests == []


def test_dropped_tools_are_those_of_the_deployment_that_served(served):
    """The Responses provider could run web_search; it fails, and the Chat deployment
    that serves cannot: the header names what the answer was made without."""
    from gateway.models import Deployment

    Deployment.objects.create(
        model=served.native, provider=served.openai, upstream_model="gpt-5.5-backup", priority=1
    )
    served.fake.script("gpt-5.5", [{"status": 503}])
    raw = client(served).responses.with_raw_response.create(
        model=MODELS["responses"], input="Hi", tools=[{"type": "web_search"}, WRITE_FILE]
    )
    assert raw.headers["x-tollgate-provider"] == "fakeai"
    assert raw.headers["x-tollgate-dropped-tools"] == "web_search"
