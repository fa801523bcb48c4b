"""Property tests (hypothesis) for the Responses routes: any valid Responses request
reaches Chat and Anthropic without losing text, tool calls (name, call id, arguments)
or tool outputs; Chat and Anthropic answers, whole or streamed, reach a Responses
client with their text and tool calls intact."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response

from gateway.protocols.ids import tool_id_to_anthropic, tool_id_to_openai
from gateway.protocols.registry import route
from gateway.protocols.responses_api import responses_from_anthropic, responses_from_chat
from gateway.protocols.responses_request import chat_request_from_responses
from gateway.protocols.sse import SSEParser
from tests.protocols.test_responses_stream import relay, sdk_reads

ARGS = {"upstream_model": "claude-sonnet-4-5", "max_output_tokens": 4096}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30
).filter(lambda s: s.strip() != "")
names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_-]{0,20}", fullmatch=True)
call_ids = st.from_regex(r"call_[A-Za-z0-9]{1,24}", fullmatch=True) | st.from_regex(
    r"[a-z]{1,4}[A-Za-z0-9_.:-]{0,20}", fullmatch=True
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4)
BUILT_IN = [
    {"type": "web_search"},
    {"type": "file_search", "vector_store_ids": []},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "namespace", "name": "ns", "description": "d", "tools": []},
]


@st.composite
def conversations(draw: Any) -> dict[str, Any]:
    """A valid Responses request: user turns, assistant turns with function calls
    each answered right after, and function tools defining every name used."""
    items: list[dict[str, Any]] = []
    used_names: set[str] = set()
    seen_ids: set[str] = set()
    for _ in range(draw(st.integers(1, 3))):
        items.append(
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": draw(words)}],
            }
        )
        if not draw(st.booleans()):
            continue
        if draw(st.booleans()):
            items.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": draw(words), "annotations": []}],
                }
            )
        calls = []
        for _ in range(draw(st.integers(1, 3))):
            call_id = draw(call_ids.filter(lambda c: c not in seen_ids))
            seen_ids.add(call_id)
            name = draw(names)
            used_names.add(name)
            args = json.dumps(draw(arguments))
            calls.append(call_id)
            items.append(
                {"type": "function_call", "call_id": call_id, "name": name, "arguments": args}
            )
        for call_id in calls:
            items.append(
                {"type": "function_call_output", "call_id": call_id, "output": draw(words)}
            )
    tools = [
        {"type": "function", "name": n, "parameters": {"type": "object"}}
        for n in sorted(used_names)
    ]
    tools += draw(st.lists(st.sampled_from(BUILT_IN), max_size=2))
    body: dict[str, Any] = {"model": "m", "input": items, "tools": tools}
    if draw(st.booleans()):
        body["instructions"] = draw(words)
    return body


def of_type(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [i for i in items if i["type"] == kind]


def user_texts(items: list[dict[str, Any]], role: str) -> list[str]:
    return [p["text"] for i in of_type(items, "message") if i["role"] == role for p in i["content"]]


@FAST
@given(conversations())
def test_any_responses_request_reaches_chat_intact(body: dict[str, Any]) -> None:
    chat, dropped = chat_request_from_responses(body)
    messages = chat["messages"]
    items = body["input"]
    texts = [p["text"] for m in messages if m["role"] == "user" for p in m["content"]]
    assert texts == user_texts(items, "user")
    assistant_text = []
    for m in messages:
        if m["role"] == "assistant" and m["content"]:
            content = m["content"]
            assistant_text += (
                [content] if isinstance(content, str) else [p["text"] for p in content]
            )
    assert assistant_text == user_texts(items, "assistant")
    calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (i["call_id"], i["name"], i["arguments"]) for i in of_type(items, "function_call")
    ]
    outputs = [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"]
    assert outputs == [(i["call_id"], i["output"]) for i in of_type(items, "function_call_output")]
    assert len(dropped) == len(body["tools"]) - len(chat.get("tools") or [])
    if "instructions" in body:
        assert messages[0] == {"role": "system", "content": body["instructions"]}
    route("responses", "openai").request(body, **ARGS)  # and the wire body builds


@FAST
@given(conversations())
def test_any_responses_request_reaches_anthropic_intact(body: dict[str, Any]) -> None:
    out = route("responses", "anthropic").request(body, **ARGS).body
    blocks = [(m["role"], b) for m in out["messages"] for b in m["content"]]
    items = body["input"]
    assert [b["text"] for r, b in blocks if r == "user" and b["type"] == "text"] == user_texts(
        items, "user"
    )
    assert [b["text"] for r, b in blocks if r == "assistant" and b["type"] == "text"] == user_texts(
        items, "assistant"
    )
    uses = [b for _, b in blocks if b["type"] == "tool_use"]
    calls = of_type(items, "function_call")
    assert [(tool_id_to_openai(b["id"]), b["name"], b["input"]) for b in uses] == [
        (c["call_id"], c["name"], json.loads(c["arguments"])) for c in calls
    ]
    results = [b for _, b in blocks if b["type"] == "tool_result"]
    assert [(b["tool_use_id"], b["content"]) for b in results] == [
        (tool_id_to_anthropic(o["call_id"]), o["output"])
        for o in of_type(items, "function_call_output")
    ]
    if "instructions" in body:
        assert out["system"][0]["text"] == body["instructions"]


tool_calls = st.lists(
    st.tuples(st.from_regex(r"call_[A-Za-z0-9]{1,20}", fullmatch=True), names, arguments),
    max_size=3,
    unique_by=lambda t: t[0],
)


@FAST
@given(st.one_of(st.none(), words), tool_calls, st.sampled_from(["stop", "tool_calls", "length"]))
def test_chat_answers_reach_responses_intact(
    text: str | None, calls: list[Any], finish: str
) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in calls
        ]
    data = {
        "id": "chatcmpl-x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    response = Response.model_validate(responses_from_chat(data, model="m"))
    assert response.output_text == (text or "")
    got = [
        (o.call_id, o.name, json.loads(o.arguments))
        for o in response.output
        if o.type == "function_call"
    ]
    assert got == [(i, n, a) for i, n, a in calls]
    assert response.status == ("incomplete" if finish == "length" else "completed")


anthropic_ids = st.from_regex(r"(toolu_|srvtoolu_)?[A-Za-z0-9_-]{1,24}", fullmatch=True)


@st.composite
def anthropic_contents(draw: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if draw(st.booleans()):
        blocks.append({"type": "thinking", "thinking": draw(words), "signature": draw(names)})
    for text in draw(st.lists(words, max_size=2)):
        blocks.append({"type": "text", "text": text})
    ids = draw(st.lists(anthropic_ids, max_size=3, unique=True))
    for tool_id in ids:
        blocks.append(
            {"type": "tool_use", "id": tool_id, "name": draw(names), "input": draw(arguments)}
        )
    return blocks


@FAST
@given(anthropic_contents())
def test_anthropic_answers_reach_responses_intact(blocks: list[dict[str, Any]]) -> None:
    message = {
        "id": "msg_1",
        "content": blocks,
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    response = Response.model_validate(responses_from_anthropic(message, model="m"))
    assert response.output_text == "".join(b["text"] for b in blocks if b["type"] == "text")
    got = [
        (o.call_id, o.name, json.loads(o.arguments))
        for o in response.output
        if o.type == "function_call"
    ]
    assert got == [
        (tool_id_to_openai(b["id"]), b["name"], b["input"])
        for b in blocks
        if b["type"] == "tool_use"
    ]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def anthropic_stream(blocks: list[dict[str, Any]], cut: int) -> bytes:
    """The Anthropic SSE stream of a message with these blocks, text and JSON cut in
    pieces of `cut` characters."""
    out = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {"id": "msg_p", "usage": {"input_tokens": 5, "output_tokens": 1}},
            },
        )
    ]
    for index, block in enumerate(blocks):
        kind = block["type"]
        start = (
            {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            if kind == "tool_use"
            else {"type": kind, kind: ""}
        )
        if kind == "thinking":
            start["signature"] = ""
        out.append(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        payload = json.dumps(block["input"]) if kind == "tool_use" else block[kind]
        for i in range(0, len(payload), cut):
            piece = payload[i : i + cut]
            delta = {
                "tool_use": {"type": "input_json_delta", "partial_json": piece},
                "text": {"type": "text_delta", "text": piece},
                "thinking": {"type": "thinking_delta", "thinking": piece},
            }[kind]
            out.append(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        if kind == "thinking":
            out.append(
                _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": block["signature"]},
                    },
                )
            )
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 7},
            },
        )
    )
    out.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(out)


@FAST
@given(anthropic_contents(), st.integers(1, 9), st.integers(1, 50))
def test_anthropic_streams_reach_responses_intact(
    blocks: list[dict[str, Any]], cut: int, size: int
) -> None:
    raw = anthropic_stream(blocks, cut)
    adapter = route("responses", "anthropic").stream(
        model="m", request_body={"model": "m", "input": "x"}, input_estimate=1, usage_hook=None
    )
    body = relay(adapter, [raw[i : i + size] for i in range(0, len(raw), size)])
    response = sdk_reads(body)
    texts = [b["text"] for b in blocks if b["type"] == "text"]
    assert response.output_text == "".join(texts)
    got = [
        (o.call_id, o.name, json.loads(o.arguments))
        for o in response.output
        if o.type == "function_call"
    ]
    assert got == [
        (tool_id_to_openai(b["id"]), b["name"], b["input"])
        for b in blocks
        if b["type"] == "tool_use"
    ]
    numbers = [e.json()["sequence_number"] for e in SSEParser().feed(body)]
    assert numbers == list(range(len(numbers)))
    thinking = [b for b in blocks if b["type"] == "thinking"]
    reasoning = [o for o in response.output if o.type == "reasoning"]
    assert [r.summary[0].text for r in reasoning] == [b["thinking"] for b in thinking]
    if thinking and got:
        # the next turn (the tool results) sends the signed thinking back, first in the
        # assistant turn, as Anthropic requires mid tool loop
        items = [
            {"role": "user", "content": "x"},
            *[
                o.model_dump(exclude_none=True, exclude={"parsed_arguments"})
                for o in response.output
            ],
        ]
        items += [
            {"type": "function_call_output", "call_id": o.call_id, "output": "ok"}
            for o in response.output
            if o.type == "function_call"
        ]
        tools = [{"type": "function", "name": b["name"]} for b in blocks if b["type"] == "tool_use"]
        out = (
            route("responses", "anthropic")
            .request({"model": "m", "input": items, "tools": tools}, **ARGS)
            .body
        )
        assert out["messages"][1]["role"] == "assistant"
        first = out["messages"][1]["content"][0]
        assert first == {
            "type": "thinking",
            "thinking": thinking[0]["thinking"],
            "signature": thinking[0]["signature"],
        }
