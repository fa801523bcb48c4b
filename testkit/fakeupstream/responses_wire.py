"""OpenAI Responses as the fake speaks it (`POST /v1/responses`): request validation
with OpenAI's own error messages, the request turned into a `Conversation` (the same
reply rules and token formulas as Chat Completions), and the reply rendered as a
`response` object or as Responses SSE events (`event:` lines, `sequence_number`) by
`responses_render`.

Nothing is stored, as with `store: false` upstream: `previous_response_id`, item
references and reasoning items without `encrypted_content` are refused. With
reasoning requested (`reasoning.effort` other than none) the reply starts with a
reasoning item: its summary is shown when `reasoning.summary` is set, and its
`encrypted_content` (an opaque token the fake signs and checks when it comes back, as
OpenAI does) when `include` has "reasoning.encrypted_content".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from .errors import openai_error
from .openai_wire import REASONING_TOKENS, check_temperature
from .reply import (
    MEDIA_TOKENS,
    THINKING_TEXT,
    TOOL_CALL_TOKENS,
    TOOL_DEFINITION_TOKENS,
    Conversation,
    Unit,
    words,
)

KNOWN_PARAMETERS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "background",
        "client_metadata",
        "context_management",
        "conversation",
        "include",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
ITEM_TYPES = (
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
    "web_search_call",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "code_interpreter_call",
    "image_generation_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call",
    "custom_tool_call_output",
    "compaction",
)
TOOL_TYPES = (
    "function",
    "custom",
    "namespace",
    "web_search",
    "web_search_preview",
    "web_search_2025_08_26",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "computer",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "tool_search",
)
ROLES = ("user", "assistant", "system", "developer")
INPUT_PARTS = ("input_text", "input_image", "input_file", "input_audio")
OUTPUT_PARTS = ("output_text", "refusal")
ENCRYPTED_INCLUDE = "reasoning.encrypted_content"
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_SIGNING_KEY = b"tollgate-fake-upstream-reasoning"
_ENCRYPTED_PREFIX = "gAAAAA"  # what OpenAI's encrypted reasoning looks like


@dataclass(slots=True)
class Options:
    """How the reply is rendered (what the request asked to see)."""

    reasoning: bool = False
    summary: bool = False
    encrypted: bool = False
    echo: dict[str, Any] | None = None  # request fields the response object echoes


def encrypt_reasoning(item_id: str) -> str:
    """An opaque, signed token standing for the reasoning of `item_id`."""
    payload = f"{item_id}:{THINKING_TEXT}".encode()
    mac = hmac.new(_SIGNING_KEY, payload, hashlib.sha256).digest()
    return _ENCRYPTED_PREFIX + base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def _reasoning_verifies(token: str) -> bool:
    if not token.startswith(_ENCRYPTED_PREFIX):
        return False
    data = token[len(_ENCRYPTED_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except ValueError:
        return False
    mac, payload = raw[:32], raw[32:]
    return hmac.compare_digest(mac, hmac.new(_SIGNING_KEY, payload, hashlib.sha256).digest())


def _missing(name: str) -> Exception:
    return openai_error(
        f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
    )


def _invalid_type(name: str, expected: str, value: Any) -> Exception:
    return openai_error(
        f"Invalid type for '{name}': expected {expected}, but got {type(value).__name__} instead.",
        param=name,
        code="invalid_type",
    )


def _invalid_value(name: str, value: Any, supported: tuple[str, ...]) -> Exception:
    listed = ", ".join(f"'{s}'" for s in supported)
    return openai_error(
        f"Invalid value: '{value}'. Supported values are: {listed}.",
        param=name,
        code="invalid_value",
    )


def _text_parts(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        str(p.get("text") or "")
        for p in content or ()
        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text")
    )


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return words(content)
    total = 0
    for part in content or ():
        if not isinstance(part, dict):
            continue
        if part.get("type") in ("input_text", "output_text"):
            total += words(part.get("text") or "")
        elif part.get("type") == "refusal":
            total += words(part.get("refusal") or "")
        elif part.get("type") in ("input_image", "input_file", "input_audio"):
            total += MEDIA_TOKENS
    return total


def parse_responses(body: Any) -> tuple[Conversation, Options]:
    """Validate like OpenAI does and read the conversation; raises WireError."""
    if not isinstance(body, dict):
        raise openai_error("Invalid type for body: expected an object.", code="invalid_type")
    for key in body:
        if key not in KNOWN_PARAMETERS:
            raise openai_error(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    model = body.get("model")
    if not model or not isinstance(model, str):
        raise _missing("model")
    if body.get("previous_response_id"):
        previous = body["previous_response_id"]
        raise openai_error(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    value = body.get("max_output_tokens")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid_type("max_output_tokens", "an integer", value)
        if value < 16:
            raise openai_error(
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value "
                f">= 16, but got {value} instead.",
                param="max_output_tokens",
                code="integer_below_min_value",
            )
    check_temperature(body)
    include = body.get("include") or []
    if not isinstance(include, list):
        raise _invalid_type("include", "an array of strings", include)

    units: list[Unit] = []
    tools = _tools(body.get("tools"), units)
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _invalid_type("instructions", "a string", instructions)
        units.append(Unit(words(instructions), {"instructions": instructions}))

    raw = body.get("input")
    if raw is None:
        raise _missing("input")
    items: list[dict[str, Any]]
    if isinstance(raw, str):
        items = [{"type": "message", "role": "user", "content": raw}]
    elif isinstance(raw, list):
        items = raw
    else:
        raise _invalid_type("input", "a string or an array of input items", raw)
    _check_items(items, units)

    last_kind, last_text = _last_turn(items)
    conv = Conversation(
        model=model, units=units, last_kind=last_kind, last_text=last_text, tools=tools
    )
    choice = body.get("tool_choice")
    if choice in ("none", "required"):
        conv.tool_mode = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        conv.tool_mode, conv.forced_tool = "tool", choice.get("name")
    conv.parallel = body.get("parallel_tool_calls") is not False
    conv.max_tokens = value
    reasoning = body.get("reasoning") or {}
    if not isinstance(reasoning, dict):
        raise _invalid_type("reasoning", "an object", reasoning)
    effort = reasoning.get("effort") or "none"
    if effort not in REASONING_TOKENS:
        raise _invalid_value("reasoning.effort", effort, tuple(REASONING_TOKENS))
    conv.reasoning_tokens = REASONING_TOKENS[effort]
    echo = {
        key: body.get(key)
        for key in (
            "instructions",
            "max_output_tokens",
            "parallel_tool_calls",
            "prompt_cache_key",
            "reasoning",
            "safety_identifier",
            "store",
            "temperature",
            "text",
            "tool_choice",
            "tools",
            "top_p",
            "truncation",
            "user",
            "metadata",
        )
    }
    options = Options(
        reasoning=conv.reasoning_tokens > 0,
        summary=bool(reasoning.get("summary")),
        encrypted=ENCRYPTED_INCLUDE in include,
        echo=echo,
    )
    return conv, options


def _tools(raw: Any, units: list[Unit]) -> list[tuple[str, dict[str, Any]]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _invalid_type("tools", "an array of objects", raw)
    tools: list[tuple[str, dict[str, Any]]] = []
    for i, tool in enumerate(raw):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in TOOL_TYPES:
            raise _invalid_value(f"tools[{i}].type", kind, TOOL_TYPES)
        if kind != "function":
            units.append(Unit(TOOL_DEFINITION_TOKENS, tool))
            continue
        name = tool.get("name")
        if not isinstance(name, str):
            raise _missing(f"tools[{i}].name")
        if not _TOOL_NAME.match(name):
            raise openai_error(
                f"Invalid 'tools[{i}].name': string does not match pattern. Expected a "
                "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                param=f"tools[{i}].name",
                code="invalid_value",
            )
        tools.append((name, tool.get("parameters") or {}))
        units.append(Unit(TOOL_DEFINITION_TOKENS + words(tool.get("description") or ""), tool))
    return tools


def _check_items(items: list[Any], units: list[Unit]) -> None:
    calls: dict[str, int] = {}  # call_id -> input index
    answered: set[str] = set()
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _invalid_type(where, "an object", item)
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if kind not in ITEM_TYPES:
            raise _invalid_value(f"{where}.type", kind, ITEM_TYPES)
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise _invalid_value(f"{where}.role", role, ROLES)
            content = item.get("content")
            if content is None:
                raise _missing(f"{where}.content")
            if isinstance(content, list):
                allowed = (*OUTPUT_PARTS, "input_text") if role == "assistant" else INPUT_PARTS
                for j, part in enumerate(content):
                    ptype = part.get("type") if isinstance(part, dict) else None
                    if ptype not in allowed:
                        raise _invalid_value(f"{where}.content[{j}].type", ptype, allowed)
                    if ptype == "input_image" and not (
                        part.get("image_url") or part.get("file_id")
                    ):
                        raise _missing(f"{where}.content[{j}].image_url")
            elif not isinstance(content, str):
                raise _invalid_type(f"{where}.content", "a string or an array", content)
            units.append(Unit(_content_tokens(content), item))
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                if not isinstance(item.get(name), str):
                    raise _missing(f"{where}.{name}")
            calls[item["call_id"]] = i
            units.append(Unit(TOOL_CALL_TOKENS, item))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise _missing(f"{where}.call_id")
            if call_id not in calls:
                raise openai_error(
                    f"No tool call found for function call output with call_id {call_id}.",
                    param="input",
                )
            answered.add(call_id)
            output = item.get("output")
            if output is None:
                raise _missing(f"{where}.output")
            units.append(Unit(_content_tokens(output), item))
        elif kind == "reasoning":
            if not isinstance(item.get("summary"), list):
                raise _missing(f"{where}.summary")
            encrypted = item.get("encrypted_content")
            if encrypted is None:
                # Reasoning is looked up by id unless it comes encrypted: the fake
                # stores nothing, as with `store: false`.
                raise openai_error(
                    f"Item with id '{item.get('id')}' not found. Items are not persisted "
                    "when `store` is set to false. Try again with `store` set to true, or "
                    "remove this item from your input.",
                    param="input",
                )
            if not isinstance(encrypted, str) or not _reasoning_verifies(encrypted):
                raise openai_error(
                    f"The encrypted content for item {item.get('id')} could not be verified.",
                    param="input",
                    code="invalid_encrypted_content",
                )
            units.append(Unit(0, item))
        elif kind == "item_reference":
            raise openai_error(
                f"Item with id '{item.get('id')}' not found.", param="input", code=None
            )
        else:
            units.append(Unit(TOOL_CALL_TOKENS, item))
    missing = [call_id for call_id in calls if call_id not in answered]
    if missing:
        raise openai_error(f"No tool output found for function call {missing[0]}.", param="input")


def _last_turn(items: list[dict[str, Any]]) -> tuple[str, str]:
    results = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            if item.get("type") == "function_call":
                continue
            break
        output = item.get("output")
        results.append(output if isinstance(output, str) else _text_parts(output))
    if results:
        return "tool_result", " | ".join(reversed(results))
    for item in reversed(items):
        if (item.get("type") or "message") == "message" and item.get("role") == "user":
            return "user", _text_parts(item.get("content"))
    return "user", ""
