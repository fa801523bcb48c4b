"""OpenAI Responses objects built from the Chat Completions hub (non-streaming), and
the pieces the stream adapter shares: ids, output items, the response envelope.

    responses_from_chat       a chat completion        -> a Responses `response`
    responses_from_anthropic  an Anthropic message     -> (via Chat) a `response`

The envelope echoes the request's settings (instructions, tools, tool_choice, text,
reasoning, ...) as OpenAI does, so it parses as the SDK's `Response`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from gateway.protocols.reasoning_carrier import mint_reasoning
from gateway.protocols.responses import openai_response_from_anthropic
from gateway.protocols.usage import Usage

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
INCOMPLETE_REASON_BY_FINISH = {"length": "max_output_tokens", "content_filter": "content_filter"}


# --- ids ----------------------------------------------------------------------------
def _rest(value: str | None, prefixes: tuple[str, ...]) -> str:
    rest = value or ""
    for prefix in prefixes:
        if rest.startswith(prefix):
            rest = rest[len(prefix) :]
            break
    return _UNSAFE.sub("_", rest)


def response_id_from_chat(completion_id: str | None) -> str:
    """`chatcmpl-abc` -> `resp_abc` (deterministic)."""
    return "resp_" + (_rest(completion_id, ("chatcmpl-", "msg_")) or "tollgate")


def item_ids(response_id: str) -> tuple[str, str]:
    """The message item's id and the reasoning items' id prefix for a response."""
    rest = response_id.removeprefix("resp_")
    return f"msg_{rest}", f"rs_{rest}"


def function_item_id(call_id: str) -> str:
    return "fc_" + (_rest(call_id, ("call_", "toolu_")) or "call")


# --- items --------------------------------------------------------------------------
def reasoning_item(
    item_id: str, summaries: list[str], details: list[dict[str, Any]]
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": s} for s in summaries],
    }
    encrypted = mint_reasoning(details)
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": parts,
    }


def function_call_item(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": function_item_id(call_id),
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


# --- the envelope -------------------------------------------------------------------
def response_envelope(
    *,
    response_id: str,
    model: str,
    created_at: int,
    request: dict[str, Any] | None,
    status: str,
) -> dict[str, Any]:
    """Everything of a `response` but its output and usage, echoing the request."""
    req = request or {}
    reasoning = req.get("reasoning") if isinstance(req.get("reasoning"), dict) else {}
    text = req.get("text") if isinstance(req.get("text"), dict) else {}
    tools = [
        t for t in req.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"
    ]
    instructions = req.get("instructions")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": instructions if isinstance(instructions, (str, list)) else None,
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": req.get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": req.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "prompt_cache_key": req.get("prompt_cache_key"),
        "reasoning": {
            "effort": (reasoning or {}).get("effort"),
            "summary": (reasoning or {}).get("summary"),
        },
        "safety_identifier": req.get("safety_identifier"),
        "service_tier": "default",
        "store": False,
        "temperature": req.get("temperature", 1.0),
        "text": {
            "format": (text or {}).get("format") or {"type": "text"},
            "verbosity": (text or {}).get("verbosity") or "medium",
        },
        "tool_choice": req.get("tool_choice") or "auto",
        "tools": tools,
        "top_logprobs": 0,
        "top_p": req.get("top_p", 1.0),
        "truncation": req.get("truncation") or "disabled",
        "usage": None,
        "user": req.get("user"),
        "metadata": req.get("metadata") if isinstance(req.get("metadata"), dict) else {},
    }


def finish_status(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """A chat finish_reason as the response's status and incomplete_details."""
    reason = INCOMPLETE_REASON_BY_FINISH.get(finish_reason or "")
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


# --- non-streaming ------------------------------------------------------------------
def responses_from_chat(
    resp: dict[str, Any],
    *,
    model: str,
    request: dict[str, Any] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A chat completion (its first choice) as a Responses `response`."""
    choice = (resp.get("choices") or [{}])[0] or {}
    message = choice.get("message") or {}
    response_id = response_id_from_chat(resp.get("id"))
    message_id, reasoning_prefix = item_ids(response_id)
    status, incomplete = finish_status(choice.get("finish_reason"))
    created_at = int(time.time()) if created is None else created
    out = response_envelope(
        response_id=response_id,
        model=model,
        created_at=created_at,
        request=request,
        status=status,
    )
    output: list[dict[str, Any]] = []
    details = [d for d in message.get("reasoning_details") or [] if isinstance(d, dict)]
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    summaries = [str(d.get("text") or "") for d in details if d.get("type") == "reasoning.text"]
    if not summaries and isinstance(reasoning, str) and reasoning:
        summaries = [reasoning]
    if summaries or details:
        output.append(reasoning_item(f"{reasoning_prefix}_0", summaries, details))
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("text")
        )
    if isinstance(content, str) and content:
        parts.append(output_text(content))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    item_status = "incomplete" if status == "incomplete" else "completed"
    if parts:
        output.append(message_item(message_id, parts, item_status))
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        arguments = function.get("arguments")
        output.append(
            function_call_item(
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else "{}",
                item_status,
            )
        )
    out["output"] = output
    out["incomplete_details"] = incomplete
    if status == "completed":
        out["completed_at"] = created_at
    out["usage"] = Usage.from_openai(resp.get("usage")).to_responses()
    return out


def responses_from_anthropic(
    resp: dict[str, Any],
    *,
    model: str,
    request: dict[str, Any] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """An Anthropic message as a Responses `response`, through the Chat hub."""
    chat = openai_response_from_anthropic(resp, model=model, created=created)
    return responses_from_chat(chat, model=model, request=request, created=created)


def output_text_of(response: dict[str, Any]) -> str:
    """All output_text of a response, joined (what the SDK's `output_text` gives)."""
    return "".join(
        part.get("text") or ""
        for item in response.get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    )
