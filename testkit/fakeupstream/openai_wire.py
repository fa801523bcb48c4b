"""OpenAI Chat Completions as the fake speaks it: request validation with OpenAI's own
error messages, the request turned into a `Conversation`, and the reply rendered as a
`chat.completion` object or as `chat.completion.chunk` SSE lines.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from .errors import dumps, openai_error
from .reply import (
    MEDIA_TOKENS,
    TOOL_CALL_TOKENS,
    TOOL_DEFINITION_TOKENS,
    Conversation,
    Plan,
    Unit,
    split_fragments,
    words,
)

KNOWN_PARAMETERS = frozenset(
    {
        "messages",
        "model",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
# OpenAI's reasoning models (o-series, GPT-5 and later) refuse `max_tokens`.
REASONING_MODEL = re.compile(r"^(o\d|gpt-([5-9]|\d\d))")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 8, "medium": 16, "high": 32, "xhigh": 64}
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
SYSTEM_FINGERPRINT = "fp_fake0000001"
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return words(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                total += words(part.get("text") or "")
            elif part.get("type") in ("image_url", "input_audio", "file"):
                total += MEDIA_TOKENS
    return total


def _reject_cache_control(obj: Any, path: str) -> None:
    """An OpenAI upstream has no cache_control: the gateway must strip it."""
    if isinstance(obj, dict):
        if "cache_control" in obj:
            name = f"{path}.cache_control" if path else "cache_control"
            raise openai_error(
                f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
            )
        for key, value in obj.items():
            if isinstance(value, list | dict):
                _reject_cache_control(value, f"{path}.{key}" if path else key)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, list | dict):
                _reject_cache_control(value, f"{path}[{i}]")


def _check_int_min(body: dict[str, Any], name: str, minimum: int) -> None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise openai_error(
            f"Invalid type for '{name}': expected an integer, but got {type(value).__name__} "
            "instead.",
            param=name,
            code="invalid_type",
        )
    if value is not None and value < minimum:
        raise openai_error(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )


def check_temperature(body: dict[str, Any]) -> None:
    """OpenAI's 0-2 range for `temperature`, with its own error (both OpenAI APIs)."""
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 2:
        above = temperature > 2
        raise openai_error(
            f"Invalid 'temperature': decimal {'above maximum' if above else 'below minimum'} "
            f"value. Expected a value {'<= 2' if above else '>= 0'}, but got {temperature} "
            "instead.",
            param="temperature",
            code="decimal_above_max_value" if above else "decimal_below_min_value",
        )


def parse_chat(body: Any) -> Conversation:
    """Validate like OpenAI does and read the conversation; raises WireError."""
    if not isinstance(body, dict):
        raise openai_error("Invalid type for body: expected an object.", code="invalid_type")
    unknown = [key for key in body if key not in KNOWN_PARAMETERS]
    if unknown:
        noun = "argument" if len(unknown) == 1 else "arguments"
        raise openai_error(f"Unrecognized request {noun} supplied: {', '.join(unknown)}")
    model = body.get("model")
    if not model or not isinstance(model, str):
        raise openai_error("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise openai_error(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list):
        raise openai_error(
            "Invalid type for 'messages': expected an array of objects.",
            param="messages",
            code="invalid_type",
        )
    if not messages:
        raise openai_error(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
            "got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    _check_int_min(body, "max_tokens", 1)
    _check_int_min(body, "max_completion_tokens", 1)
    if body.get("max_tokens") is not None and REASONING_MODEL.match(str(body.get("model"))):
        raise openai_error(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            param="max_tokens",
            code="unsupported_parameter",
        )
    check_temperature(body)
    tools_raw = body.get("tools") or []
    for name in ("tool_choice", "parallel_tool_calls"):
        if body.get(name) is not None and not tools_raw:
            raise openai_error(
                f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are specified.",
                param=name,
            )
    if body.get("stream_options") is not None and not body.get("stream"):
        raise openai_error(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    _reject_cache_control(messages, "messages")
    if tools_raw:
        _reject_cache_control(tools_raw, "tools")

    units: list[Unit] = []
    tools: list[tuple[str, dict[str, Any]]] = []
    for i, tool in enumerate(tools_raw):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            function = {}
        tool_name = function.get("name")
        if not isinstance(tool_name, str):
            raise openai_error(
                f"Missing required parameter: 'tools[{i}].function.name'.",
                param=f"tools[{i}].function.name",
                code="missing_required_parameter",
            )
        if not _TOOL_NAME.match(tool_name):
            raise openai_error(
                f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected "
                "a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                param=f"tools[{i}].function.name",
                code="invalid_value",
            )
        tools.append((tool_name, function.get("parameters") or {}))
        tokens = TOOL_DEFINITION_TOKENS + words(function.get("description") or "")
        units.append(Unit(tokens, tool))

    pending: dict[str, int] = {}  # tool_call_id -> index of the assistant that made it
    answered: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise openai_error(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'function', 'tool', and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending or call_id in answered:
                raise openai_error(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            answered.add(call_id)
        else:
            _check_all_answered(pending, answered)
            pending, answered = {}, set()
        tokens = _content_tokens(message.get("content"))
        if role == "assistant":
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict) and call.get("id"):
                    pending[call["id"]] = i
                tokens += TOOL_CALL_TOKENS
        units.append(Unit(tokens, message))
    _check_all_answered(pending, answered)

    last_kind, last_text = _last_turn(messages)
    conv = Conversation(
        model=model, units=units, last_kind=last_kind, last_text=last_text, tools=tools
    )
    choice = body.get("tool_choice")
    if choice in ("none", "required"):
        conv.tool_mode = choice
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        conv.tool_mode, conv.forced_tool = "tool", choice["function"].get("name")
    conv.parallel = body.get("parallel_tool_calls") is not False
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise openai_error(
            "Invalid type for 'stop': expected one of a string or array of strings, but got "
            f"{'an integer' if isinstance(stop, int) else 'another type'} instead.",
            param="stop",
            code="invalid_type",
        )
    conv.stop = [stop] if isinstance(stop, str) else list(stop or ())
    limit = body.get("max_completion_tokens")
    conv.max_tokens = limit if limit is not None else body.get("max_tokens")
    conv.reasoning_tokens = REASONING_TOKENS.get(body.get("reasoning_effort") or "none", 0)
    return conv


def _check_all_answered(pending: dict[str, int], answered: set[str]) -> None:
    missing = [call_id for call_id in pending if call_id not in answered]
    if missing:
        raise openai_error(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(missing)}",
            param=f"messages.[{pending[missing[0]]}].role",
        )


def _last_turn(messages: list[dict[str, Any]]) -> tuple[str, str]:
    results = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.append(_text_of(message.get("content")))
    if results:
        return "tool_result", " | ".join(reversed(results))
    for message in reversed(messages):
        if message["role"] == "user":
            return "user", _text_of(message.get("content"))
    return "user", ""


def new_completion_id() -> str:
    return "chatcmpl-" + os.urandom(15).hex()[:29]


def new_call_id() -> str:
    return "call_" + os.urandom(12).hex()


def usage(prompt_tokens: int, cached_tokens: int, plan: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": prompt_tokens + plan.output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": plan.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(model: str, plan: Plan, usage_obj: dict[str, Any]) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": plan.text,
        "refusal": None,
        "annotations": [],
    }
    if plan.tool_calls:
        message["content"] = plan.text or None
        message["tool_calls"] = [
            {
                "id": new_call_id(),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            for name, arguments in plan.tool_calls
        ]
    return dumps(
        {
            "id": new_completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": FINISH_REASONS[plan.stop],
                }
            ],
            "usage": usage_obj,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )


def stream_events(
    model: str, plan: Plan, usage_obj: dict[str, Any], include_usage: bool
) -> list[bytes]:
    """The SSE lines of a streamed reply, `data: [DONE]` included. Every chunk shares a
    head that is serialised once; only each delta is encoded per chunk."""
    head = dumps(
        {
            "id": new_completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )[:-1]
    prefix = b"data: " + head + b',"choices":[{"index":0,"delta":'
    tail = (
        b',"logprobs":null,"finish_reason":null}]'
        + (b',"usage":null' if include_usage else b"")
        + b"}\n\n"
    )
    events = [prefix + b'{"role":"assistant","content":"","refusal":null}' + tail]
    for chunk in plan.chunks:
        events.append(prefix + b'{"content":' + dumps(chunk) + b"}" + tail)
    for index, (name, arguments) in enumerate(plan.tool_calls):
        first = {
            "index": index,
            "id": new_call_id(),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        events.append(prefix + b'{"tool_calls":[' + dumps(first) + b"]}" + tail)
        for fragment in split_fragments(arguments):
            events.append(
                prefix
                + b'{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}'
                % (index, dumps(fragment))
                + tail
            )
    finish = FINISH_REASONS[plan.stop].encode()
    events.append(
        prefix
        + b'{},"logprobs":null,"finish_reason":"'
        + finish
        + b'"}]'
        + (b',"usage":null' if include_usage else b"")
        + b"}\n\n"
    )
    if include_usage:
        events.append(b"data: " + head + b',"choices":[],"usage":' + dumps(usage_obj) + b"}\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def stream_error_event(body: dict[str, Any]) -> bytes:
    return b"data: " + dumps(body) + b"\n\n"


def models_list(models: list[str]) -> bytes:
    return dumps(
        {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
                for model in models
            ],
        }
    )
