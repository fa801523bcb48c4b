"""Anthropic Messages replies as the fake sends them: the `message` object, and the
`event:`/`data:` stream (message_start, content blocks with a ping after the first one
opens, message_delta with cumulative usage, message_stop).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from .anthropic_wire import sign_thinking
from .cache import CacheUsage
from .errors import dumps
from .reply import SEARCH_RESULT_URL, Plan, split_fragments


def new_message_id() -> str:
    return "msg_01" + os.urandom(11).hex()


def new_tool_id() -> str:
    return "toolu_01" + os.urandom(11).hex()


def usage(input_tokens: int, cache: CacheUsage, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache.write,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.write_5m,
            "ephemeral_1h_input_tokens": cache.write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _search_blocks(plan: Plan) -> list[dict[str, Any]]:
    """Anthropic's web search as it appears in a message: the server's own tool call,
    then its result (one page)."""
    if plan.web_search_query is None:
        return []
    call_id = "srvtoolu_01" + os.urandom(11).hex()
    return [
        {
            "type": "server_tool_use",
            "id": call_id,
            "name": "web_search",
            "input": {"query": plan.web_search_query},
        },
        {
            "type": "web_search_tool_result",
            "tool_use_id": call_id,
            "content": [
                {
                    "type": "web_search_result",
                    "url": SEARCH_RESULT_URL,
                    "title": "Search result",
                    "encrypted_content": "ZmFrZQ",
                    "page_age": None,
                }
            ],
        },
    ]


def usage_with_searches(usage_obj: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The usage object, with Anthropic's per-call count when the server searched."""
    if plan.web_search_query is None:
        return usage_obj
    return {**usage_obj, "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}}


def _content(plan: Plan) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    if plan.thinking:
        content.append(
            {
                "type": "thinking",
                "thinking": plan.thinking,
                "signature": sign_thinking(plan.thinking),
            }
        )
    content.extend(_search_blocks(plan))
    if plan.chunks:
        content.append({"type": "text", "text": plan.text})
    for name, arguments in plan.tool_calls:
        content.append(
            {"type": "tool_use", "id": new_tool_id(), "name": name, "input": json.loads(arguments)}
        )
    return content


def message(model: str, plan: Plan, usage_obj: dict[str, Any]) -> bytes:
    return dumps(
        {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": _content(plan),
            "stop_reason": plan.stop,
            "stop_sequence": plan.stop_sequence,
            "usage": usage_with_searches(usage_obj, plan),
        }
    )


def _event(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


PING = _event(b"ping", b'{"type":"ping"}')
MESSAGE_STOP = _event(b"message_stop", b'{"type":"message_stop"}')


def stream_events(model: str, plan: Plan, usage_obj: dict[str, Any]) -> list[bytes]:
    start_usage = dict(usage_obj, output_tokens=1)
    events = [
        _event(
            b"message_start",
            dumps(
                {
                    "type": "message_start",
                    "message": {
                        "id": new_message_id(),
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                }
            ),
        )
    ]
    index = 0

    def open_block(block: dict[str, Any]) -> None:
        events.append(
            _event(
                b"content_block_start",
                dumps({"type": "content_block_start", "index": index, "content_block": block}),
            )
        )
        if index == 0:
            events.append(PING)  # as upstream: one ping after the first block opens

    def delta(payload: bytes) -> None:
        events.append(
            _event(
                b"content_block_delta",
                b'{"type":"content_block_delta","index":'
                + str(index).encode()
                + b',"delta":'
                + payload
                + b"}",
            )
        )

    def close_block() -> None:
        events.append(
            _event(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % index)
        )

    if plan.thinking:
        open_block({"type": "thinking", "thinking": "", "signature": ""})
        for piece in re.findall(r"\s*\S+", plan.thinking):
            delta(b'{"type":"thinking_delta","thinking":' + dumps(piece) + b"}")
        delta(
            b'{"type":"signature_delta","signature":' + dumps(sign_thinking(plan.thinking)) + b"}"
        )
        close_block()
        index += 1
    for block in _search_blocks(plan):
        if block["type"] == "server_tool_use":
            open_block({**block, "input": {}})
            delta(
                b'{"type":"input_json_delta","partial_json":'
                + dumps(dumps(block["input"]).decode())
                + b"}"
            )
        else:
            open_block(block)
        close_block()
        index += 1
    if plan.chunks:
        open_block({"type": "text", "text": ""})
        for chunk in plan.chunks:
            delta(b'{"type":"text_delta","text":' + dumps(chunk) + b"}")
        close_block()
        index += 1
    for name, arguments in plan.tool_calls:
        open_block({"type": "tool_use", "id": new_tool_id(), "name": name, "input": {}})
        for fragment in ["", *split_fragments(arguments)]:
            delta(b'{"type":"input_json_delta","partial_json":' + dumps(fragment) + b"}")
        close_block()
        index += 1
    if index == 0:
        events.append(PING)
    final_usage = {
        key: usage_obj[key]
        for key in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        )
    }
    if plan.web_search_query is not None:
        final_usage["server_tool_use"] = usage_with_searches(usage_obj, plan)["server_tool_use"]
    events.append(
        _event(
            b"message_delta",
            dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": plan.stop, "stop_sequence": plan.stop_sequence},
                    "usage": final_usage,
                }
            ),
        )
    )
    events.append(MESSAGE_STOP)
    return events


def stream_error_event(body: dict[str, Any]) -> bytes:
    return _event(b"error", dumps(body))


def models_list(models: list[str]) -> bytes:
    data = [
        {"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
        for model in models
    ]
    return dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
    )
