"""Which translation serves which client protocol over which upstream wire.

Client protocols and wires share three names: "openai" (Chat Completions),
"anthropic" (Messages) and "responses" (OpenAI Responses). Chat Completions is the
hub: every translation goes to or from it, so adding a protocol adds two
translators, not one per other protocol. A `Route` bundles what the gateway needs
to serve one client protocol over one wire: the request body, the non-streaming
answer, the upstream's usage, the stream adapter and the error shapes.

    route(client, wire)      the Route (KeyError for a pair that is not served)
    wire_for(client, wires)  which of a provider's wires serves a client best

Pure: no I/O, no Django.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gateway.protocols import requests as translate_request
from gateway.protocols import responses as translate_response
from gateway.protocols import responses_api, responses_events, responses_request, responses_stream
from gateway.protocols import streams as translate_stream
from gateway.protocols.adapter import ChainedStream, Prepared, StreamAdapter, UsageHook
from gateway.protocols.errors import GatewayError
from gateway.protocols.passthrough import (
    AnthropicPassthroughStream,
    OpenAIPassthroughStream,
    ResponsesPassthroughStream,
)
from gateway.protocols.request_common import TranslationError, openai_model_accepts_reasoning
from gateway.protocols.request_openai import server_tools_split
from gateway.protocols.sse import sse_encode
from gateway.protocols.tokens import estimate_tokens_anthropic
from gateway.protocols.usage import Usage

__all__ = [
    "CLIENT_PROTOCOLS",
    "WIRES",
    "Prepared",
    "Route",
    "StreamAdapter",
    "UsageHook",
    "route",
    "routes",
    "wire_for",
]

CLIENT_PROTOCOLS = ("openai", "anthropic", "responses")
WIRES = ("openai", "anthropic", "responses")

RequestFn = Callable[[dict[str, Any], str, int], Prepared]
ResponseFn = Callable[[dict[str, Any], str, dict[str, Any] | None], dict[str, Any]]
StreamFn = Callable[[str, dict[str, Any], int, UsageHook | None], StreamAdapter]


@dataclass(frozen=True, slots=True)
class Route:
    """How one client protocol is served over one upstream wire."""

    client: str
    wire: str
    _request: RequestFn
    _response: ResponseFn
    _stream: StreamFn

    def request(
        self, body: dict[str, Any], *, upstream_model: str, max_output_tokens: int
    ) -> Prepared:
        """The client's body for this wire (raises TranslationError, a 400)."""
        return self._request(body, upstream_model, max_output_tokens)

    def response(
        self,
        data: dict[str, Any],
        *,
        model: str,
        usage: Usage,
        usage_extra: dict[str, Any],
        request_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An upstream non-streaming body as the client's body, its usage in the
        client's shape (from `usage`) with `usage_extra` (e.g. {"cost": ...}) added.

        `request_body` is the client's original body: a Responses object echoes the
        request's settings (instructions, tools, tool_choice, text, reasoning...);
        without it they get OpenAI's defaults."""
        out = self._response(data, model, request_body)
        shape = usage_shape(self.client, usage)
        upstream = data.get("usage")
        if self.client == self.wire and isinstance(upstream, dict):
            # Same protocol: the upstream's usage exactly as written (server_tool_use,
            # service_tier, cache_creation, *_tokens_details...), as its streams relay
            # it; the normalised shape only fills in what it lacks.
            shape = {**shape, **upstream}
        elif self.wire == "anthropic":
            tools = translate_response.server_tool_use_of(upstream)
            if tools is not None:
                shape["server_tool_use"] = tools  # what was billed per call, as written
        out["usage"] = {**shape, **usage_extra}
        return out

    def usage(self, data: dict[str, Any]) -> Usage:
        """The usage of an upstream non-streaming body of this wire."""
        return usage_of(self.wire, data)

    def stream(
        self,
        *,
        model: str,
        request_body: dict[str, Any],
        input_estimate: int,
        usage_hook: UsageHook | None,
    ) -> StreamAdapter:
        """The adapter for an upstream stream; `request_body` is the client's
        original body, `model` the public model name shown to the client."""
        return self._stream(model, request_body, input_estimate, usage_hook)

    def error_body(self, error: GatewayError, request_id: str) -> dict[str, Any]:
        """The client's error body for an HTTP error answer."""
        return error_body(self.client, error, request_id)

    def stream_error(
        self, error: GatewayError, request_id: str, adapter: StreamAdapter | None = None
    ) -> bytes:
        """The SSE bytes of an error that ends a stream already under way. Pass the
        stream's adapter when there is one (a Responses stream numbers its events)."""
        return stream_error(self.client, error, request_id, adapter)

    def client_status(self, error: GatewayError) -> int:
        """The HTTP status to answer: 529 (overloaded) is Anthropic's own; the
        OpenAI protocols' SDKs know 503."""
        if error.status == 529 and self.client != "anthropic":
            return 503
        return error.status


# --- shapes by protocol ------------------------------------------------------------
def usage_of(wire: str, data: dict[str, Any]) -> Usage:
    usage = data.get("usage")
    if wire == "anthropic":
        return Usage.from_anthropic(usage)
    if wire == "responses":
        return Usage.from_responses(usage, data.get("output"), data.get("service_tier"))
    return Usage.from_openai(usage, data.get("service_tier"))


def usage_shape(client: str, usage: Usage) -> dict[str, Any]:
    if client == "anthropic":
        return usage.to_anthropic()
    if client == "responses":
        return usage.to_responses()
    return usage.to_openai()


def error_body(client: str, error: GatewayError, request_id: str) -> dict[str, Any]:
    if error.upstream_body is not None and error.upstream_wire == client:
        return error.upstream_body  # the upstream's own words (secrets masked)
    if client == "anthropic":
        return error.anthropic_body(request_id)
    return error.openai_body()


def stream_error(
    client: str, error: GatewayError, request_id: str, adapter: StreamAdapter | None = None
) -> bytes:
    if client == "anthropic":
        return sse_encode(error.anthropic_body(request_id), "error")
    if client == "responses":
        return responses_events.responses_stream_error(error, adapter)
    return sse_encode(error.openai_body())


# --- the rows ----------------------------------------------------------------------
def _prepared(
    fn: Callable[..., dict[str, Any]],
) -> RequestFn:
    def request(body: dict[str, Any], upstream_model: str, max_output_tokens: int) -> Prepared:
        return Prepared(
            fn(body, upstream_model=upstream_model, max_output_tokens=max_output_tokens)
        )

    return request


def _same_protocol_response(
    data: dict[str, Any], model: str, request: dict[str, Any] | None
) -> dict[str, Any]:
    """The upstream's body with every field as written (top-level `service_tier`,
    `container`, `context_management`, `system_fingerprint`...) but `model`, which
    is the public id the client asked for, as in every stream (docs/protocols.md)."""
    del request
    out = dict(data)
    out["model"] = model
    return out


def _openai_from_anthropic(
    data: dict[str, Any], model: str, request: dict[str, Any] | None
) -> dict[str, Any]:
    del request
    return translate_response.openai_response_from_anthropic(data, model=model)


def _anthropic_from_openai(
    data: dict[str, Any], model: str, request: dict[str, Any] | None
) -> dict[str, Any]:
    del request
    return translate_response.anthropic_response_from_openai(data, model=model)


def _responses_from_chat(
    data: dict[str, Any], model: str, request: dict[str, Any] | None
) -> dict[str, Any]:
    return responses_api.responses_from_chat(data, model=model, request=request)


def _responses_from_anthropic(
    data: dict[str, Any], model: str, request: dict[str, Any] | None
) -> dict[str, Any]:
    return responses_api.responses_from_anthropic(data, model=model, request=request)


def _anthropic_for_openai(
    body: dict[str, Any], upstream_model: str, max_output_tokens: int
) -> Prepared:
    """Anthropic's server tools (web search, code execution...) cannot run behind an
    OpenAI-protocol upstream: they are left out and named, unless required."""
    kept, dropped = server_tools_split(body)
    out = translate_request.openai_request_from_anthropic(
        kept, upstream_model=upstream_model, max_output_tokens=max_output_tokens
    )
    return Prepared(out, dropped)


# --- Responses requests through the hub ----------------------------------------------
_CHAT_PARAM_TO_RESPONSES = {
    "max_completion_tokens": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "tools": "tools",
    "tool_choice": "tool_choice",
    "messages": "input",
}


def _responses_param(param: str | None, sources: list[str]) -> str | None:
    """A chat translator's `param` in the Responses client's terms."""
    if not param:
        return param
    match = re.match(r"messages\[(\d+)\]", param)
    if match:
        index = int(match.group(1))
        return sources[index] if index < len(sources) else "input"
    head = re.split(r"[.\[]", param, maxsplit=1)[0]
    return _CHAT_PARAM_TO_RESPONSES.get(head, param)


def _via_chat(
    translate: Callable[..., dict[str, Any]],
) -> RequestFn:
    def request(body: dict[str, Any], upstream_model: str, max_output_tokens: int) -> Prepared:
        chat, dropped, sources = responses_request.chat_request_with_sources(body)
        try:
            out = translate(
                chat, upstream_model=upstream_model, max_output_tokens=max_output_tokens
            )
        except TranslationError as error:
            raise TranslationError(
                error.message, param=_responses_param(error.param, sources)
            ) from None
        return Prepared(out, dropped)

    return request


def _chat_for_openai(
    chat: dict[str, Any], *, upstream_model: str, max_output_tokens: int
) -> dict[str, Any]:
    """The hub's chat body for an OpenAI chat upstream. Responses clients send
    `reasoning` whatever the model (Codex does), and OpenAI's non-reasoning models
    refuse `reasoning_effort`: it is left out for them, as for Anthropic clients."""
    out = translate_request.openai_request_prepare(
        chat, upstream_model=upstream_model, max_output_tokens=max_output_tokens
    )
    if "reasoning_effort" in out and not openai_model_accepts_reasoning(upstream_model):
        del out["reasoning_effort"]
    return out


def _responses_passthrough(
    body: dict[str, Any], upstream_model: str, max_output_tokens: int
) -> Prepared:
    return responses_request.responses_request_prepare(
        body, upstream_model=upstream_model, max_output_tokens=max_output_tokens
    )


def _include_usage(body: dict[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


def _stream_openai_openai(
    model: str, body: dict[str, Any], input_estimate: int, hook: UsageHook | None
) -> StreamAdapter:
    return OpenAIPassthroughStream(
        include_usage=_include_usage(body),
        input_tokens_estimate=input_estimate,
        usage_hook=hook,
        model=model,
    )


def _stream_openai_anthropic(
    model: str, body: dict[str, Any], input_estimate: int, hook: UsageHook | None
) -> StreamAdapter:
    del input_estimate
    return translate_stream.AnthropicToOpenAIStream(
        model=model, include_usage=_include_usage(body), usage_hook=hook
    )


def _stream_anthropic_anthropic(
    model: str, body: dict[str, Any], input_estimate: int, hook: UsageHook | None
) -> StreamAdapter:
    del body, input_estimate
    return AnthropicPassthroughStream(usage_hook=hook, model=model)


def _stream_anthropic_openai(
    model: str, body: dict[str, Any], input_estimate: int, hook: UsageHook | None
) -> StreamAdapter:
    del input_estimate
    # message_start must carry the best known input count before the upstream says.
    return translate_stream.OpenAIToAnthropicStream(
        model=model,
        input_tokens_estimate=estimate_tokens_anthropic(body),
        usage_hook=hook,
    )


def _stream_responses_openai(
    model: str, body: dict[str, Any], input_estimate: int, hook: UsageHook | None
) -> StreamAdapter:
    return responses_stream.ChatToResponsesStream(
        model=model, request=body, usage_hook=hook, input_tokens_estimate=input_estimate
    )


def _stream_responses_anthropic(
    model: str, body: dict[str, Any], input_estimate: int, hook: UsageHook | None
) -> StreamAdapter:
    # The hook belongs to the adapter that reads Anthropic's exact usage (the 5m/1h
    # cache split); the second copies the fields it added (cost) into its usage.
    first = translate_stream.AnthropicToOpenAIStream(
        model=model, include_usage=True, usage_hook=hook
    )
    second = responses_stream.ChatToResponsesStream(
        model=model, request=body, usage_hook=None, input_tokens_estimate=input_estimate
    )
    return ChainedStream(first, second)


def _stream_responses_responses(
    model: str, body: dict[str, Any], input_estimate: int, hook: UsageHook | None
) -> StreamAdapter:
    del body, input_estimate
    return ResponsesPassthroughStream(usage_hook=hook, model=model)


def _build() -> dict[tuple[str, str], Route]:
    rows = [
        Route(
            "openai",
            "openai",
            _prepared(translate_request.openai_request_prepare),
            _same_protocol_response,
            _stream_openai_openai,
        ),
        Route(
            "openai",
            "anthropic",
            _prepared(translate_request.anthropic_request_from_openai),
            _openai_from_anthropic,
            _stream_openai_anthropic,
        ),
        Route(
            "anthropic",
            "anthropic",
            _prepared(translate_request.anthropic_request_prepare),
            _same_protocol_response,
            _stream_anthropic_anthropic,
        ),
        Route(
            "anthropic",
            "openai",
            _anthropic_for_openai,
            _anthropic_from_openai,
            _stream_anthropic_openai,
        ),
        Route(
            "responses",
            "responses",
            _responses_passthrough,
            _same_protocol_response,
            _stream_responses_responses,
        ),
        Route(
            "responses",
            "openai",
            _via_chat(_chat_for_openai),
            _responses_from_chat,
            _stream_responses_openai,
        ),
        Route(
            "responses",
            "anthropic",
            _via_chat(translate_request.anthropic_request_from_openai),
            _responses_from_anthropic,
            _stream_responses_anthropic,
        ),
    ]
    return {(r.client, r.wire): r for r in rows}


_ROUTES = _build()


def routes() -> tuple[Route, ...]:
    """Every (client, wire) pair that is served."""
    return tuple(_ROUTES.values())


def route(client: str, wire: str) -> Route:
    """The Route serving `client` over `wire`; KeyError when that pair is not served
    (chat and Anthropic clients over a Responses-only wire)."""
    try:
        return _ROUTES[(client, wire)]
    except KeyError:
        raise KeyError(f"no route serves {client!r} clients over the {wire!r} wire") from None


def wire_for(client: str, wires: Iterable[str]) -> str | None:
    """Which of a provider's wires serves `client`: its own protocol if the provider
    speaks it, else the chat hub "openai", else "anthropic"; None if none can."""
    spoken = set(wires)
    for wire in (client, "openai", "anthropic"):
        if wire in spoken and (client, wire) in _ROUTES:
            return wire
    return None
