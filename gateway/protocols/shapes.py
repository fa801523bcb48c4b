"""The shape of a request body, checked before anything is sent upstream: every field a
protocol defines has the JSON type its API reference gives, so a malformed request is
the client's 400 naming the field, never an upstream's 5xx (which would count against
that upstream's health for everyone) nor a gateway crash.

Only types are checked here, not values: the upstream (or the translator) judges
values, and answers in its own words. Unknown fields pass: each protocol's preparation
decides what to do with them.
"""

from __future__ import annotations

from typing import Any

from gateway.protocols.errors import GatewayError

# JSON types by name; "number" admits integers, "integer" refuses booleans.
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}

# field -> the types it may have (null is always allowed for an optional field).
_COMMON = {
    "model": ("string",),
    "stream": ("boolean",),
    "metadata": ("object",),
    "temperature": ("number",),
    "top_p": ("number",),
    "tools": ("array",),
    "parallel_tool_calls": ("boolean",),
}
_SHAPES: dict[str, dict[str, tuple[str, ...]]] = {
    "openai": {
        **_COMMON,
        "messages": ("array",),
        "stream_options": ("object",),
        "stop": ("string", "array"),
        "n": ("integer",),
        "max_tokens": ("integer",),
        "max_completion_tokens": ("integer",),
        "presence_penalty": ("number",),
        "frequency_penalty": ("number",),
        "logit_bias": ("object",),
        "logprobs": ("boolean",),
        "top_logprobs": ("integer",),
        "seed": ("integer",),
        "user": ("string",),
        "tool_choice": ("string", "object"),
        "response_format": ("object",),
        "reasoning_effort": ("string",),
        "modalities": ("array",),
        "audio": ("object",),
        "prediction": ("object",),
        "web_search_options": ("object",),
        "safety_identifier": ("string",),
        "prompt_cache_key": ("string",),
        "service_tier": ("string",),
        "store": ("boolean",),
        "verbosity": ("string",),
    },
    "anthropic": {
        **_COMMON,
        "messages": ("array",),
        "system": ("string", "array"),
        "max_tokens": ("integer",),
        "stop_sequences": ("array",),
        "top_k": ("integer",),
        "tool_choice": ("object",),
        "thinking": ("object",),
        "output_config": ("object",),
        "output_format": ("object",),
        "context_management": ("object",),
        "mcp_servers": ("array",),
        "container": ("string", "object"),
        "service_tier": ("string",),
        "cache_control": ("object",),
    },
    "responses": {
        **_COMMON,
        "input": ("string", "array"),
        "instructions": ("string",),
        "max_output_tokens": ("integer",),
        "max_tool_calls": ("integer",),
        "tool_choice": ("string", "object"),
        "text": ("object",),
        "reasoning": ("object",),
        "include": ("array",),
        "store": ("boolean",),
        "stream_options": ("object",),
        "previous_response_id": ("string",),
        "prompt_cache_key": ("string",),
        "safety_identifier": ("string",),
        "service_tier": ("string",),
        "truncation": ("string",),
        "user": ("string",),
        "top_logprobs": ("integer",),
        "background": ("boolean",),
        "conversation": ("string", "object"),
        "prompt": ("object",),
        "client_metadata": ("object",),
    },
}
_ITEM_SHAPES: dict[str, tuple[str, ...]] = {
    # array fields whose items must all be of one type
    "messages": ("object",),
    "tools": ("object",),
    "stop": ("string",),
    "stop_sequences": ("string",),
    "include": ("string",),
    "system": ("object",),
    "input": ("object",),
}


def _is(value: Any, names: tuple[str, ...]) -> bool:
    for name in names:
        if name in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _TYPES[name]):
            return True
    return False


def _wrong(param: str, names: tuple[str, ...], value: Any) -> GatewayError:
    kinds = " or ".join("an " + n if n[0] in "aeiou" else "a " + n for n in names)
    got = type(value).__name__
    return GatewayError(
        400,
        f"`{param}` must be {kinds} (got {got}).",
        code="invalid_request",
        param=param,
        type="invalid_request_error",
    )


def request_shape_check(protocol: str, body: dict[str, Any]) -> None:
    """Raise a 400 naming the first field whose JSON type is wrong."""
    shapes = _SHAPES[protocol]
    for name, value in body.items():
        allowed = shapes.get(name)
        if allowed is None or value is None:
            continue
        if not _is(value, allowed):
            raise _wrong(name, allowed, value)
        item = _ITEM_SHAPES.get(name)
        if item is not None and isinstance(value, list):
            for index, element in enumerate(value):
                if not _is(element, item):
                    raise _wrong(f"{name}[{index}]", item, element)
    messages = body.get("messages") if protocol != "responses" else None
    for index, message in enumerate(messages or ()):
        _message_check(message, f"messages[{index}]")


def _message_check(message: dict[str, Any], param: str) -> None:
    role = message.get("role")
    if not isinstance(role, str):
        raise _wrong(f"{param}.role", ("string",), role)
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise _wrong(f"{param}.content", ("string", "array"), content)
    for index, part in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(part, dict):
            raise _wrong(f"{param}.content[{index}]", ("object",), part)
