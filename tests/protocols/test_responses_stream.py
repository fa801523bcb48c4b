"""Responses streams: recorded Chat and Anthropic upstream streams fed through the
Responses routes in chunks of every size, every event validated with the openai SDK's
ResponseStreamEvent union, and the whole stream read by the SDK's own Responses
stream accumulator (which refuses unfinished items and lifecycle id changes)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.protocols.adapter import ChainedStream
from gateway.protocols.errors import GatewayError
from gateway.protocols.passthrough import ResponsesPassthroughStream
from gateway.protocols.reasoning_carrier import reasoning_details_from
from gateway.protocols.registry import route
from gateway.protocols.responses_stream import ChatToResponsesStream
from gateway.protocols.sse import SSEParser
from gateway.protocols.streams import AnthropicToOpenAIStream
from gateway.protocols.usage import Usage
from tests.protocols.test_protocols_streams import (
    ANTHROPIC_TOOL_TURN,
    MESSAGE_START,
    OPENAI_TOOL_TURN,
    chunk,
    split_points,
    sse,
)

EVENT = TypeAdapter(ResponseStreamEvent)
REQUEST: dict[str, Any] = {
    "model": "public",
    "input": "read it",
    "stream": True,
    "tools": [
        {"type": "function", "name": "read_file", "parameters": {"type": "object"}},
        {"type": "function", "name": "list_files", "parameters": {"type": "object"}},
    ],
}


class Hook:
    def __init__(self) -> None:
        self.calls: list[Usage] = []

    def __call__(self, usage: Usage) -> dict[str, Any]:
        self.calls.append(usage)
        return {"cost": 0.125, "is_byok": False}


def relay(adapter: Any, pieces: list[bytes]) -> bytes:
    parser, out = SSEParser(), []
    for piece in pieces:
        for event in parser.feed(piece):
            out += adapter.feed(event)
    for event in parser.flush():
        out += adapter.feed(event)
    out += adapter.finish()
    return b"".join(out)


def events_of(body: bytes) -> list[dict[str, Any]]:
    """Every event, checked: `event:` line equal to its type, numbered from 0 up."""
    events = []
    for number, event in enumerate(SSEParser().feed(body)):
        data = event.json()
        assert event.event == data["type"]
        assert data["sequence_number"] == number
        EVENT.validate_python(data)
        events.append(data)
    return events


def sdk_reads(body: bytes) -> Any:
    """The final response as the openai SDK's Responses stream state builds it."""
    client = openai.OpenAI(api_key="test", base_url="http://gateway.test/v1")
    response = httpx.Response(
        200,
        content=body,
        request=httpx.Request("POST", "http://gateway.test/v1/responses"),
        headers={"content-type": "text/event-stream"},
    )
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in openai.Stream(cast_to=ResponseStreamEvent, client=client, response=response):
        state.handle_event(event)
    return state._completed_response


def open_route(wire: str, hook: Hook | None = None, request: dict[str, Any] | None = None) -> Any:
    return route("responses", wire).stream(
        model="public", request_body=request or REQUEST, input_estimate=42, usage_hook=hook
    )


# --- Anthropic upstream, chained through the hub ------------------------------------
@pytest.mark.parametrize("pieces", split_points(ANTHROPIC_TOOL_TURN, b'th\\": \\"src/ma'))
def test_an_anthropic_tool_turn_reaches_a_responses_client(pieces: list[bytes]) -> None:
    hook = Hook()
    adapter = open_route("anthropic", hook)
    assert isinstance(adapter, ChainedStream)
    body = relay(adapter, pieces)
    events = events_of(body)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    response = sdk_reads(body)
    reasoning, message, call1, call2 = response.output
    assert reasoning.summary[0].text == "Let me check."
    (detail,) = reasoning_details_from(reasoning.encrypted_content, param="x")
    assert detail["signature"] == "EqQBCgIYAhIM" and detail["text"] == "Let me check."
    assert message.content[0].text == "I'll read it."
    assert (call1.call_id, call1.name, json.loads(call1.arguments)) == (
        "call_01T1x",
        "read_file",
        {"path": "src/main.py"},
    )
    assert (call2.name, call2.arguments) == ("list_files", "{}")
    # billing: the hook ran once, on the first adapter, with Anthropic's exact usage
    assert len(hook.calls) == 1 and adapter.usage is hook.calls[0]
    assert (adapter.usage.input_tokens, adapter.usage.cache_read_tokens) == (10, 3000)
    assert adapter.usage.cache_write_5m_tokens == 200 and adapter.usage.output_tokens == 89
    assert response.usage.input_tokens == 3210 and response.usage.output_tokens == 89
    assert response.usage.input_tokens_details.cached_tokens == 3000
    assert response.usage.model_extra["cost"] == 0.125
    assert adapter.done and adapter.emitted_content and adapter.error is None
    assert adapter.output_estimate > 0 and not adapter.usage_estimated


def test_the_chain_keeps_1h_cache_writes_for_billing() -> None:
    start = MESSAGE_START.replace(
        '"cache_creation_input_tokens": 200',
        '"cache_creation_input_tokens": 200, "cache_creation": {"ephemeral_5m_input_tokens": 50, '
        '"ephemeral_1h_input_tokens": 150}',
    )
    raw = ANTHROPIC_TOOL_TURN.replace(MESSAGE_START.encode(), start.encode())
    hook = Hook()
    adapter = open_route("anthropic", hook)
    relay(adapter, [raw])
    assert (hook.calls[0].cache_write_5m_tokens, hook.calls[0].cache_write_1h_tokens) == (50, 150)


def test_nothing_counts_as_content_before_the_first_delta() -> None:
    adapter = open_route("anthropic")
    parser = SSEParser()
    out = []
    for event in parser.feed(MESSAGE_START.encode() + sse("ping", {"type": "ping"}).encode()):
        out += adapter.feed(event)
    assert [e["type"] for e in events_of(b"".join(out))] == [
        "response.created",
        "response.in_progress",
    ]
    assert not adapter.emitted_content and not adapter.done


def test_an_anthropic_error_mid_stream_fails_the_response() -> None:
    raw = (
        MESSAGE_START
        + sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        + sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hel"},
            },
        )
        + sse(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
    ).encode()
    adapter = open_route("anthropic")
    events = events_of(relay(adapter, [raw]))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["error"]["message"] == "Overloaded"
    assert events[-1]["response"]["id"] == events[0]["response"]["id"]
    assert adapter.error is not None and adapter.error.status == 529 and adapter.done


def test_an_error_before_content_stays_retryable() -> None:
    raw = (
        MESSAGE_START
        + sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    ).encode()
    adapter = open_route("anthropic")
    relay(adapter, [raw])
    assert adapter.error is not None and not adapter.emitted_content


# --- OpenAI chat upstream ----------------------------------------------------------
@pytest.mark.parametrize("pieces", split_points(OPENAI_TOOL_TURN, b'th\\": \\"a.py'))
def test_a_chat_tool_turn_reaches_a_responses_client(pieces: list[bytes]) -> None:
    hook = Hook()
    adapter = open_route("openai", hook)
    assert isinstance(adapter, ChatToResponsesStream)
    body = relay(adapter, pieces)
    events_of(body)
    response = sdk_reads(body)
    reasoning, message, call1, call2 = response.output
    assert reasoning.summary[0].text == "Think first." and reasoning.encrypted_content is None
    assert message.content[0].text == "I'll read it."
    assert (call1.call_id, json.loads(call1.arguments)) == ("call_A1", {"path": "a.py"})
    assert (call2.call_id, call2.name, call2.arguments) == ("call_B2", "list_files", "{}")
    assert (
        response.usage.input_tokens == 1200
        and response.usage.input_tokens_details.cached_tokens == 1000
    )
    assert response.usage.output_tokens_details.reasoning_tokens == 10
    assert response.usage.model_extra["cost"] == 0.125
    assert len(hook.calls) == 1 and hook.calls[0] == Usage.from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 50,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 10},
        }
    )
    assert response.tools[0].name == "read_file"


def test_length_is_an_incomplete_response() -> None:
    raw = (
        chunk({"role": "assistant", "content": ""})
        + chunk({"content": "Cut"})
        + chunk({}, finish="length")
        + chunk(usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})
        + "data: [DONE]\n\n"
    ).encode()
    events = events_of(relay(open_route("openai"), [raw]))
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"


def test_a_refusal_streams_as_a_refusal_part() -> None:
    raw = (
        chunk({"role": "assistant", "content": "", "refusal": None})
        + chunk({"refusal": "I can't"})
        + chunk({"refusal": " help."})
        + chunk({}, finish="stop")
        + chunk(usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
        + "data: [DONE]\n\n"
    ).encode()
    body = relay(open_route("openai"), [raw])
    kinds = [e["type"] for e in events_of(body)]
    assert "response.refusal.delta" in kinds and "response.refusal.done" in kinds
    response = sdk_reads(body)
    assert response.output[0].content[0].refusal == "I can't help."


def test_without_usage_the_done_line_completes_with_an_estimate() -> None:
    raw = (
        chunk({"role": "assistant", "content": ""})
        + chunk({"content": "Hi"})
        + chunk({}, finish="stop")
        + "data: [DONE]\n\n"
    ).encode()
    hook = Hook()
    adapter = open_route("openai", hook)
    response = sdk_reads(relay(adapter, [raw]))
    assert (
        adapter.usage_estimated
        and adapter.usage.input_tokens == 42
        and adapter.usage.output_tokens == 1
    )
    assert response.usage.input_tokens == 42 and len(hook.calls) == 1


def test_a_chat_error_chunk_fails_the_response() -> None:
    raw = (
        chunk({"role": "assistant", "content": ""})
        + chunk({"content": "Hi"})
        + 'data: {"error": {"message": "boom", "type": "server_error", "code": null}}\n\n'
    ).encode()
    adapter = open_route("openai")
    events = events_of(relay(adapter, [raw]))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "boom" and events[-2]["error"]["message"] == "boom"
    assert adapter.error is not None and adapter.error.status == 500


def test_a_stream_cut_before_the_finish_is_an_error() -> None:
    raw = (chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hi"})).encode()
    adapter = open_route("openai")
    events = events_of(relay(adapter, [raw]))
    assert events[-1]["type"] == "response.failed" and adapter.error is not None


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_the_gateways_own_stream_error_continues_the_numbering(wire: str) -> None:
    raw = OPENAI_TOOL_TURN if wire == "openai" else ANTHROPIC_TOOL_TURN
    cut = raw.index(b"it.") + 10
    adapter = open_route(wire)
    parser, out = SSEParser(), []
    for event in parser.feed(raw[:cut]):
        out += adapter.feed(event)
    error = GatewayError(502, "The stream was cut.", code="upstream_stream_dropped")
    out.append(route("responses", wire).stream_error(error, "req_1", adapter))
    events = events_of(b"".join(out))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "upstream_stream_dropped"
    assert events[-1]["response"]["id"] == events[0]["response"]["id"]
    assert events[-1]["response"]["error"]["code"] == "server_error"


def test_a_stream_error_without_an_adapter_is_one_error_event() -> None:
    data = route("responses", "openai").stream_error(GatewayError(429, "slow"), "req_1")
    (event,) = events_of(data)
    assert event["type"] == "error" and event["message"] == "slow"


def test_interleaved_thinking_gives_one_reasoning_item_per_run() -> None:
    def details(sig: str) -> dict[str, Any]:
        return {
            "reasoning_details": [
                {
                    "type": "reasoning.text",
                    "text": "t",
                    "signature": sig,
                    "format": "anthropic-claude-v1",
                    "index": 0,
                }
            ]
        }

    raw = (
        chunk({"role": "assistant", "content": ""})
        + chunk({"reasoning_content": "t"})
        + chunk(details("s1"))
        + chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": "{}"},
                    }
                ]
            }
        )
        + chunk({"reasoning_content": "t"})
        + chunk(details("s2"))
        + chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": "{}"},
                    }
                ]
            }
        )
        + chunk({}, finish="tool_calls")
        + chunk(usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
        + "data: [DONE]\n\n"
    ).encode()
    response = sdk_reads(relay(open_route("openai"), [raw]))
    assert [o.type for o in response.output] == [
        "reasoning",
        "function_call",
        "reasoning",
        "function_call",
    ]
    assert len({o.id for o in response.output}) == 4


# --- Responses upstream, passed through --------------------------------------------
def responses_upstream(final: str = "response.completed") -> bytes:
    created = {
        "id": "resp_up",
        "object": "response",
        "created_at": 1,
        "model": "gpt-up",
        "status": "in_progress",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    item = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
    }
    usage = {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 55,
    }
    seq = iter(range(100))

    def ev(kind: str, **fields: Any) -> str:
        data = {"type": kind, "sequence_number": next(seq), **fields}
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

    done = {
        **created,
        "status": "completed" if final == "response.completed" else "failed",
        "output": [item],
        "usage": usage,
    }
    return (
        ev("response.created", response=created)
        + ev("response.in_progress", response=created)
        + ev(
            "response.output_item.added",
            output_index=0,
            item={**item, "status": "in_progress", "content": []},
        )
        + ev(
            "response.content_part.added",
            output_index=0,
            item_id="msg_1",
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": []},
        )
        + ev(
            "response.output_text.delta",
            output_index=0,
            item_id="msg_1",
            content_index=0,
            delta="Hi",
            logprobs=[],
        )
        + ev(
            "response.output_text.done",
            output_index=0,
            item_id="msg_1",
            content_index=0,
            text="Hi",
            logprobs=[],
        )
        + ev(
            "response.content_part.done",
            output_index=0,
            item_id="msg_1",
            content_index=0,
            part={"type": "output_text", "text": "Hi", "annotations": []},
        )
        + ev("response.output_item.done", output_index=0, item=item)
        + ev(final, response=done)
    ).encode()


def test_the_passthrough_relays_bytes_and_adds_cost_to_the_final_usage() -> None:
    raw = responses_upstream()
    hook = Hook()
    adapter = open_route("responses", hook)
    assert isinstance(adapter, ResponsesPassthroughStream)
    body = relay(adapter, [raw[:100], raw[100:]])
    got, sent = SSEParser().feed(body), SSEParser().feed(raw)
    assert [e.raw for e in got[2:-1]] == [e.raw for e in sent[2:-1]]  # item events untouched
    assert got[0].json()["response"]["model"] == "public"
    final = got[-1].json()["response"]
    assert final["model"] == "public" and final["usage"]["cost"] == 0.125
    assert final["usage"]["input_tokens"] == 50
    assert adapter.usage == Usage(
        input_tokens=30, output_tokens=5, cache_read_tokens=20, reasoning_tokens=2
    )
    assert (
        len(hook.calls) == 1 and adapter.done and adapter.emitted_content and adapter.error is None
    )
    assert sdk_reads(body).output_text == "Hi"


def test_the_passthrough_holds_the_preamble_and_sees_failures() -> None:
    raw = responses_upstream()
    events = SSEParser().feed(raw)
    adapter = open_route("responses")
    for event in events[:2]:
        adapter.feed(event)
    assert not adapter.emitted_content
    adapter = open_route("responses")
    failed = relay(adapter, [responses_upstream("response.failed")])
    assert adapter.error is not None and adapter.done
    assert SSEParser().feed(failed)[-1].event == "response.failed"
    adapter = open_route("responses")
    nested = {"type": "too_many_requests", "code": "rate_limit_exceeded", "message": "slow"}
    data = {"type": "error", "sequence_number": 2, "error": nested}
    error = f"event: error\ndata: {json.dumps(data)}\n\n".encode()
    relay(adapter, [b"".join(e.raw for e in events[:2]) + error])
    assert (
        adapter.error is not None
        and adapter.error.status == 429
        and adapter.error.message == "slow"
    )
    assert not adapter.emitted_content


def test_a_passthrough_stream_cut_short_is_an_error() -> None:
    raw = responses_upstream()
    events = SSEParser().feed(raw)
    adapter = open_route("responses")
    body = relay(adapter, [b"".join(e.raw for e in events[:5])])
    assert adapter.error is not None and not adapter.done
    tail = SSEParser().feed(body)[-2:]
    assert [e.event for e in tail] == ["error", "response.failed"]
    assert tail[-1].json()["response"]["id"] == "resp_up"
    assert tail[0].json()["sequence_number"] == 5


def test_chat_to_responses_alone_with_an_anthropic_first_stage() -> None:
    first = AnthropicToOpenAIStream(model="m", include_usage=True)
    chained = ChainedStream(first, ChatToResponsesStream(model="m"))
    relay(chained, [ANTHROPIC_TOOL_TURN])
    assert chained.done and chained.usage is first.usage and chained.sequence_number > 10
