"""Streams that need no translation, relayed byte for byte.

    OpenAIPassthroughStream      OpenAI upstream    -> OpenAI client
    AnthropicPassthroughStream   Anthropic upstream -> Anthropic client
    ResponsesPassthroughStream   Responses upstream -> Responses client

Only the events billing needs are decoded: OpenAI's usage chunk, Anthropic's
message_start and message_delta, the Responses lifecycle events. Everything else goes
out exactly as it came in, but for `model`, which is the public id the client asked
for (as in non-streamed answers: docs/protocols.md). They have the interface of every
stream adapter (adapter.StreamAdapter).
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.protocols.adapter import UsageHook
from gateway.protocols.errors import GatewayError, UpstreamError, status_of_openai_error
from gateway.protocols.json_text import json_text
from gateway.protocols.responses_events import (
    PREAMBLE,
    TERMINAL,
    failed_response,
    responses_error_event,
)
from gateway.protocols.sse import SSE_DONE, SSEEvent, sse_encode
from gateway.protocols.usage import Usage

_HAS_USAGE = re.compile(rb'"usage"\s*:\s*\{')
# A chunk's `model` field as written (a JSON string: no unescaped quote inside).
_MODEL_FIELD = re.compile(rb'"model"\s*:\s*("(?:[^"\\]|\\.)*")')


class OpenAIPassthroughStream:
    """OpenAI upstream -> OpenAI client. The upstream is always asked for usage; the
    usage chunk is shown to the client (with cost added) only if it asked for it.
    With `model`, every chunk's `model` becomes it (a byte substitution of the field
    as the upstream writes it, so chunks are not decoded)."""

    def __init__(
        self,
        *,
        include_usage: bool,
        input_tokens_estimate: int,
        usage_hook: UsageHook | None = None,
        model: str | None = None,
    ) -> None:
        self.include_usage = include_usage
        self.input_tokens_estimate = input_tokens_estimate
        self.usage_hook = usage_hook
        self.model = model
        self._model_value = json.dumps(model).encode() if model else b""
        self._model_field = b'"model":' + self._model_value if model else b""
        self._upstream_field = b""  # the upstream's `"model":"..."`, as it writes it
        self.usage = Usage()
        self.usage_estimated = False
        self.done = False
        self.error: UpstreamError | None = None
        self.emitted_content = False
        self._usage_seen = False
        self._chunks = 0
        self._last: dict[str, Any] = {}

    def _hook(self, usage: Usage) -> dict[str, Any]:
        return self.usage_hook(usage) if self.usage_hook else {}

    def _public(self, raw: bytes) -> bytes:
        """The chunk with its `model` field naming the public model."""
        if not self._model_field:
            return raw
        if self._upstream_field and self._upstream_field in raw:
            return raw.replace(self._upstream_field, self._model_field, 1)
        found = _MODEL_FIELD.search(raw)
        if found is None or found.group(1) == self._model_value:
            return raw
        self._upstream_field = found.group(0)
        return raw[: found.start()] + self._model_field + raw[found.end() :]

    def _usage(self, upstream: Any, extra: dict[str, Any]) -> dict[str, Any]:
        """The client's usage: the upstream's as written (its details kept, as in a
        non-streamed answer), gaps filled from the normalised shape, the hook's
        fields (cost) added."""
        written = upstream if isinstance(upstream, dict) else {}
        return {**self.usage.to_openai(), **written, **extra}

    def feed(self, event: SSEEvent) -> list[bytes]:
        if event.is_comment or self.done:
            return []
        if event.data == "[DONE]":
            return self._close()
        raw = event.raw
        if raw.startswith(b'data: {"error"') or raw.startswith(b'data:{"error"'):
            payload = event.json().get("error") or {}
            if not isinstance(payload, dict):
                payload = {"message": str(payload)}
            self.error = UpstreamError(
                status=502,
                type=str(payload.get("type") or ""),
                message=str(payload.get("message") or "upstream stream error"),
            )
            self.done = True
            return [raw]
        if _HAS_USAGE.search(raw):
            chunk = event.json()
            self.usage = Usage.from_openai(chunk.get("usage"), chunk.get("service_tier"))
            self._usage_seen = True
            extra = self._hook(self.usage)
            if self.model and "model" in chunk:
                chunk["model"] = self.model
            if chunk.get("choices"):
                # Usage inside a content chunk (some compatible upstreams do this).
                self.emitted_content = True
                if self.include_usage:
                    chunk["usage"] = self._usage(chunk.get("usage"), extra)
                else:
                    chunk["usage"] = None
                return [sse_encode(json_text(chunk))]
            if not self.include_usage:
                return []
            chunk["usage"] = self._usage(chunk.get("usage"), extra)
            return [sse_encode(json_text(chunk))]
        self._chunks += 1
        if self._chunks <= 2 or not self._last:
            # Keep the id/model/created of the stream for a synthesised usage chunk.
            try:
                first = event.json()
                self._last = {k: first.get(k) for k in ("id", "created", "model")}
                if self.model:
                    self._last["model"] = self.model
            except ValueError:
                pass
        self.emitted_content = True
        return [self._public(raw)]

    def _close(self) -> list[bytes]:
        self.done = True
        out: list[bytes] = []
        if not self._usage_seen:
            # The upstream ignored include_usage: estimate, and say so in the log.
            self.usage = Usage(input_tokens=self.input_tokens_estimate, output_tokens=self._chunks)
            self.usage_estimated = True
            extra = self._hook(self.usage)
            if self.include_usage:
                out.append(
                    sse_encode(
                        json_text(
                            {
                                **self._last,
                                "object": "chat.completion.chunk",
                                "choices": [],
                                "usage": {**self.usage.to_openai(), **extra},
                            }
                        )
                    )
                )
        out.append(SSE_DONE)
        return out

    def finish(self) -> list[bytes]:
        """The upstream closed without [DONE]."""
        return [] if self.done else self._close()

    @property
    def output_estimate(self) -> int:
        return self._chunks


class AnthropicPassthroughStream:
    """Anthropic upstream -> Anthropic client; cost is added to message_delta's usage.
    With `model`, message_start's message names it (no other event has a model)."""

    def __init__(self, *, usage_hook: UsageHook | None = None, model: str | None = None) -> None:
        self.usage_hook = usage_hook
        self.model = model
        self.usage = Usage()
        self.usage_estimated = False
        self.done = False
        self.error: UpstreamError | None = None
        self.emitted_content = False
        self._deltas = 0
        self._hooked = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.done or event.is_comment:
            return []
        name = event.event
        if name == "content_block_delta":
            self._deltas += 1
            self.emitted_content = True
            return [event.raw]
        if name == "message_start":
            data = event.json()
            message = data.get("message") or {}
            self.usage = Usage.from_anthropic(message.get("usage"))
            if self.model and isinstance(message, dict) and message.get("model") != self.model:
                message["model"] = self.model
                return [sse_encode(json_text(data), "message_start")]
            return [event.raw]
        if name == "message_delta":
            data = event.json()
            self.usage.merge_anthropic_delta(data.get("usage"))
            if self.usage_hook and not self._hooked:
                self._hooked = True
                data["usage"] = {**(data.get("usage") or {}), **self.usage_hook(self.usage)}
            return [sse_encode(json_text(data), "message_delta")]
        if name == "message_stop":
            self.done = True
            return [event.raw]
        if name == "error":
            payload = (event.json() or {}).get("error") or {}
            if not isinstance(payload, dict):
                payload = {"message": str(payload)}
            self.error = UpstreamError(
                status=529 if payload.get("type") == "overloaded_error" else 502,
                type=str(payload.get("type") or ""),
                message=str(payload.get("message") or "upstream stream error"),
            )
            self.done = True
            return [event.raw]
        if name == "content_block_start":
            self.emitted_content = True
        return [event.raw]

    def finish(self) -> list[bytes]:
        return []

    @property
    def output_estimate(self) -> int:
        return self._deltas


class ResponsesPassthroughStream:
    """Responses upstream -> Responses client, relayed byte for byte except the
    lifecycle events that carry the response object: their model name becomes the
    public one, and the final one (completed, incomplete or failed) gets the usage
    hook's fields (cost) in its usage. `error` and `response.failed` events set
    `error`."""

    def __init__(self, *, usage_hook: UsageHook | None = None, model: str | None = None) -> None:
        self.usage_hook = usage_hook
        self.model = model
        self.usage = Usage()
        self.usage_estimated = False
        self.done = False
        self.error: UpstreamError | None = None
        self.emitted_content = False
        self.sequence_number = 0
        self._deltas = 0
        self._hooked = False
        self._response: dict[str, Any] | None = None  # the last lifecycle response

    @property
    def output_estimate(self) -> int:
        return self._deltas

    def feed(self, event: SSEEvent) -> list[bytes]:
        if event.is_comment:
            return []
        data = event.json_object()
        if data is None:
            return [event.raw] if not self.done else []
        kind = str(data.get("type") or event.event or "")
        if isinstance(data.get("sequence_number"), int):
            self.sequence_number = data["sequence_number"] + 1
        if kind == "error":
            self._error(data)
            return [event.raw]
        if kind in TERMINAL or kind in PREAMBLE:
            return [self._lifecycle(kind, data, event)]
        if kind.endswith(".delta"):
            self._deltas += 1
        self.emitted_content = True
        return [event.raw]

    def _error(self, data: dict[str, Any]) -> None:
        raw = data.get("error")
        nested: dict[str, Any] = raw if isinstance(raw, dict) else {}
        code = str(data.get("code") or nested.get("code") or nested.get("type") or "")
        message = str(data.get("message") or nested.get("message") or "upstream error")
        status = status_of_openai_error({"code": code, "type": nested.get("type")})
        if status == 500:
            status = 502
        self.error = UpstreamError(status=status, type=code, message=message)
        self.done = True

    def _lifecycle(self, kind: str, data: dict[str, Any], event: SSEEvent) -> bytes:
        response = data.get("response")
        if not isinstance(response, dict):
            return event.raw
        self._response = response
        changed = False
        if self.model and response.get("model") not in (None, self.model):
            response["model"] = self.model
            changed = True
        if kind in TERMINAL:
            self.done = True
            self.usage = Usage.from_responses(
                response.get("usage"), response.get("output"), response.get("service_tier")
            )
            if kind == "response.failed":
                failure = response.get("error") or {}
                code = str(failure.get("code") or "server_error")
                if self.error is None:
                    self.error = UpstreamError(
                        status=429 if code == "rate_limit_exceeded" else 502,
                        type=code,
                        message=str(failure.get("message") or "the upstream response failed"),
                    )
            else:
                self.emitted_content = True
            if self.usage_hook and not self._hooked:
                self._hooked = True
                extra = self.usage_hook(self.usage)
                if isinstance(response.get("usage"), dict) or kind != "response.failed":
                    response["usage"] = {**(response.get("usage") or {}), **extra}
                    changed = True
        return sse_encode(json_text(data), event.event or kind) if changed else event.raw

    def stream_error(self, error: GatewayError) -> bytes:
        """The gateway's own error ending the stream (see responses_stream_error)."""
        out = [responses_error_event(error, self.sequence_number)]
        self.sequence_number += 1
        if self._response is not None and not self.done:
            failed = failed_response(self._response, error.status, error.message)
            data = {
                "type": "response.failed",
                "response": failed,
                "sequence_number": self.sequence_number,
            }
            self.sequence_number += 1
            out.append(sse_encode(data, "response.failed"))
        self.done = True
        return b"".join(out)

    def finish(self) -> list[bytes]:
        """The upstream closed. Without a final event the response may be cut short:
        report it as an error (`done` stays False)."""
        if self.done:
            return []
        message = "The upstream stream ended before the response was complete."
        self.error = UpstreamError(status=502, type="server_error", message=message)
        out = self.stream_error(GatewayError(502, message, code="server_error"))
        self.done = False
        return [out]


def json_loads_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object (raises ValueError otherwise)."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("the request body must be a JSON object")
    return data
