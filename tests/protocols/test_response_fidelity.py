"""What reaches the client is what the upstream said: same-protocol answers keep every
upstream field (only `model` is the public id, streamed or not, and `usage.cost` is
added, written as an exact decimal); refusals and paused turns keep their meaning
across protocols; Anthropic's server-tool counts reach OpenAI-protocol clients.

Fixtures are vendor-shaped, written from the API references (anthropic 2.12 `Message`,
`RefusalStopDetails`, `Usage`; openai 3.54 `ChatCompletion`, `CompletionUsage`,
`Response`)."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from typing import Any

import anthropic.types
import httpx
import openai.types.chat
import openai.types.responses
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from gateway.asgi_io import json_dumps
from gateway.protocols.adapter import ChainedStream
from gateway.protocols.json_text import exact_cost, json_text
from gateway.protocols.passthrough import (
    AnthropicPassthroughStream,
    OpenAIPassthroughStream,
    ResponsesPassthroughStream,
)
from gateway.protocols.registry import route
from gateway.protocols.responses import (
    anthropic_response_from_openai,
    openai_response_from_anthropic,
)
from gateway.protocols.responses_api import responses_from_anthropic
from gateway.protocols.responses_stream import ChatToResponsesStream
from gateway.protocols.sse import SSEParser
from gateway.protocols.streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from gateway.protocols.usage import Usage
from tests.protocols.test_protocols_streams import (
    anthropic_client_reads,
    block_delta,
    chunk,
    http_response,
    relay,
    sse,
)

COST = 33_000 / 1e9  # what the usage hook gives: nano-dollars / 1e9, a float
EXTRA = {"cost": COST}

ANTHROPIC_USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 300,
    "cache_read_input_tokens": 4000,
    "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
    "output_tokens": 80,
    "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1},
    "service_tier": "standard",
    "inference_geo": "us",
}
ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_01Fid",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Found it."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "stop_details": None,
    "container": {"id": "container_01", "expires_at": "2026-01-01T00:00:00Z"},
    "context_management": {"applied_edits": []},
    "usage": ANTHROPIC_USAGE,
}
OPENAI_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 50,
    "total_tokens": 1250,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0, "cache_write_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
OPENAI_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-Fid",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-5.5-2026-01-01",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi.", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": OPENAI_USAGE,
    "service_tier": "default",
    "system_fingerprint": "fp_abc",
}
RESPONSES_USAGE = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 30,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 930,
}
RESPONSES_BODY: dict[str, Any] = {
    "id": "resp_Fid",
    "object": "response",
    "created_at": 1700000000,
    "status": "completed",
    "model": "gpt-5.5-2026-01-01",
    "output": [],
    "service_tier": "priority",
    "usage": RESPONSES_USAGE,
}
UPSTREAM = {
    "openai": OPENAI_COMPLETION,
    "anthropic": ANTHROPIC_MESSAGE,
    "responses": RESPONSES_BODY,
}


def answer(client: str, wire: str, data: dict[str, Any]) -> dict[str, Any]:
    r = route(client, wire)
    body = copy.deepcopy(data)
    return r.response(body, model="public", usage=r.usage(body), usage_extra=dict(EXTRA))


def chunks_of(raw: bytes) -> list[Any]:
    return [e.json() for e in SSEParser().feed(raw) if e.data != "[DONE]"]


def openai_client_reads(body: bytes) -> tuple[Any, list[Any]]:
    """The openai SDK's accumulated snapshot of a stream, and its chunks. (Its final
    completion raises on `length` and `content_filter`, by design: those answers are
    not complete.)"""
    client = openai.OpenAI(api_key="test", base_url="http://gateway.test/v1")
    stream = openai.Stream(
        cast_to=ChatCompletionChunk,
        client=client,
        response=http_response(body, "http://gateway.test/v1/chat"),
    )
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    chunks = []
    for item in stream:
        chunks.append(item)
        list(state.handle_chunk(item))
    return state.current_completion_snapshot, chunks


# --- 1. same protocol: every upstream field kept ---------------------------------------
@pytest.mark.parametrize("protocol", ["openai", "anthropic", "responses"])
def test_a_same_protocol_answer_is_the_upstreams_but_model_and_cost(protocol: str) -> None:
    upstream = UPSTREAM[protocol]
    out = answer(protocol, protocol, upstream)
    assert out["model"] == "public"
    assert {k: v for k, v in out.items() if k not in ("model", "usage")} == {
        k: v for k, v in upstream.items() if k not in ("model", "usage")
    }
    # Every upstream usage field as written (zeros stay zeros, nothing becomes null),
    # plus the gateway's cost.
    usage = out["usage"]
    assert {k: usage[k] for k in upstream["usage"]} == upstream["usage"]
    assert usage["cost"] == COST


def test_anthropic_usage_details_reach_anthropic_clients() -> None:
    out = answer("anthropic", "anthropic", ANTHROPIC_MESSAGE)
    message = anthropic.types.Message.model_validate(out)
    assert message.usage.service_tier == "standard" and message.usage.inference_geo == "us"
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_fetch_requests == 1
    assert out["container"] == ANTHROPIC_MESSAGE["container"]


def test_openai_usage_details_reach_openai_clients() -> None:
    out = answer("openai", "openai", OPENAI_COMPLETION)
    completion = openai.types.chat.ChatCompletion.model_validate(out)
    assert completion.usage is not None and completion.usage.completion_tokens_details
    assert completion.usage.completion_tokens_details.accepted_prediction_tokens == 0
    assert out["usage"]["prompt_tokens_details"]["cache_write_tokens"] == 0
    assert out["service_tier"] == "default" and out["system_fingerprint"] == "fp_abc"


# --- 1. the model is the public id, streamed or not ------------------------------------
OPENAI_STREAM = (
    'data: {"id":"chatcmpl-Fid","object":"chat.completion.chunk","created":1,'
    '"model":"gpt-5.5-2026-01-01","service_tier":"default","system_fingerprint":"fp_abc",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    '"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-Fid","object":"chat.completion.chunk","created":1,'
    '"model":"gpt-5.5-2026-01-01","service_tier":"default","system_fingerprint":"fp_abc",'
    '"choices":[{"index":0,"delta":{"content":"say \\"model\\":\\"gpt-5.5-2026-01-01\\""},'
    '"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-Fid","object":"chat.completion.chunk","created":1,'
    '"model": "gpt-5.5-2026-01-01","choices":[{"index":0,"delta":{},'
    '"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-Fid","object":"chat.completion.chunk","created":1,'
    '"model":"gpt-5.5-2026-01-01","service_tier":"default","system_fingerprint":"fp_abc",'
    '"choices":[],"usage":' + json.dumps(OPENAI_USAGE) + "}\n\n"
    "data: [DONE]\n\n"
).encode()


def test_an_openai_stream_names_the_public_model_in_every_chunk() -> None:
    adapter = route("openai", "openai").stream(
        model="public",
        request_body={"stream_options": {"include_usage": True}},
        input_estimate=1,
        usage_hook=lambda usage: dict(EXTRA),
    )
    out = relay(adapter, [OPENAI_STREAM])
    got, sent = chunks_of(out), chunks_of(OPENAI_STREAM)
    assert [c["model"] for c in got] == ["public"] * 4
    # Nothing else changed: not the content that quotes the model, not the other
    # fields, and the usage is the upstream's (every detail) with the cost.
    assert [{**c, "model": 0, "usage": 0} for c in got] == [
        {**c, "model": 0, "usage": 0} for c in sent
    ]
    assert got[1]["choices"][0]["delta"]["content"] == 'say "model":"gpt-5.5-2026-01-01"'
    assert got[-1]["usage"] == {**answer("openai", "openai", OPENAI_COMPLETION)["usage"]}
    assert b'"cost":0.000033' in out


def test_streamed_and_non_streamed_answers_show_the_same_model() -> None:
    start = {**ANTHROPIC_MESSAGE, "content": [], "stop_reason": None}
    raw = (
        sse("message_start", {"type": "message_start", "message": start})
        + sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}})
        + sse("message_stop", {"type": "message_stop"})
    ).encode()
    streamed = chunks_of(relay(AnthropicPassthroughStream(model="public"), [raw]))
    assert streamed[0]["message"] == {**start, "model": "public"}
    assert answer("anthropic", "anthropic", ANTHROPIC_MESSAGE)["model"] == "public"
    responses = ResponsesPassthroughStream(model="public")
    event = {"type": "response.completed", "response": RESPONSES_BODY, "sequence_number": 0}
    done = chunks_of(relay(responses, [sse("response.completed", event).encode()]))
    assert done[0]["response"]["model"] == answer("responses", "responses", RESPONSES_BODY)["model"]


def test_a_stream_already_naming_the_public_model_is_relayed_untouched() -> None:
    raw = chunk({"content": "hi"}).replace('"gpt-5"', '"public"').encode()
    stream = OpenAIPassthroughStream(include_usage=False, input_tokens_estimate=1, model="public")
    assert relay(stream, [raw]).startswith(raw)


# --- 1. usage.cost written exactly -----------------------------------------------------
def test_the_cost_is_written_with_exactly_its_nano_dollar_digits() -> None:
    assert json_dumps({"usage": {"cost": COST}}) == b'{"usage":{"cost":0.000033}}'
    assert json_dumps({"usage": {"cost": 1 / 1e9}}) == b'{"usage":{"cost":0.000000001}}'
    assert json_dumps({"usage": {"cost": 12_345_678_901 / 1e9}}) == (
        b'{"usage":{"cost":12.345678901}}'
    )
    assert json_dumps({"usage": {"cost": 0.0}}) == b'{"usage":{"cost":0}}'
    assert json_text({"response": {"usage": {"cost": COST}}}) == (
        '{"response":{"usage":{"cost":0.000033}}}'
    )
    assert exact_cost(COST) == Decimal("0.000033")
    # Decimals anywhere are raw numbers; other floats and strings are untouched.
    assert json_dumps([Decimal("1E+1"), Decimal("0.5"), 3.3e-05]) == b"[10,0.5,3.3e-05]"
    assert json_dumps({"note": "\x1etollgate-number-0"}) == b'{"note":"\\u001etollgate-number-0"}'
    assert json.loads(json_dumps({"usage": {"cost": COST}}))["usage"]["cost"] == COST


def test_a_non_streamed_answer_carries_the_exact_cost_on_every_route() -> None:
    for r in (
        route(client, wire)
        for client, wire in [
            ("openai", "openai"),
            ("openai", "anthropic"),
            ("anthropic", "anthropic"),
            ("anthropic", "openai"),
            ("responses", "responses"),
            ("responses", "openai"),
            ("responses", "anthropic"),
        ]
    ):
        out = answer(r.client, r.wire, UPSTREAM[r.wire])
        assert b'"cost":0.000033' in json_dumps(out), (r.client, r.wire)


def test_every_stream_writes_the_exact_cost() -> None:
    hook = lambda usage: dict(EXTRA)  # noqa: E731
    anthropic_raw = (
        sse("message_start", {"type": "message_start", "message": ANTHROPIC_MESSAGE})
        + sse(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
        )
        + sse("message_stop", {"type": "message_stop"})
    ).encode()
    openai_raw = (
        chunk({"content": "hi"})
        + chunk({}, "stop")
        + chunk(usage=OPENAI_USAGE)
        + "data: [DONE]\n\n"
    ).encode()
    event = {"type": "response.completed", "response": RESPONSES_BODY, "sequence_number": 0}
    cases: list[tuple[Any, bytes]] = [
        (AnthropicPassthroughStream(usage_hook=hook), anthropic_raw),
        (AnthropicToOpenAIStream(model="m", include_usage=True, usage_hook=hook), anthropic_raw),
        (
            OpenAIPassthroughStream(include_usage=True, input_tokens_estimate=1, usage_hook=hook),
            openai_raw,
        ),
        (OpenAIToAnthropicStream(model="m", input_tokens_estimate=1, usage_hook=hook), openai_raw),
        (ChatToResponsesStream(model="m", usage_hook=hook), openai_raw),
        (
            ChainedStream(
                AnthropicToOpenAIStream(model="m", include_usage=True, usage_hook=hook),
                ChatToResponsesStream(model="m"),
            ),
            anthropic_raw,
        ),
        (ResponsesPassthroughStream(usage_hook=hook), sse("response.completed", event).encode()),
    ]
    for adapter, raw in cases:
        out = relay(adapter, [raw])
        assert b'"cost":0.000033' in out and b"e-05" not in out, type(adapter).__name__


# --- 2. refusals -----------------------------------------------------------------------
REFUSAL_DETAILS = {
    "type": "refusal",
    "category": "cyber",
    "explanation": "This request could enable malware development.",
}
ANTHROPIC_REFUSAL = {
    **ANTHROPIC_MESSAGE,
    "content": [{"type": "text", "text": "Here is how"}],
    "stop_reason": "refusal",
    "stop_details": REFUSAL_DETAILS,
}
OPENAI_REFUSAL = {
    **OPENAI_COMPLETION,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
}


def test_an_anthropic_refusal_is_an_openai_refusal_with_the_explanation() -> None:
    out = openai_response_from_anthropic(ANTHROPIC_REFUSAL, model="m")
    completion = openai.types.chat.ChatCompletion.model_validate(out)
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.refusal == REFUSAL_DETAILS["explanation"]
    assert choice.message.content == "Here is how"  # what came before the refusal
    assert out["choices"][0]["native_finish_reason"] == "refusal"


def test_an_anthropic_refusal_without_explanation_names_its_category() -> None:
    details = {**REFUSAL_DETAILS, "explanation": None}
    out = openai_response_from_anthropic({**ANTHROPIC_REFUSAL, "stop_details": details}, model="m")
    assert "cyber" in out["choices"][0]["message"]["refusal"]
    bare = openai_response_from_anthropic({**ANTHROPIC_REFUSAL, "stop_details": None}, model="m")
    assert bare["choices"][0]["message"]["refusal"]


def test_an_openai_refusal_is_an_anthropic_refusal() -> None:
    out = anthropic_response_from_openai(OPENAI_REFUSAL, model="m")
    message = anthropic.types.Message.model_validate(out)
    assert message.stop_reason == "refusal"
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", "I can't help with that.")
    ]
    assert message.stop_details is not None
    assert message.stop_details.explanation == "I can't help with that."


def test_an_anthropic_refusal_is_a_refusal_part_for_responses_clients() -> None:
    out = responses_from_anthropic(ANTHROPIC_REFUSAL, model="m")
    response = openai.types.responses.Response.model_validate(out)
    parts = [p for item in response.output if item.type == "message" for p in item.content]
    assert [p.type for p in parts] == ["output_text", "refusal"]
    assert parts[1].refusal == REFUSAL_DETAILS["explanation"]  # type: ignore[union-attr]
    assert response.status == "incomplete"
    assert response.incomplete_details and response.incomplete_details.reason == "content_filter"


def anthropic_refusal_stream() -> bytes:
    start = {**ANTHROPIC_MESSAGE, "content": [], "stop_reason": None, "stop_details": None}
    return (
        sse("message_start", {"type": "message_start", "message": start})
        + sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        + block_delta(0, {"type": "text_delta", "text": "Here is how"})
        + sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        + sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "refusal",
                    "stop_sequence": None,
                    "stop_details": REFUSAL_DETAILS,
                },
                "usage": {"output_tokens": 3},
            },
        )
        + sse("message_stop", {"type": "message_stop"})
    ).encode()


def test_a_streamed_anthropic_refusal_is_a_refusal_delta() -> None:
    stream = AnthropicToOpenAIStream(model="m", include_usage=True)
    completion, chunks = openai_client_reads(relay(stream, [anthropic_refusal_stream()]))
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.refusal == REFUSAL_DETAILS["explanation"]
    assert choice.message.content == "Here is how"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish[0].choices[0].model_extra["native_finish_reason"] == "refusal"


def test_a_streamed_anthropic_refusal_is_a_refusal_part_for_responses_clients() -> None:
    stream = ChainedStream(
        AnthropicToOpenAIStream(model="m", include_usage=True), ChatToResponsesStream(model="m")
    )
    events = chunks_of(relay(stream, [anthropic_refusal_stream()]))
    final = openai.types.responses.Response.model_validate(events[-1]["response"])
    parts = [p for item in final.output if item.type == "message" for p in item.content]
    assert [p.type for p in parts] == ["output_text", "refusal"]
    assert any(e["type"] == "response.refusal.delta" for e in events)
    assert final.status == "incomplete"


def test_a_streamed_openai_refusal_is_an_anthropic_refusal() -> None:
    raw = (
        chunk({"role": "assistant", "content": "", "refusal": None})
        + chunk({"refusal": "I can't"})
        + chunk({"refusal": " help with that."})
        + chunk({}, "stop")
        + chunk(usage=OPENAI_USAGE)
        + "data: [DONE]\n\n"
    ).encode()
    stream = OpenAIToAnthropicStream(model="m", input_tokens_estimate=1)
    message = anthropic_client_reads(relay(stream, [raw]))
    assert message.stop_reason == "refusal"
    assert [b.text for b in message.content] == ["I can't help with that."]
    delta = [
        e
        for e in chunks_of(
            relay(OpenAIToAnthropicStream(model="m", input_tokens_estimate=1), [raw])
        )
        if e["type"] == "message_delta"
    ]
    assert delta[0]["delta"]["stop_details"] == {
        "type": "refusal",
        "category": None,
        "explanation": "I can't help with that.",
    }


# --- 3. pause_turn ---------------------------------------------------------------------
def test_a_paused_turn_is_not_a_finished_answer() -> None:
    paused = {**ANTHROPIC_MESSAGE, "stop_reason": "pause_turn"}
    choice = openai_response_from_anthropic(paused, model="m")["choices"][0]
    assert (choice["finish_reason"], choice["native_finish_reason"]) == ("length", "pause_turn")
    response = responses_from_anthropic(paused, model="m")
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    raw = (
        sse("message_start", {"type": "message_start", "message": {**paused, "content": []}})
        + sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "pause_turn"}})
        + sse("message_stop", {"type": "message_stop"})
    ).encode()
    completion, _ = openai_client_reads(
        relay(AnthropicToOpenAIStream(model="m", include_usage=True), [raw])
    )
    assert completion.choices[0].finish_reason == "length"


# --- 4. server_tool_use reaches OpenAI-protocol clients --------------------------------
@pytest.mark.parametrize("client", ["openai", "responses"])
def test_anthropic_server_tool_counts_reach_openai_protocol_clients(client: str) -> None:
    out = answer(client, "anthropic", ANTHROPIC_MESSAGE)
    assert out["usage"]["server_tool_use"] == ANTHROPIC_USAGE["server_tool_use"]
    assert out["usage"]["cost"] == COST


def test_streamed_server_tool_counts_reach_openai_protocol_clients() -> None:
    raw = (
        sse(
            "message_start",
            {"type": "message_start", "message": {**ANTHROPIC_MESSAGE, "content": []}},
        )
        + sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": ANTHROPIC_USAGE,
            },
        )
        + sse("message_stop", {"type": "message_stop"})
    ).encode()
    usage = chunks_of(relay(AnthropicToOpenAIStream(model="m", include_usage=True), [raw]))[-1][
        "usage"
    ]
    assert usage["server_tool_use"] == ANTHROPIC_USAGE["server_tool_use"]
    assert Usage.from_openai(usage).prompt_tokens == 4312
    chained = ChainedStream(
        AnthropicToOpenAIStream(model="m", include_usage=True), ChatToResponsesStream(model="m")
    )
    final = chunks_of(relay(chained, [raw]))[-1]["response"]
    assert final["usage"]["server_tool_use"] == ANTHROPIC_USAGE["server_tool_use"]


# --- live: the fake upstream through the running gateway -------------------------------
def sse_json(text: str) -> list[Any]:
    return [e.json() for e in SSEParser().feed(text.encode()) if e.data != "[DONE]"]


@pytest.mark.django_db(transaction=True)
def test_live_same_protocol_answers_show_one_model_and_the_upstreams_usage(world) -> None:
    chat = {"model": "test-gpt-5.5", "messages": [{"role": "user", "content": "hello there"}]}
    message = {
        "model": "claude-test-4.6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello there"}],
    }
    headers = {"authorization": f"Bearer {world.secret}", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=world.url, headers=headers, timeout=20) as http:
        plain = http.post("/v1/chat/completions", json=chat)
        streamed = http.post(
            "/v1/chat/completions",
            json={**chat, "stream": True, "stream_options": {"include_usage": True}},
        )
        plain_message = http.post("/v1/messages", json=message)
        streamed_message = http.post("/v1/messages", json={**message, "stream": True})
    # OpenAI: the upstream says gpt-5.5; the client asked for test-gpt-5.5, both ways.
    chunks = sse_json(streamed.text)
    assert plain.json()["model"] == "test-gpt-5.5"
    assert {c["model"] for c in chunks} == {"test-gpt-5.5"}
    assert plain.json()["service_tier"] == chunks[0]["service_tier"] == "default"
    usage = plain.json()["usage"]
    assert set(usage) >= set(chunks[-1]["usage"]) - {"cost"}
    assert re.search(rb'"cost":(0|[1-9][0-9]*)(\.[0-9]{1,9})?[,}]', plain.content)
    # Anthropic: the usage's service_tier, and the same model streamed or not.
    events = sse_json(streamed_message.text)
    assert plain_message.json()["model"] == "claude-test-4.6"
    assert events[0]["message"]["model"] == "claude-test-4.6"
    assert plain_message.json()["usage"]["service_tier"] == "standard"
    assert events[0]["message"]["usage"]["service_tier"] == "standard"
