"""Streams translated between protocols, one upstream SSE event at a time.

    AnthropicToOpenAIStream   Anthropic upstream -> OpenAI client
    OpenAIToAnthropicStream   OpenAI upstream    -> Anthropic client

Both have the interface of the pass-through streams (passthrough.py): `feed(event)`
returns the SSE-encoded bytes to send now, `finish()` what is owed when the upstream
closes; `usage`, `done`, `error` (a mid-stream upstream error, already turned into the
client protocol's error event) and `emitted_content` (anything past the opening
role chunk / message_start reached the client, so a retry is no longer invisible).

`usage_hook(usage)` is called exactly once, when the final usage is known; the fields
it returns (e.g. {"cost": ...}) are merged into the usage the client sees.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.protocols.adapter import UsageHook
from gateway.protocols.errors import (
    ANTHROPIC_TYPE_BY_STATUS,
    STATUS_BY_ANTHROPIC_TYPE,
    UpstreamError,
    anthropic_error_body,
    openai_error_body,
    status_of_openai_error,
)
from gateway.protocols.ids import tool_id_to_anthropic, tool_id_to_openai
from gateway.protocols.json_text import json_text
from gateway.protocols.responses import (
    anthropic_id_from_openai,
    finish_reason,
    openai_id_from_anthropic,
    reasoning_detail,
    refusal_explanation,
    refusal_stop_details,
    server_tool_use_of,
    stop_reason,
)
from gateway.protocols.sse import SSE_DONE, SSEEvent, sse_encode
from gateway.protocols.usage import Usage


class AnthropicToOpenAIStream:
    """Role chunk at message_start; text -> `content`, thinking -> `reasoning_content`;
    each tool_use block takes the next tool index, with id and name in its first
    chunk and `input_json_delta` as argument fragments ("{}" when there were none);
    the finish chunk at message_delta (with `native_finish_reason`, Anthropic's own;
    a refusal is first a `refusal` delta with Anthropic's explanation); the usage
    chunk (if asked for) and [DONE] at message_stop. Pings are dropped."""

    def __init__(
        self,
        *,
        model: str,
        include_usage: bool,
        usage_hook: UsageHook | None = None,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.usage_hook = usage_hook
        self.usage = Usage()
        self.usage_estimated = False
        self.done = False
        self.error: UpstreamError | None = None
        self.emitted_content = False
        self._id = "chatcmpl-anthropic"
        self._created = int(time.time()) if created is None else created
        self._started = False
        self._finished = False  # finish chunk sent
        self._blocks: dict[int, dict[str, Any]] = {}  # Anthropic index -> state
        self._next_tool = 0
        self._reasoning_index = 0
        self._deltas = 0
        self._server_tools: dict[str, Any] | None = None  # usage.server_tool_use

    @property
    def output_estimate(self) -> int:
        return self._deltas

    def _chunk(
        self, delta: dict[str, Any], finish: str | None = None, native: str | None = None
    ) -> bytes:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": delta,
            "finish_reason": finish,
            "logprobs": None,
        }
        if native is not None:
            choice["native_finish_reason"] = native
        return sse_encode(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self.model,
                "choices": [choice],
            }
        )

    def _content(self, delta: dict[str, Any]) -> list[bytes]:
        self.emitted_content = True
        self._deltas += 1
        return [self._chunk(delta)]

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.done or event.is_comment:
            return []
        data = event.json_object()
        if data is None:
            return []
        kind = data.get("type") or event.event
        handler = getattr(self, f"_on_{kind}", None)
        return handler(data) if handler else []

    def _start(self, message: dict[str, Any] | None = None) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message = message or {}
        self._id = openai_id_from_anthropic(message.get("id"))
        self.usage = Usage.from_anthropic(message.get("usage"))
        self._server_tools = server_tool_use_of(message.get("usage")) or self._server_tools
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_message_start(self, data: dict[str, Any]) -> list[bytes]:
        return self._start(data.get("message"))

    def _on_content_block_start(self, data: dict[str, Any]) -> list[bytes]:
        out = self._start()
        block = data.get("content_block") or {}
        state: dict[str, Any] = {
            "type": block.get("type"),
            "args": False,
            "thinking": block.get("thinking") or "",
            "signature": block.get("signature") or "",
            "data": block.get("data"),
        }
        self._blocks[int(data.get("index") or 0)] = state
        if block.get("type") == "text" and block.get("text"):
            out += self._content({"content": block["text"]})
        elif block.get("type") == "tool_use":
            state["tool"] = self._next_tool
            self._next_tool += 1
            out += self._content(
                {
                    "tool_calls": [
                        {
                            "index": state["tool"],
                            "id": tool_id_to_openai(str(block.get("id") or "")),
                            "type": "function",
                            "function": {"name": block.get("name") or "", "arguments": ""},
                        }
                    ]
                }
            )
        elif block.get("type") == "thinking" and block.get("thinking"):
            out += self._content({"reasoning_content": block["thinking"]})
        return out

    def _on_content_block_delta(self, data: dict[str, Any]) -> list[bytes]:
        out = self._start()
        state = self._blocks.get(int(data.get("index") or 0), {})
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            out += self._content({"content": delta["text"]})
        elif kind == "input_json_delta" and "tool" in state and delta.get("partial_json"):
            state["args"] = True
            out += self._content(
                {
                    "tool_calls": [
                        {"index": state["tool"], "function": {"arguments": delta["partial_json"]}}
                    ]
                }
            )
        elif kind == "thinking_delta" and delta.get("thinking"):
            state["thinking"] = state.get("thinking", "") + delta["thinking"]
            out += self._content({"reasoning_content": delta["thinking"]})
        elif kind == "signature_delta":
            state["signature"] = state.get("signature", "") + (delta.get("signature") or "")
        return out

    def _on_content_block_stop(self, data: dict[str, Any]) -> list[bytes]:
        state = self._blocks.get(int(data.get("index") or 0))
        if not state:
            return []
        if "tool" in state and not state["args"]:
            return self._content(
                {"tool_calls": [{"index": state["tool"], "function": {"arguments": "{}"}}]}
            )
        if state["type"] in ("thinking", "redacted_thinking"):
            # The whole signed block once, so the client can send it back next turn.
            detail = reasoning_detail(self._reasoning_index, state)
            self._reasoning_index += 1
            if detail:
                return self._content({"reasoning_details": [detail]})
        return []

    def _on_message_delta(self, data: dict[str, Any]) -> list[bytes]:
        out = self._start()
        self.usage.merge_anthropic_delta(data.get("usage"))
        self._server_tools = server_tool_use_of(data.get("usage")) or self._server_tools
        delta = data.get("delta") or {}
        reason = delta.get("stop_reason")
        if reason and not self._finished:
            self._finished = True
            self.emitted_content = True
            if reason == "refusal":
                explanation = refusal_explanation(delta.get("stop_details"))
                out += self._content({"refusal": explanation})
            out.append(self._chunk({}, finish_reason(reason), reason))
        return out

    def _on_message_stop(self, data: dict[str, Any]) -> list[bytes]:
        return self._close()

    def _on_error(self, data: dict[str, Any]) -> list[bytes]:
        error = data.get("error") or {}
        kind = str(error.get("type") or "api_error")
        status = STATUS_BY_ANTHROPIC_TYPE.get(kind, 502)
        self.error = UpstreamError(
            status=status, type=kind, message=str(error.get("message") or "upstream error")
        )
        self.done = True
        return [sse_encode(openai_error_body(status, self.error.message, code=kind))]

    def _close(self) -> list[bytes]:
        out = self._start()
        if not self._finished:
            self._finished = True
            out.append(self._chunk({}, "stop"))
        self.done = True
        extra = self.usage_hook(self.usage) if self.usage_hook else {}
        if self.include_usage:
            usage = self.usage.to_openai()
            if self._server_tools is not None:
                usage["server_tool_use"] = self._server_tools  # as Anthropic wrote it
            chunk = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self.model,
                "choices": [],
                "usage": {**usage, **extra},
            }
            out.append(sse_encode(json_text(chunk)))
        out.append(SSE_DONE)
        return out

    def finish(self) -> list[bytes]:
        """The upstream closed. Without message_stop the answer may be cut short:
        complete it if the stop reason had arrived, otherwise report an error."""
        if self.done:
            return []
        if self._finished:
            return self._close()
        return self._on_error(
            {
                "error": {
                    "type": "api_error",
                    "message": "The upstream stream ended before the message was complete.",
                }
            }
        )


class OpenAIToAnthropicStream:
    """message_start at the first chunk (input tokens: the upstream's count if the
    chunk has one, else the caller's estimate); one content block per kind in order
    (thinking, text, each tool call), the open block closed before the next opens;
    the stop reason held until the usage chunk, then one message_delta with both and
    message_stop. `refusal` deltas go in a text block, and make the stop reason
    `refusal` (with `stop_details.explanation`, the refusal text)."""

    def __init__(
        self,
        *,
        model: str,
        input_tokens_estimate: int,
        usage_hook: UsageHook | None = None,
    ) -> None:
        self.model = model
        self.input_tokens_estimate = input_tokens_estimate
        self.usage_hook = usage_hook
        self.usage = Usage(input_tokens=input_tokens_estimate)
        self.usage_estimated = True
        self.done = False
        self.error: UpstreamError | None = None
        self.emitted_content = False
        self._id = "msg_openai"
        self._started = False
        self._index = -1  # Anthropic index of the open block
        self._open: str | None = None  # "thinking" | "text" | "tool:<n>" | None
        self._tools: dict[int, dict[str, Any]] = {}  # OpenAI tool index -> state
        self._stop: str | None = None
        self._refusal = ""  # the refusal text relayed, if the model refused
        self._deltas = 0

    @property
    def output_estimate(self) -> int:
        return self._deltas

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.done or event.is_comment:
            return []
        if event.data.strip() == "[DONE]":
            return self._close()
        chunk = event.json_object()
        if chunk is None:
            return []
        if "error" in chunk and not chunk.get("choices"):
            return self._fail(chunk.get("error"))
        out = self._start(chunk)
        if chunk.get("usage"):
            self.usage = Usage.from_openai(chunk["usage"], chunk.get("service_tier"))
            self.usage_estimated = False
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            out += self._delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._stop = stop_reason(choice["finish_reason"])
        if self._stop and not self.usage_estimated:
            out += self._close()
        return out

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._id = anthropic_id_from_openai(chunk.get("id"))
        if chunk.get("usage"):
            self.usage = Usage.from_openai(chunk["usage"], chunk.get("service_tier"))
        usage = self.usage.to_anthropic()
        usage["output_tokens"] = 0
        return [
            sse_encode(
                {
                    "type": "message_start",
                    "message": {
                        "id": self._id,
                        "type": "message",
                        "role": "assistant",
                        "model": self.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": usage,
                    },
                },
                "message_start",
            )
        ]

    def _open_block(self, key: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self._index += 1
        self._open = key
        self.emitted_content = True
        out.append(
            sse_encode(
                {"type": "content_block_start", "index": self._index, "content_block": block},
                "content_block_start",
            )
        )
        return out

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [
            sse_encode({"type": "content_block_stop", "index": self._index}, "content_block_stop")
        ]

    def _block_delta(self, delta: dict[str, Any]) -> bytes:
        self._deltas += 1
        return sse_encode(
            {"type": "content_block_delta", "index": self._index, "delta": delta},
            "content_block_delta",
        )

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            if self._open != "thinking":
                out += self._open_block(
                    "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                )
            out.append(self._block_delta({"type": "thinking_delta", "thinking": reasoning}))
        for field in ("content", "refusal"):
            text = delta.get(field)
            if isinstance(text, str) and text:
                if field == "refusal":
                    self._refusal += text
                if self._open != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                out.append(self._block_delta({"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or []:
            out += self._tool_delta(call)
        return out

    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        state = self._tools.setdefault(
            index, {"id": None, "name": "", "pending": "", "opened": False}
        )
        if call.get("id") and not state["id"]:
            state["id"] = call["id"]
        if function.get("name") and not state["name"]:
            state["name"] = function["name"]
        state["pending"] += function.get("arguments") or ""
        out: list[bytes] = []
        key = f"tool:{index}"
        if not state["opened"]:
            if not state["name"]:
                return out  # the block cannot start before its name is known
            upstream_id = state["id"] or f"call_{self._id}_{index}"
            state["opened"] = True
            out += self._open_block(
                key,
                {
                    "type": "tool_use",
                    "id": tool_id_to_anthropic(upstream_id),
                    "name": state["name"],
                    "input": {},
                },
            )
        elif self._open != key and state["pending"]:
            # Arguments for a tool call whose block was already closed: Anthropic's
            # blocks cannot be reopened, so this stream cannot be translated faithfully.
            return self._fail(
                {
                    "type": "api_error",
                    "message": "The upstream interleaved the arguments of parallel tool "
                    "calls, which cannot be relayed in order.",
                }
            )
        if state["pending"]:
            out.append(
                self._block_delta({"type": "input_json_delta", "partial_json": state["pending"]})
            )
            state["pending"] = ""
        return out

    def _close(self) -> list[bytes]:
        """The stop reason and final usage are both known (or the upstream has said
        all it will say): one message_delta with both, then message_stop."""
        if self.done:
            return []
        out = self._start({})
        out += self._close_block()
        self.done = True
        if self.usage_estimated:
            # The upstream sent no usage: count what was relayed rather than bill 0.
            self.usage.output_tokens = max(self.usage.output_tokens, self._deltas)
        extra = self.usage_hook(self.usage) if self.usage_hook else {}
        self.emitted_content = True
        delta: dict[str, Any] = {"stop_reason": self._stop or "end_turn", "stop_sequence": None}
        if self._refusal:
            # OpenAI finishes a refusal with "stop": Anthropic's client learns it here.
            delta["stop_reason"] = "refusal"
            delta["stop_details"] = refusal_stop_details(self._refusal)
        data = {
            "type": "message_delta",
            "delta": delta,
            "usage": {**self.usage.to_anthropic(), **extra},
        }
        out.append(sse_encode(json_text(data), "message_delta"))
        out.append(sse_encode({"type": "message_stop"}, "message_stop"))
        return out

    def _fail(self, error: Any) -> list[bytes]:
        error = error if isinstance(error, dict) else {"message": str(error or "")}
        kind = str(error.get("type") or error.get("code") or "api_error")
        status = status_of_openai_error(error)
        anthropic_type = ANTHROPIC_TYPE_BY_STATUS.get(status, "api_error")
        message = str(error.get("message") or "upstream error")
        self.error = UpstreamError(status=status, type=kind, message=message)
        self.done = True
        return [sse_encode(anthropic_error_body(status, message, type=anthropic_type), "error")]

    def finish(self) -> list[bytes]:
        """The upstream closed without [DONE]: complete the message if its stop
        reason had arrived, otherwise report an error."""
        if self.done:
            return []
        if self._stop:
            return self._close()
        return self._fail(
            {
                "type": "api_error",
                "message": "The upstream stream ended before the message was complete.",
            }
        )
