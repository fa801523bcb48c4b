"""Translated streams: recorded upstream event sequences are fed through SSEParser in
chunks of every size (including cuts in the middle of a tool call's JSON), and the
bytes produced are read back by the official `openai` / `anthropic` SDKs, exactly as
a client would read them."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic._types import NOT_GIVEN
from anthropic.lib.streaming import MessageStream
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from gateway.protocols.sse import SSEParser
from gateway.protocols.streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from gateway.protocols.usage import Usage


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def block_delta(index: int, delta: dict[str, Any]) -> str:
    return sse(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


MESSAGE_START = sse(
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_01ABC",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-5-20250929",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 200,
                "cache_read_input_tokens": 3000,
                "output_tokens": 1,
            },
        },
    },
)

# Recorded from an Anthropic tool-use turn with thinking (signature shortened).
ANTHROPIC_TOOL_TURN = "".join(
    [
        MESSAGE_START,
        sse("ping", {"type": "ping"}),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        block_delta(0, {"type": "thinking_delta", "thinking": "Let me"}),
        block_delta(0, {"type": "thinking_delta", "thinking": " check."}),
        block_delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        block_delta(1, {"type": "text_delta", "text": "I'll read "}),
        block_delta(1, {"type": "text_delta", "text": "it."}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ": keep-alive\n\n",
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_01T1x",
                    "name": "read_file",
                    "input": {},
                },
            },
        ),
        block_delta(2, {"type": "input_json_delta", "partial_json": ""}),
        block_delta(2, {"type": "input_json_delta", "partial_json": '{"pa'}),
        block_delta(2, {"type": "input_json_delta", "partial_json": 'th": "src/ma'}),
        block_delta(2, {"type": "input_json_delta", "partial_json": 'in.py"}'}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 2}),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 3,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_01T2y",
                    "name": "list_files",
                    "input": {},
                },
            },
        ),
        block_delta(3, {"type": "input_json_delta", "partial_json": ""}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 3}),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 89},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
).encode()


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
) -> str:
    data: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-5",
        "choices": [],
    }
    if delta is not None:
        data["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    data["usage"] = usage
    return f"data: {json.dumps(data)}\n\n"


def tool_delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


OPENAI_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 50,
    "total_tokens": 1250,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "completion_tokens_details": {"reasoning_tokens": 10},
}
# Recorded from an OpenAI-compatible upstream (reasoning_content as vLLM/DeepSeek send it).
OPENAI_TOOL_TURN = "".join(
    [
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"reasoning_content": "Think"}),
        chunk({"reasoning_content": " first."}),
        chunk({"content": "I'll read "}),
        chunk({"content": "it."}),
        chunk(
            tool_delta(
                0, id="call_A1", type="function", function={"name": "read_file", "arguments": ""}
            )
        ),
        chunk(tool_delta(0, function={"arguments": '{"pa'})),
        chunk(tool_delta(0, function={"arguments": 'th": "a.py"}'})),
        chunk(
            tool_delta(
                1, id="call_B2", type="function", function={"name": "list_files", "arguments": "{}"}
            )
        ),
        chunk({}, finish="tool_calls"),
        chunk(usage=OPENAI_USAGE),
        "data: [DONE]\n\n",
    ]
).encode()


def split_points(raw: bytes, marker: bytes) -> list[list[bytes]]:
    """The stream cut every way that matters: byte by byte, in odd sizes, whole, and
    exactly inside `marker` (the middle of a JSON argument)."""
    cut = raw.index(marker) + len(marker) // 2
    ways = [[raw[:cut], raw[cut:]], [raw]]
    for size in (1, 7, 64):
        ways.append([raw[i : i + size] for i in range(0, len(raw), size)])
    return ways


def relay(stream: Any, pieces: list[bytes]) -> bytes:
    parser, out = SSEParser(), []
    for piece in pieces:
        for event in parser.feed(piece):
            out += stream.feed(event)
    for event in parser.flush():
        out += stream.feed(event)
    out += stream.finish()
    return b"".join(out)


def http_response(body: bytes, url: str) -> httpx.Response:
    return httpx.Response(
        200,
        content=body,
        request=httpx.Request("POST", url),
        headers={"content-type": "text/event-stream"},
    )


def openai_client_reads(body: bytes) -> tuple[Any, list[ChatCompletionChunk]]:
    """What the openai SDK makes of the bytes: the accumulated completion and chunks."""
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
    return state.get_final_completion(), chunks


def anthropic_client_reads(body: bytes) -> Any:
    client = anthropic.Anthropic(api_key="test", base_url="http://gateway.test")
    raw = anthropic.Stream(
        cast_to=RawMessageStreamEvent,
        client=client,
        response=http_response(body, "http://gateway.test/v1/messages"),
    )
    return MessageStream(raw, NOT_GIVEN).get_final_message()


def events_of(body: bytes) -> list[tuple[str | None, Any]]:
    return [(e.event, e.json() if e.data != "[DONE]" else e.data) for e in SSEParser().feed(body)]


# --- Anthropic upstream -> OpenAI client --------------------------------------------
@pytest.mark.parametrize("pieces", split_points(ANTHROPIC_TOOL_TURN, b'th\\": \\"src/ma'))
def test_an_openai_client_reads_an_anthropic_tool_turn(pieces: list[bytes]) -> None:
    hooked: list[Usage] = []

    def hook(usage: Usage) -> dict[str, Any]:
        hooked.append(usage)
        return {"cost": 0.0123}

    stream = AnthropicToOpenAIStream(model="claude-sonnet-4.5", include_usage=True, usage_hook=hook)
    body = relay(stream, pieces)
    completion, chunks = openai_client_reads(body)
    message = completion.choices[0].message
    assert message.content == "I'll read it."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_01T1x", "read_file", '{"path": "src/main.py"}'),
        ("call_01T2y", "list_files", "{}"),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.id == "chatcmpl-01ABC"
    # Roo Code reads the last chunk that has usage, with top-level cache counts.
    usage = json.loads(body.split(b"data: ")[-2])["usage"]
    assert usage["prompt_tokens"] == 3210 and usage["completion_tokens"] == 89
    # Anthropic's cache writes reach OpenAI clients in their own field too.
    assert usage["prompt_tokens_details"] == {"cached_tokens": 3000, "cache_write_tokens": 200}
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (3000, 200)
    assert usage["cost"] == 0.0123
    assert len(hooked) == 1 and hooked[0].output_tokens == 89
    deltas = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Let me check."
    details = [d["reasoning_details"] for d in deltas if "reasoning_details" in d]
    assert details == [
        [
            {
                "type": "reasoning.text",
                "text": "Let me check.",
                "signature": "EqQBCgIYAhIM",
                "format": "anthropic-claude-v1",
                "index": 0,
            }
        ]
    ]
    assert body.endswith(b"data: [DONE]\n\n")
    assert b"ping" not in body and b"keep-alive" not in body
    assert stream.done and stream.error is None and stream.emitted_content


def test_each_tool_call_first_chunk_carries_index_id_and_name() -> None:
    body = relay(AnthropicToOpenAIStream(model="m", include_usage=False), [ANTHROPIC_TOOL_TURN])
    firsts: dict[int, dict[str, Any]] = {}
    for _, data in events_of(body):
        if data == "[DONE]" or not data.get("choices"):
            continue
        for call in data["choices"][0]["delta"].get("tool_calls") or []:
            firsts.setdefault(call["index"], call)
    assert [(i, c["id"], c["function"]["name"]) for i, c in sorted(firsts.items())] == [
        (0, "call_01T1x", "read_file"),
        (1, "call_01T2y", "list_files"),
    ]


def test_without_include_usage_there_is_no_usage_chunk_but_the_hook_still_runs() -> None:
    calls = []
    stream = AnthropicToOpenAIStream(
        model="m", include_usage=False, usage_hook=lambda u: calls.append(u) or {}
    )
    body = relay(stream, [ANTHROPIC_TOOL_TURN])
    assert b'"usage"' not in body
    assert len(calls) == 1 and stream.usage.cache_read_tokens == 3000


def test_a_mid_stream_anthropic_error_reaches_the_openai_client_as_an_error() -> None:
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
        + block_delta(0, {"type": "text_delta", "text": "Hel"})
        + sse(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
    ).encode()
    stream = AnthropicToOpenAIStream(model="m", include_usage=True)
    body = relay(stream, [raw[i : i + 5] for i in range(0, len(raw), 5)])
    with pytest.raises(openai.APIError, match="Overloaded"):
        openai_client_reads(body)
    assert stream.error is not None
    assert (stream.error.status, stream.error.type) == (529, "overloaded_error")
    assert stream.emitted_content and stream.done
    assert b"[DONE]" not in body


def test_an_error_before_any_content_leaves_the_stream_retryable() -> None:
    raw = (
        MESSAGE_START
        + sse("ping", {"type": "ping"})
        + sse("error", {"type": "error", "error": {"type": "api_error", "message": "Internal"}})
    ).encode()
    stream = AnthropicToOpenAIStream(model="m", include_usage=True)
    relay(stream, [raw])
    assert stream.error is not None and stream.error.status == 500
    assert not stream.emitted_content


def test_an_anthropic_stream_cut_short_is_an_error_not_a_silent_end() -> None:
    raw = ANTHROPIC_TOOL_TURN[: ANTHROPIC_TOOL_TURN.index(b"event: message_delta")]
    stream = AnthropicToOpenAIStream(model="m", include_usage=True)
    body = relay(stream, [raw])
    assert stream.error is not None
    with pytest.raises(openai.APIError):
        openai_client_reads(body)


# --- OpenAI upstream -> Anthropic client --------------------------------------------
def check_anthropic_event_order(body: bytes) -> None:
    names = [name for name, _ in events_of(body)]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_delta") == 1
    open_index, expected = None, 0
    for name, data in events_of(body):
        if name == "content_block_start":
            assert open_index is None and data["index"] == expected
            open_index = data["index"]
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index, expected = None, expected + 1
    assert open_index is None


@pytest.mark.parametrize("pieces", split_points(OPENAI_TOOL_TURN, b'th\\": \\"a.py'))
def test_an_anthropic_client_reads_an_openai_tool_turn(pieces: list[bytes]) -> None:
    hooked: list[Usage] = []
    stream = OpenAIToAnthropicStream(
        model="gpt-5",
        input_tokens_estimate=1234,
        usage_hook=lambda u: hooked.append(u) or {"cost": 1.5},
    )
    body = relay(stream, pieces)
    check_anthropic_event_order(body)
    message = anthropic_client_reads(body)
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "Think first."
    assert message.content[1].text == "I'll read it."
    assert [(b.id, b.name, b.input) for b in message.content[2:]] == [
        ("toolu_A1", "read_file", {"path": "a.py"}),
        ("toolu_B2", "list_files", {}),
    ]
    assert message.stop_reason == "tool_use" and message.id == "msg_abc"
    start = events_of(body)[0][1]["message"]["usage"]
    assert start["input_tokens"] == 1234  # the best count known then, never a silent 0
    final = events_of(body)[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["input_tokens"] == 200
    assert final["usage"]["cache_read_input_tokens"] == 1000
    assert final["usage"]["output_tokens"] == 50 and final["usage"]["cost"] == 1.5
    assert message.usage.output_tokens == 50
    assert len(hooked) == 1 and hooked[0].cache_read_tokens == 1000
    assert stream.done and stream.error is None and stream.emitted_content


def test_the_stop_reason_waits_for_the_usage_chunk() -> None:
    stream = OpenAIToAnthropicStream(model="m", input_tokens_estimate=5)
    parser = SSEParser()
    fed = []
    for event in parser.feed((chunk({"content": "hi"}) + chunk({}, finish="stop")).encode()):
        fed += stream.feed(event)
    assert b"message_delta" not in b"".join(fed)
    (usage_event,) = parser.feed(chunk(usage=OPENAI_USAGE).encode())
    last = b"".join(stream.feed(usage_event))
    assert b'"stop_reason":"end_turn"' in last and b"message_stop" in last


def test_without_a_usage_chunk_done_still_closes_the_message_with_an_estimate() -> None:
    raw = (
        chunk({"content": "a"})
        + chunk({"content": "b"})
        + chunk({}, finish="length")
        + "data: [DONE]\n\n"
    ).encode()
    stream = OpenAIToAnthropicStream(model="m", input_tokens_estimate=77)
    message = anthropic_client_reads(relay(stream, [raw]))
    assert message.stop_reason == "max_tokens"
    assert stream.usage_estimated
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (77, 2)


def test_a_mid_stream_openai_error_reaches_the_anthropic_client_as_an_error_event() -> None:
    raw = (
        chunk({"role": "assistant", "content": "Hel"})
        + 'data: {"error": {"message": "Rate limit reached", "type": "rate_limit_error",'
        ' "code": "rate_limit_exceeded"}}\n\n'
    ).encode()
    stream = OpenAIToAnthropicStream(model="m", input_tokens_estimate=5)
    body = relay(stream, [raw[i : i + 9] for i in range(0, len(raw), 9)])
    assert events_of(body)[-1] == (
        "error",
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}},
    )
    with pytest.raises(anthropic.APIStatusError, match="Rate limit reached"):
        anthropic_client_reads(body)
    assert stream.error is not None and stream.error.status == 429
    assert stream.emitted_content


def test_an_openai_stream_cut_short_is_an_error() -> None:
    stream = OpenAIToAnthropicStream(model="m", input_tokens_estimate=5)
    body = relay(stream, [chunk({"content": "partial"}).encode()])
    assert events_of(body)[-1][0] == "error"
    assert stream.error is not None


def test_usage_in_the_first_chunk_is_used_for_message_start() -> None:
    raw = (
        chunk({"content": "x"}, usage={"prompt_tokens": 42, "completion_tokens": 0})
        + chunk({}, finish="stop", usage={"prompt_tokens": 42, "completion_tokens": 1})
        + "data: [DONE]\n\n"
    ).encode()
    body = relay(OpenAIToAnthropicStream(model="m", input_tokens_estimate=5), [raw])
    assert events_of(body)[0][1]["message"]["usage"]["input_tokens"] == 42
    assert anthropic_client_reads(body).usage.output_tokens == 1
