"""The route registry: each (client, wire) pair gives exactly what the gateway did
before the registry existed (the 2x2 of Chat Completions and Anthropic Messages),
and the Responses rows chain through the Chat hub."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.protocols import registry
from gateway.protocols import requests as translate_request
from gateway.protocols import responses as translate_response
from gateway.protocols.errors import GatewayError
from gateway.protocols.passthrough import AnthropicPassthroughStream, OpenAIPassthroughStream
from gateway.protocols.registry import Prepared, route, wire_for
from gateway.protocols.sse import SSEParser
from gateway.protocols.streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from gateway.protocols.tokens import estimate_tokens_anthropic
from gateway.protocols.usage import Usage
from tests.protocols.test_protocols_streams import ANTHROPIC_TOOL_TURN, OPENAI_TOOL_TURN

ARGS = {"upstream_model": "up-model", "max_output_tokens": 8192}
OPENAI_BODY: dict[str, Any] = {
    "model": "public",
    "stream": True,
    "stream_options": {"include_usage": True},
    "max_tokens": -1,
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {}}]},
    ],
}
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "public",
    "max_tokens": 100,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "hi"}],
}
OPENAI_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "up-model",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 5,
        "total_tokens": 125,
        "prompt_tokens_details": {"cached_tokens": 100},
    },
}
ANTHROPIC_RESPONSE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "up-model",
    "content": [{"type": "text", "text": "Hi."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "output_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
    },
}


def old_attempt_once(client: str, wire: str, data: dict[str, Any], extra: dict[str, Any]) -> Any:
    """gateway/attempts.py attempt_once before the registry, after parsing JSON."""
    data = copy.deepcopy(data)
    if wire == "anthropic":
        usage = Usage.from_anthropic(data.get("usage"))
    else:
        usage = Usage.from_openai(data.get("usage"))
    if client == wire:
        data["model"] = "public"
    elif client == "openai":
        data = translate_response.openai_response_from_anthropic(data, model="public")
    else:
        data = translate_response.anthropic_response_from_openai(data, model="public")
    shape = usage.to_anthropic() if client == "anthropic" else usage.to_openai()
    if client == wire:  # same protocol: the upstream's usage as written wins
        shape = {**shape, **data["usage"]}
    data["usage"] = {**shape, **extra}
    return usage, data


# --- the 2x2, unchanged ------------------------------------------------------------
@pytest.mark.parametrize(
    ("client", "wire", "body", "fn"),
    [
        ("openai", "openai", OPENAI_BODY, translate_request.openai_request_prepare),
        ("openai", "anthropic", OPENAI_BODY, translate_request.anthropic_request_from_openai),
        ("anthropic", "anthropic", ANTHROPIC_BODY, translate_request.anthropic_request_prepare),
        ("anthropic", "openai", ANTHROPIC_BODY, translate_request.openai_request_from_anthropic),
    ],
)
def test_the_2x2_requests_are_the_existing_translations(
    client: str, wire: str, body: dict[str, Any], fn: Any
) -> None:
    before = copy.deepcopy(body)
    prepared = route(client, wire).request(body, **ARGS)
    assert prepared == Prepared(fn(body, **ARGS))
    assert prepared.dropped_tools == ()
    assert json.dumps(prepared.body) == json.dumps(fn(body, **ARGS))  # same key order too
    assert body == before


@pytest.mark.parametrize(
    ("client", "wire", "data"),
    [
        ("openai", "openai", OPENAI_RESPONSE),
        ("openai", "anthropic", ANTHROPIC_RESPONSE),
        ("anthropic", "anthropic", ANTHROPIC_RESPONSE),
        ("anthropic", "openai", OPENAI_RESPONSE),
    ],
)
def test_the_2x2_responses_are_byte_identical(
    client: str, wire: str, data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(translate_response.time, "time", lambda: 1700000000)
    extra = {"cost": 0.00123, "is_byok": False}
    expected_usage, expected = old_attempt_once(client, wire, data, extra)
    r = route(client, wire)
    usage = r.usage(copy.deepcopy(data))
    assert usage == expected_usage
    got = r.response(copy.deepcopy(data), model="public", usage=usage, usage_extra=extra)
    assert json.dumps(got) == json.dumps(expected)


def feed_all(adapter: registry.StreamAdapter, raw: bytes) -> bytes:
    parser, out = SSEParser(), []
    for event in parser.feed(raw):
        out += adapter.feed(event)
    out += adapter.finish()
    return b"".join(out)


@pytest.mark.parametrize(
    ("client", "wire", "body", "cls", "raw", "old"),
    [
        (
            "openai",
            "openai",
            OPENAI_BODY,
            OpenAIPassthroughStream,
            OPENAI_TOOL_TURN,
            # Pass-through streams get the public model: their chunks name it, as
            # non-streamed answers do.
            lambda hook: OpenAIPassthroughStream(
                include_usage=True, input_tokens_estimate=42, usage_hook=hook, model="public"
            ),
        ),
        (
            "openai",
            "anthropic",
            OPENAI_BODY,
            AnthropicToOpenAIStream,
            ANTHROPIC_TOOL_TURN,
            lambda hook: AnthropicToOpenAIStream(
                model="public", include_usage=True, usage_hook=hook, created=1
            ),
        ),
        (
            "anthropic",
            "anthropic",
            ANTHROPIC_BODY,
            AnthropicPassthroughStream,
            ANTHROPIC_TOOL_TURN,
            lambda hook: AnthropicPassthroughStream(usage_hook=hook, model="public"),
        ),
        (
            "anthropic",
            "openai",
            ANTHROPIC_BODY,
            OpenAIToAnthropicStream,
            OPENAI_TOOL_TURN,
            lambda hook: OpenAIToAnthropicStream(
                model="public",
                input_tokens_estimate=estimate_tokens_anthropic(ANTHROPIC_BODY),
                usage_hook=hook,
            ),
        ),
    ],
)
def test_the_2x2_streams_are_the_existing_adapters(
    client: str, wire: str, body: dict[str, Any], cls: type, raw: bytes, old: Any
) -> None:
    calls: list[Usage] = []

    def hook(usage: Usage) -> dict[str, Any]:
        calls.append(usage)
        return {"cost": 0.5}

    adapter = route(client, wire).stream(
        model="public", request_body=body, input_estimate=42, usage_hook=hook
    )
    assert isinstance(adapter, cls)
    if isinstance(adapter, AnthropicToOpenAIStream):
        adapter._created = 1
    got = feed_all(adapter, raw)
    assert got == feed_all(old(hook), raw)
    assert adapter.done and adapter.emitted_content and adapter.error is None
    assert adapter.usage_estimated is False
    assert adapter.usage == calls[0] and len(calls) == 2  # once per adapter
    assert adapter.output_estimate > 0


def test_the_chat_client_without_include_usage_gets_no_usage_chunk() -> None:
    body = {**OPENAI_BODY, "stream_options": None}
    adapter = route("openai", "anthropic").stream(
        model="public", request_body=body, input_estimate=1, usage_hook=None
    )
    out = feed_all(adapter, ANTHROPIC_TOOL_TURN)
    assert b'"choices":[],"usage"' not in out


def test_every_adapter_has_a_usage_before_any_event() -> None:
    for r in registry.routes():
        body = ANTHROPIC_BODY if r.client == "anthropic" else OPENAI_BODY
        if r.client == "responses":
            body = {"model": "m", "input": "hi", "stream": True}
        adapter = r.stream(model="m", request_body=body, input_estimate=3, usage_hook=None)
        assert isinstance(adapter.usage, Usage), r
        assert adapter.done is False and adapter.error is None and not adapter.emitted_content
        assert isinstance(adapter.usage_estimated, bool)


# --- errors ------------------------------------------------------------------------
ERROR = GatewayError(429, "Slow down.", code="upstream_rate_limited", type="rate_limit_error")


def test_error_bodies_are_in_the_clients_shape() -> None:
    assert route("openai", "anthropic").error_body(ERROR, "req_1") == ERROR.openai_body()
    assert route("anthropic", "openai").error_body(ERROR, "req_1") == ERROR.anthropic_body("req_1")
    (event,) = SSEParser().feed(route("anthropic", "openai").stream_error(ERROR, "req_1"))
    assert event.event == "error" and event.json() == ERROR.anthropic_body("req_1")
    chat = route("openai", "openai").stream_error(ERROR, "req_1")
    assert chat.startswith(b"data: ") and json.loads(chat[6:]) == ERROR.openai_body()


def test_529_is_503_for_the_openai_protocols() -> None:
    overloaded = GatewayError(529, "busy")
    assert route("anthropic", "anthropic").client_status(overloaded) == 529
    assert route("openai", "anthropic").client_status(overloaded) == 503


# --- choosing a wire ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("client", "wires", "expected"),
    [
        ("openai", ["openai"], "openai"),
        ("openai", ["anthropic"], "anthropic"),
        ("openai", ["anthropic", "openai"], "openai"),
        ("openai", ["responses"], None),
        ("openai", [], None),
        ("anthropic", ["openai", "anthropic"], "anthropic"),
        ("anthropic", ["openai"], "openai"),
        ("anthropic", ["responses"], None),
        ("anthropic", ["responses", "openai"], "openai"),
        ("responses", ["responses", "openai", "anthropic"], "responses"),
        ("responses", ["anthropic", "openai"], "openai"),
        ("responses", ["anthropic"], "anthropic"),
        ("responses", ["responses"], "responses"),
        ("responses", [], None),
        ("gemini", ["openai"], None),
    ],
)
def test_wire_for(client: str, wires: list[str], expected: str | None) -> None:
    assert wire_for(client, wires) == expected
    if expected is not None:
        assert route(client, expected).wire == expected


def test_every_client_and_wire_pair_is_served_except_over_a_responses_only_wire() -> None:
    served = {(r.client, r.wire) for r in registry.routes()}
    expected = {(c, w) for c in registry.CLIENT_PROTOCOLS for w in registry.WIRES}
    assert served == expected - {("openai", "responses"), ("anthropic", "responses")}


def test_responses_clients_get_openai_error_shapes() -> None:
    r = route("responses", "anthropic")
    assert r.error_body(ERROR, "req_1") == ERROR.openai_body()
    assert r.client_status(GatewayError(529, "busy")) == 503


def test_unknown_pairs_are_a_key_error() -> None:
    with pytest.raises(KeyError):
        route("openai", "responses")
    with pytest.raises(KeyError):
        route("gemini", "openai")


def test_names() -> None:
    assert registry.CLIENT_PROTOCOLS == ("openai", "anthropic", "responses")
    assert registry.WIRES == ("openai", "anthropic", "responses")
