"""Responses streams (SSE with `event:` lines and an increasing `sequence_number`).

    ChatToResponsesStream       Chat Completions chunks      -> Responses events

It has the interface of every stream adapter (adapter.StreamAdapter). An Anthropic
upstream is served to a Responses client as adapter.ChainedStream(
AnthropicToOpenAIStream, ChatToResponsesStream): the hub is Chat Completions. The
pass-through of a Responses upstream is passthrough.ResponsesPassthroughStream.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.protocols.adapter import UsageHook
from gateway.protocols.errors import (
    OPENAI_TYPE_BY_STATUS,
    GatewayError,
    UpstreamError,
    status_of_openai_error,
)
from gateway.protocols.json_text import json_text
from gateway.protocols.responses_api import (
    finish_status,
    function_call_item,
    function_item_id,
    item_ids,
    message_item,
    output_text,
    reasoning_item,
    response_envelope,
    response_id_from_chat,
)
from gateway.protocols.responses_events import (
    Sequenced,
    error_code,
    error_fields,
    failed_response,
)
from gateway.protocols.sse import SSEEvent, sse_encode
from gateway.protocols.usage import Usage

# The keys of Usage.to_openai(): anything else in a chat usage chunk (cost, is_byok,
# ...) was added by the gateway's usage hook and is copied into the Responses usage.
_CHAT_USAGE_KEYS = frozenset(Usage().to_openai()) | {"total_tokens"}


class ChatToResponsesStream(Sequenced):
    """response.created and response.in_progress at the first chunk (held back by
    the caller until content comes, so a failure before it stays invisible); one
    output item per kind as it starts: reasoning (summary parts, and Tollgate's
    encrypted_content carrying signed thinking), the message (output_text and refusal
    parts), each function call; items close when the next kind starts (function
    calls at the finish); response.completed or response.incomplete with the whole
    response and its usage once finish reason and usage are known."""

    def __init__(
        self,
        *,
        model: str,
        request: dict[str, Any] | None = None,
        usage_hook: UsageHook | None = None,
        input_tokens_estimate: int = 0,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.request = request or {}
        self.usage_hook = usage_hook
        self.input_tokens_estimate = input_tokens_estimate
        self.usage = Usage()
        self.usage_estimated = False
        self.done = False
        self.error: UpstreamError | None = None
        self.emitted_content = False
        self.sequence_number = 0
        self._created = int(time.time()) if created is None else created
        self._id = "resp_tollgate"
        self._started = False
        self._usage_seen = False
        self._extra: dict[str, Any] = {}
        self._finish: str | None = None
        self._items: dict[int, dict[str, Any]] = {}  # output_index -> finished item
        self._next_index = 0
        self._messages = 0
        self._reasonings = 0
        self._reasoning: dict[str, Any] | None = None
        self._message: dict[str, Any] | None = None
        self._tools: dict[int, dict[str, Any]] = {}  # chat tool index -> state
        self._deltas = 0

    @property
    def output_estimate(self) -> int:
        return self._deltas

    # --- the envelope -----------------------------------------------------------
    def _envelope(self, status: str) -> dict[str, Any]:
        return response_envelope(
            response_id=self._id,
            model=self.model,
            created_at=self._created,
            request=self.request,
            status=status,
        )

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._id = response_id_from_chat(chunk.get("id"))
        envelope = self._envelope("in_progress")
        return [
            self._event("response.created", response=envelope),
            self._event("response.in_progress", response=envelope),
        ]

    def _claim_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    # --- feeding ----------------------------------------------------------------
    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.done or event.is_comment:
            return []
        if event.data.strip() == "[DONE]":
            return self._complete()
        chunk = event.json_object()
        if chunk is None:
            return []
        if "error" in chunk and not chunk.get("choices"):
            return self._fail(chunk.get("error"))
        out = self._start(chunk)
        if chunk.get("usage"):
            usage = chunk["usage"]
            self.usage = Usage.from_openai(usage, chunk.get("service_tier"))
            self._usage_seen = True
            self._extra = {k: v for k, v in usage.items() if k not in _CHAT_USAGE_KEYS}
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            out += self._delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                out += self._close_items()
        if self._finish and self._usage_seen:
            out += self._complete()
        return out

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out += self._reasoning_text(reasoning)
        details = delta.get("reasoning_details")
        if isinstance(details, list) and details:
            out += self._reasoning_details([d for d in details if isinstance(d, dict)])
        text = delta.get("content")
        if isinstance(text, str) and text:
            out += self._message_delta("output_text", text)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out += self._message_delta("refusal", refusal)
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                out += self._tool_delta(call)
        return out

    # --- reasoning --------------------------------------------------------------
    def _open_reasoning(self) -> list[bytes]:
        if self._reasoning is not None:
            return []
        out = self._close_message()
        _, prefix = item_ids(self._id)
        state = {
            "index": self._claim_index(),
            "id": f"{prefix}_{self._reasonings}",
            "summaries": [],
            "details": [],
            "part_open": False,
        }
        self._reasonings += 1
        self._reasoning = state
        self.emitted_content = True
        out.append(
            self._event(
                "response.output_item.added",
                output_index=state["index"],
                item={"id": state["id"], "type": "reasoning", "summary": []},
            )
        )
        return out

    def _reasoning_text(self, text: str) -> list[bytes]:
        out = self._open_reasoning()
        state = self._reasoning
        assert state is not None
        if not state["part_open"]:
            state["part_open"] = True
            state["summaries"].append("")
            out.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=state["id"],
                    output_index=state["index"],
                    summary_index=len(state["summaries"]) - 1,
                    part={"type": "summary_text", "text": ""},
                )
            )
        state["summaries"][-1] += text
        self._deltas += 1
        out.append(
            self._event(
                "response.reasoning_summary_text.delta",
                item_id=state["id"],
                output_index=state["index"],
                summary_index=len(state["summaries"]) - 1,
                delta=text,
            )
        )
        return out

    def _reasoning_details(self, details: list[dict[str, Any]]) -> list[bytes]:
        """A whole signed thinking block (sent when it closes): the summary part of
        its text ends here; a next block's text opens the next part."""
        out = self._open_reasoning()
        state = self._reasoning
        assert state is not None
        state["details"].extend(details)
        out += self._close_summary_part()
        return out

    def _close_summary_part(self) -> list[bytes]:
        state = self._reasoning
        if state is None or not state["part_open"]:
            return []
        state["part_open"] = False
        index = len(state["summaries"]) - 1
        text = state["summaries"][-1]
        return [
            self._event(
                "response.reasoning_summary_text.done",
                item_id=state["id"],
                output_index=state["index"],
                summary_index=index,
                text=text,
            ),
            self._event(
                "response.reasoning_summary_part.done",
                item_id=state["id"],
                output_index=state["index"],
                summary_index=index,
                part={"type": "summary_text", "text": text},
            ),
        ]

    def _close_reasoning(self) -> list[bytes]:
        state = self._reasoning
        if state is None:
            return []
        out = self._close_summary_part()
        self._reasoning = None
        item = reasoning_item(state["id"], state["summaries"], state["details"])
        self._items[state["index"]] = item
        out.append(self._event("response.output_item.done", output_index=state["index"], item=item))
        return out

    # --- the message ------------------------------------------------------------
    def _message_delta(self, kind: str, text: str) -> list[bytes]:
        out = self._close_reasoning()
        if self._message is None:
            message_id, _ = item_ids(self._id)
            if self._messages:
                message_id = f"{message_id}_{self._messages}"
            self._messages += 1
            self._message = {"index": self._claim_index(), "id": message_id, "parts": []}
            self._message["open"] = None
            out.append(
                self._event(
                    "response.output_item.added",
                    output_index=self._message["index"],
                    item=message_item(message_id, [], "in_progress"),
                )
            )
        state = self._message
        if state["open"] != kind:
            out += self._close_part()
            state["open"] = kind
            part = output_text("") if kind == "output_text" else {"type": "refusal", "refusal": ""}
            state["parts"].append(part)
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=state["id"],
                    output_index=state["index"],
                    content_index=len(state["parts"]) - 1,
                    part=dict(part),
                )
            )
        part = state["parts"][-1]
        fields: dict[str, Any] = {
            "item_id": state["id"],
            "output_index": state["index"],
            "content_index": len(state["parts"]) - 1,
            "delta": text,
        }
        if kind == "output_text":
            part["text"] += text
            fields["logprobs"] = []
            out.append(self._event("response.output_text.delta", **fields))
        else:
            part["refusal"] += text
            out.append(self._event("response.refusal.delta", **fields))
        self._deltas += 1
        self.emitted_content = True
        return out

    def _close_part(self) -> list[bytes]:
        state = self._message
        if state is None or state["open"] is None:
            return []
        kind, state["open"] = state["open"], None
        part = state["parts"][-1]
        fields = {
            "item_id": state["id"],
            "output_index": state["index"],
            "content_index": len(state["parts"]) - 1,
        }
        if kind == "output_text":
            done = self._event(
                "response.output_text.done", **fields, text=part["text"], logprobs=[]
            )
        else:
            done = self._event("response.refusal.done", **fields, refusal=part["refusal"])
        return [done, self._event("response.content_part.done", **fields, part=dict(part))]

    def _close_message(self) -> list[bytes]:
        state = self._message
        if state is None:
            return []
        out = self._close_part()
        self._message = None
        status = "incomplete" if finish_status(self._finish)[0] == "incomplete" else "completed"
        item = message_item(state["id"], state["parts"], status)
        self._items[state["index"]] = item
        out.append(self._event("response.output_item.done", output_index=state["index"], item=item))
        return out

    # --- function calls ---------------------------------------------------------
    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        out: list[bytes] = []
        state = self._tools.get(index)
        if state is None:
            out += self._close_reasoning()
            out += self._close_message()
            state = {"call_id": None, "name": "", "args": "", "pending": "", "index": None}
            self._tools[index] = state
        if call.get("id") and not state["call_id"]:
            state["call_id"] = call["id"]
        if function.get("name") and not state["name"]:
            state["name"] = function["name"]
        state["pending"] += function.get("arguments") or ""
        if state["index"] is None:
            if not state["name"]:
                return out  # the item cannot be announced before its name is known
            if not state["call_id"]:
                state["call_id"] = f"call_{self._id.removeprefix('resp_')}_{index}"
            state["index"] = self._claim_index()
            self.emitted_content = True
            out.append(
                self._event(
                    "response.output_item.added",
                    output_index=state["index"],
                    item=function_call_item(state["call_id"], state["name"], "", "in_progress"),
                )
            )
        if state["pending"]:
            delta, state["pending"] = state["pending"], ""
            state["args"] += delta
            self._deltas += 1
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=function_item_id(state["call_id"]),
                    output_index=state["index"],
                    delta=delta,
                )
            )
        return out

    def _close_tools(self) -> list[bytes]:
        out: list[bytes] = []
        status = "incomplete" if finish_status(self._finish)[0] == "incomplete" else "completed"
        for state in sorted(
            (s for s in self._tools.values() if s["index"] is not None), key=lambda s: s["index"]
        ):
            arguments = state["args"] or "{}"
            item_id = function_item_id(state["call_id"])
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item_id,
                    output_index=state["index"],
                    arguments=arguments,
                )
            )
            item = function_call_item(state["call_id"], state["name"], arguments, status)
            self._items[state["index"]] = item
            out.append(
                self._event("response.output_item.done", output_index=state["index"], item=item)
            )
        self._tools = {}
        return out

    def _close_items(self) -> list[bytes]:
        return self._close_reasoning() + self._close_message() + self._close_tools()

    # --- the end ----------------------------------------------------------------
    def _output(self) -> list[dict[str, Any]]:
        return [self._items[i] for i in sorted(self._items)]

    def _complete(self) -> list[bytes]:
        if self.done:
            return []
        out = self._start({})
        out += self._close_items()
        self.done = True
        if not self._usage_seen:
            # The upstream sent no usage: estimate rather than bill nothing.
            self.usage = Usage(input_tokens=self.input_tokens_estimate, output_tokens=self._deltas)
            self.usage_estimated = True
        extra = dict(self._extra)
        if self.usage_hook:
            extra.update(self.usage_hook(self.usage))
        status, incomplete = finish_status(self._finish)
        response = self._envelope(status)
        response["output"] = self._output()
        response["incomplete_details"] = incomplete
        if status == "completed":
            response["completed_at"] = int(time.time())
        response["usage"] = {**self.usage.to_responses(), **extra}
        self.emitted_content = True
        kind = "response.completed" if status == "completed" else "response.incomplete"
        # Encoded with json_text, as every event carrying the cost: it is exact there.
        data = {"type": kind, "response": response, "sequence_number": self.sequence_number}
        self.sequence_number += 1
        out.append(sse_encode(json_text(data), kind))
        return out

    def _fail(self, error: Any) -> list[bytes]:
        error = error if isinstance(error, dict) else {"message": str(error or "")}
        status = status_of_openai_error(error)
        message = str(error.get("message") or "upstream error")
        self.error = UpstreamError(
            status=status, type=str(error.get("type") or error.get("code") or ""), message=message
        )
        kind = str(error.get("type") or OPENAI_TYPE_BY_STATUS.get(status, "server_error"))
        return self._failure(error_code(status), status, message, None, kind)

    def _failure(
        self, code: str, status: int, message: str, param: str | None, kind: str
    ) -> list[bytes]:
        self.done = True
        out = self._start({})
        out.append(self._event("error", **error_fields(code, message, param, kind)))
        response = self._envelope("in_progress")
        response["output"] = self._output()
        out.append(
            self._event("response.failed", response=failed_response(response, status, message))
        )
        return out

    def stream_error(self, error: GatewayError) -> bytes:
        """The gateway's own error ending the stream (see responses_stream_error)."""
        code = error.code or error_code(error.status)
        kind = error.type or OPENAI_TYPE_BY_STATUS.get(error.status, "server_error")
        return b"".join(self._failure(code, error.status, error.message, error.param, kind))

    def finish(self) -> list[bytes]:
        """The upstream closed without [DONE]: complete the response if its finish
        reason had arrived, otherwise report an error."""
        if self.done:
            return []
        if self._finish:
            return self._complete()
        return self._fail(
            {
                "type": "api_error",
                "code": "api_error",
                "message": "The upstream stream ended before the response was complete.",
            }
        )
