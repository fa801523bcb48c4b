"""Non-streaming response bodies translated between protocols: stop reasons, content,
tool calls, thinking, refusals, usage and ids. Stream counterparts live in streams.py
and share the tables and helpers below."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from gateway.protocols.ids import tool_id_to_anthropic, tool_id_to_openai
from gateway.protocols.usage import Usage

FINISH_REASON_BY_STOP_REASON = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # A paused server-tool turn is not a finished answer: "length" is OpenAI's only
    # "stopped before the end, send the conversation back for more" (docs/protocols.md).
    "pause_turn": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STOP_REASON_BY_FINISH_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# How OpenAI-side clients (Roo Code via OpenRouter's convention) carry Anthropic's
# signed thinking, so that it can be sent back in the next turn.
REASONING_FORMAT = "anthropic-claude-v1"
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASON_BY_STOP_REASON.get(stop_reason or "end_turn", "stop")


def stop_reason(finish: str | None) -> str:
    return STOP_REASON_BY_FINISH_REASON.get(finish or "stop", "end_turn")


def refusal_explanation(stop_details: Any) -> str:
    """What an Anthropic refusal (`stop_reason: "refusal"`) says, for OpenAI's
    `message.refusal`: `stop_details.explanation` when Anthropic gives one, else a
    sentence naming the policy category (the explanation can be null)."""
    details = stop_details if isinstance(stop_details, dict) else {}
    explanation = details.get("explanation")
    if isinstance(explanation, str) and explanation:
        return explanation
    category = details.get("category")
    named = f" (category: {category})" if isinstance(category, str) and category else ""
    return f"The model declined to continue this response{named}."


def refusal_stop_details(refusal: str) -> dict[str, Any]:
    """Anthropic's `stop_details` for an OpenAI refusal (OpenAI names no category)."""
    return {"type": "refusal", "category": None, "explanation": refusal}


def server_tool_use_of(usage: Any) -> dict[str, Any] | None:
    """Anthropic's `usage.server_tool_use` (server tools run and billed per call), as
    written, so that OpenAI-protocol clients see it too."""
    tools = usage.get("server_tool_use") if isinstance(usage, dict) else None
    return dict(tools) if isinstance(tools, dict) else None


def openai_id_from_anthropic(message_id: str | None) -> str:
    """`msg_abc` -> `chatcmpl-abc`, deterministic."""
    rest = message_id or ""
    rest = rest[4:] if rest.startswith("msg_") else rest
    return "chatcmpl-" + (rest or "anthropic")


def anthropic_id_from_openai(completion_id: str | None) -> str:
    """`chatcmpl-abc` -> `msg_abc`, deterministic, within Anthropic's id alphabet."""
    rest = completion_id or ""
    rest = rest[9:] if rest.startswith("chatcmpl-") else rest
    return "msg_" + (_UNSAFE_ID_CHARS.sub("_", rest) or "openai")


def reasoning_detail(index: int, block: dict[str, Any]) -> dict[str, Any] | None:
    """One Anthropic thinking block as an OpenRouter-style reasoning_details item."""
    if block.get("type") == "thinking":
        return {
            "type": "reasoning.text",
            "text": block.get("thinking") or "",
            "signature": block.get("signature") or None,
            "format": REASONING_FORMAT,
            "index": index,
        }
    if block.get("type") == "redacted_thinking":
        return {
            "type": "reasoning.encrypted",
            "data": block.get("data") or "",
            "format": REASONING_FORMAT,
            "index": index,
        }
    return None


def parse_tool_arguments(arguments: Any) -> dict[str, Any]:
    """OpenAI tool-call arguments as the object Anthropic's `input` must be. Broken
    JSON (a call cut off by max tokens) is kept whole rather than guessed at, so the
    client's tool validation reports it instead of running the tool with nothing."""
    if isinstance(arguments, dict):
        return arguments
    if arguments in (None, ""):
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": str(arguments)}


def openai_response_from_anthropic(
    resp: dict[str, Any], *, model: str, created: int | None = None
) -> dict[str, Any]:
    """An Anthropic message as an OpenAI chat completion."""
    texts: list[str] = []
    thinking: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in resp.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(
                {
                    "id": tool_id_to_openai(str(block.get("id") or "")),
                    "type": "function",
                    "function": {
                        "name": block.get("name") or "",
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            if kind == "thinking":
                thinking.append(block.get("thinking") or "")
            detail = reasoning_detail(len(details), block)
            if detail:
                details.append(detail)
        # Server-side tool blocks (web search and the like) have no Chat Completions
        # form; their outcome is in the text that follows them.
    text = "".join(texts)
    native = resp.get("stop_reason") or "end_turn"
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        # Anthropic's safety classifiers stopped the answer: OpenAI's refusal, with
        # what Anthropic says about it (the text before it stays in `content`).
        "refusal": refusal_explanation(resp.get("stop_details")) if native == "refusal" else None,
    }
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if details:
        message["reasoning_details"] = details
    usage = Usage.from_anthropic(resp.get("usage")).to_openai()
    tools = server_tool_use_of(resp.get("usage"))
    if tools is not None:
        usage["server_tool_use"] = tools
    return {
        "id": openai_id_from_anthropic(resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(native),
                # OpenRouter's convention: the upstream's own reason, which tells
                # pause_turn from max_tokens (both "length").
                "native_finish_reason": native,
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def anthropic_response_from_openai(resp: dict[str, Any], *, model: str) -> dict[str, Any]:
    """An OpenAI chat completion (its first choice) as an Anthropic message."""
    choices = resp.get("choices") or [{}]
    choice = choices[0] or {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        # No signature: OpenAI's reasoning cannot be verified by Anthropic, and
        # anthropic_request_prepare drops unsigned blocks if they are sent there later.
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(str(p.get("text") or "") for p in text if isinstance(p, dict))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal)
    if refused:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": tool_id_to_anthropic(str(call.get("id") or "")),
                "name": function.get("name") or "",
                "input": parse_tool_arguments(function.get("arguments")),
            }
        )
    out: dict[str, Any] = {
        "id": anthropic_id_from_openai(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": Usage.from_openai(resp.get("usage")).to_anthropic(),
    }
    if refused:
        # OpenAI reports a refusal in `message.refusal` and finishes with "stop":
        # Anthropic's client learns it from the stop reason and its stop_details.
        out["stop_reason"] = "refusal"
        out["stop_details"] = refusal_stop_details(str(refusal))
    return out
