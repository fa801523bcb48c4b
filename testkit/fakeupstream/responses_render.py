"""The fake's OpenAI Responses replies: a `Plan` (see reply.py) rendered as a
`response` object or as Responses SSE events, with OpenAI-style ids and, when asked
for, signed reasoning (`responses_wire.encrypt_reasoning`)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from .errors import dumps
from .reply import (
    THINKING_TEXT,
    Plan,
    split_fragments,
)
from .responses_wire import Options, encrypt_reasoning


def _hex(n: int) -> str:
    return os.urandom(n).hex()


def usage(input_tokens: int, cached_tokens: int, plan: Plan) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        "output_tokens": plan.output_tokens,
        "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        "total_tokens": input_tokens + plan.output_tokens,
    }


@dataclass(slots=True)
class _Ids:
    response: str
    reasoning: str
    message: str
    calls: list[tuple[str, str]]  # (item id, call id)


def _ids(plan: Plan) -> _Ids:
    return _Ids(
        response="resp_" + _hex(24),
        reasoning="rs_" + _hex(24),
        message="msg_" + _hex(24),
        calls=[("fc_" + _hex(24), "call_" + _hex(12)) for _ in plan.tool_calls],
    )


def _status(plan: Plan) -> tuple[str, dict[str, Any] | None]:
    if plan.stop == "max_tokens":
        return "incomplete", {"reason": "max_output_tokens"}
    return "completed", None


def _envelope(model: str, ids: _Ids, options: Options, status: str, created: int) -> dict[str, Any]:
    echo = options.echo or {}
    reasoning = echo.get("reasoning") or {}
    text = echo.get("text") or {}
    return {
        "id": ids.response,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": echo.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "prompt_cache_key": echo.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": echo.get("safety_identifier"),
        "service_tier": "default",
        "store": echo.get("store") is not False,
        "temperature": echo.get("temperature") if echo.get("temperature") is not None else 1.0,
        "text": {
            "format": text.get("format") or {"type": "text"},
            "verbosity": text.get("verbosity") or "medium",
        },
        "tool_choice": echo.get("tool_choice") or "auto",
        "tools": list(echo.get("tools") or []),
        "top_logprobs": 0,
        "top_p": echo.get("top_p") if echo.get("top_p") is not None else 1.0,
        "truncation": echo.get("truncation") or "disabled",
        "usage": None,
        "user": echo.get("user"),
        "metadata": echo.get("metadata") or {},
    }


def _reasoning_item(ids: _Ids, options: Options, plan: Plan) -> dict[str, Any]:
    item: dict[str, Any] = {"id": ids.reasoning, "type": "reasoning", "summary": []}
    if options.summary:
        item["summary"] = [{"type": "summary_text", "text": THINKING_TEXT}]
    if options.encrypted:
        item["encrypted_content"] = encrypt_reasoning(ids.reasoning)
    return item


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(ids: _Ids, text: str, status: str) -> dict[str, Any]:
    return {
        "id": ids.message,
        "type": "message",
        "status": status,
        "content": [_text_part(text)],
        "role": "assistant",
    }


def _call_item(ids: _Ids, index: int, plan: Plan, status: str, arguments: str) -> dict[str, Any]:
    item_id, call_id = ids.calls[index]
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": plan.tool_calls[index][0],
    }


def _output(ids: _Ids, options: Options, plan: Plan) -> list[dict[str, Any]]:
    status = "incomplete" if plan.stop == "max_tokens" else "completed"
    output = []
    if options.reasoning and plan.reasoning_tokens:
        output.append(_reasoning_item(ids, options, plan))
    if plan.chunks:
        output.append(_message_item(ids, plan.text, status))
    for index, (_, arguments) in enumerate(plan.tool_calls):
        output.append(_call_item(ids, index, plan, "completed", arguments))
    return output


def _final(
    model: str, ids: _Ids, options: Options, plan: Plan, usage_obj: dict[str, Any], created: int
) -> dict[str, Any]:
    status, incomplete = _status(plan)
    response = _envelope(model, ids, options, status, created)
    if status == "completed":
        response["completed_at"] = int(time.time())
    response["incomplete_details"] = incomplete
    response["output"] = _output(ids, options, plan)
    response["usage"] = usage_obj
    return response


def response(model: str, plan: Plan, usage_obj: dict[str, Any], options: Options) -> bytes:
    return dumps(_final(model, _ids(plan), options, plan, usage_obj, int(time.time())))


class _Events:
    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.sequence = 0

    def add(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        self.events.append(b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n")


def stream_events(
    model: str, plan: Plan, usage_obj: dict[str, Any], options: Options
) -> list[bytes]:
    ids = _ids(plan)
    created = int(time.time())
    out = _Events()
    start = _envelope(model, ids, options, "in_progress", created)
    out.add("response.created", response=start)
    out.add("response.in_progress", response=start)
    index = 0
    if options.reasoning and plan.reasoning_tokens:
        item = _reasoning_item(ids, options, plan)
        out.add(
            "response.output_item.added",
            output_index=index,
            item={"id": ids.reasoning, "type": "reasoning", "summary": []},
        )
        for s, summary in enumerate(item["summary"]):
            common = {"item_id": ids.reasoning, "output_index": index, "summary_index": s}
            out.add(
                "response.reasoning_summary_part.added",
                **common,
                part={"type": "summary_text", "text": ""},
            )
            for piece in re.findall(r"\s*\S+", summary["text"]):
                out.add("response.reasoning_summary_text.delta", **common, delta=piece)
            out.add("response.reasoning_summary_text.done", **common, text=summary["text"])
            out.add("response.reasoning_summary_part.done", **common, part=summary)
        out.add("response.output_item.done", output_index=index, item=item)
        index += 1
    status = "incomplete" if plan.stop == "max_tokens" else "completed"
    if plan.chunks:
        common = {"item_id": ids.message, "output_index": index, "content_index": 0}
        added = _message_item(ids, "", "in_progress")
        added["content"] = []
        out.add("response.output_item.added", output_index=index, item=added)
        out.add("response.content_part.added", **common, part=_text_part(""))
        for chunk in plan.chunks:
            out.add("response.output_text.delta", **common, delta=chunk, logprobs=[])
        out.add("response.output_text.done", **common, text=plan.text, logprobs=[])
        out.add("response.content_part.done", **common, part=_text_part(plan.text))
        out.add(
            "response.output_item.done",
            output_index=index,
            item=_message_item(ids, plan.text, status),
        )
        index += 1
    for call, (_, arguments) in enumerate(plan.tool_calls):
        item_id = ids.calls[call][0]
        out.add(
            "response.output_item.added",
            output_index=index,
            item=_call_item(ids, call, plan, "in_progress", ""),
        )
        for fragment in split_fragments(arguments):
            out.add(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=index,
                delta=fragment,
            )
        out.add(
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=index,
            arguments=arguments,
        )
        out.add(
            "response.output_item.done",
            output_index=index,
            item=_call_item(ids, call, plan, "completed", arguments),
        )
        index += 1
    final = _final(model, ids, options, plan, usage_obj, created)
    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
    out.add(kind, response=final)
    return out.events


def stream_error_event(body: dict[str, Any], sequence_number: int) -> bytes:
    """A mid-stream failure as OpenAI sends it: an `error` event whose details are
    nested under "error" (the API reference shows them at the top level; the service
    nests them, and the Python SDK raises on that shape)."""
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    data = {"type": "error", "sequence_number": sequence_number, "error": error}
    return b"event: error\ndata: " + dumps(data) + b"\n\n"
