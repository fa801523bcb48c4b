"""OpenAI Chat Completions request -> Anthropic Messages request.

One function, `anthropic_request_from_openai`, and the message rows of the table in
docs/protocols.md ("Requests"); the parameter rows are in request_anthropic_params.py.
What has no Anthropic equivalent raises TranslationError (400) naming the field.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from gateway.protocols import request_anthropic_params as params
from gateway.protocols.ids import tool_id_to_anthropic, tool_id_to_openai
from gateway.protocols.request_anthropic_params import with_cache_control
from gateway.protocols.request_common import (
    ANTHROPIC_IMAGE_TYPES,
    TranslationError,
    is_blank,
    parse_data_url,
    requested_max_tokens,
    resolve_max_tokens,
    text_of_parts,
)

# Accepted only with their neutral value: anything else changes the output in a way
# Anthropic cannot reproduce.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "audio": (None,),
    "functions": (None, []),
    "function_call": (None,),
    "web_search_options": (None,),
}
_WHY = {
    "n": "Anthropic returns one choice per request: send n=1 (or omit it) and make "
    "several requests instead.",
    "functions": "The legacy `functions` field is not supported: use `tools`.",
    "function_call": "The legacy `function_call` field is not supported: use `tool_choice`.",
}


def anthropic_request_from_openai(
    body: dict[str, Any], *, upstream_model: str, max_output_tokens: int
) -> dict[str, Any]:
    """Translate an OpenAI chat completion request for an Anthropic upstream."""
    _reject_untranslatable(body)
    requested = requested_max_tokens(
        body["max_completion_tokens"]
        if body.get("max_completion_tokens") is not None
        else body.get("max_tokens"),
        param="max_completion_tokens"
        if body.get("max_completion_tokens") is not None
        else "max_tokens",
    )
    out: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": resolve_max_tokens(requested, max_output_tokens),
    }
    system, messages = _messages(body.get("messages"))
    if system:
        out["system"] = system
    out["messages"] = messages

    tools = params.tools(body.get("tools"))
    if not tools and _history_has_tools(messages):
        # Anthropic refuses tool_use/tool_result blocks without tool definitions; a
        # request without tools means "no tools may be called now", which is
        # tool_choice none over stubs of the tools the history used.
        tools = _stub_tools(messages)
        out["tool_choice"] = {"type": "none"}
    elif tools:
        choice = params.tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if tools:
        out["tools"] = tools

    stops = params.stop_sequences(body.get("stop"))
    if stops:
        out["stop_sequences"] = stops
    params.sampling(body, out)
    params.response_format(body.get("response_format"), out)
    params.reasoning(body.get("reasoning_effort"), out, upstream_model)

    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if body.get("stream"):
        out["stream"] = True
    return out


def _reject_untranslatable(body: dict[str, Any]) -> None:
    for field, neutral in _NEUTRAL.items():
        value = body.get(field)
        if value not in neutral:
            raise TranslationError(
                _WHY.get(
                    field,
                    f"`{field}` has no equivalent for this model "
                    "(served through Anthropic's Messages API): remove it.",
                ),
                param=field,
            )
    modalities = body.get("modalities")
    if modalities not in (None, [], ["text"]):
        raise TranslationError(
            "This model only produces text: set modalities to ['text'].", param="modalities"
        )


# --- messages -----------------------------------------------------------------------
def _messages(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(raw, list) or not raw:
        raise TranslationError("`messages` must be a non-empty list.", param="messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []  # {"role", "content": [blocks]}
    for index, message in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise TranslationError("Each message must be an object.", param=param)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_system_blocks(message, param))
        elif role == "user":
            _append(turns, "user", _user_blocks(message, param))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, param))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, param)])
        else:
            raise TranslationError(
                f"Message role {role!r} is not supported (use system, developer, user, "
                "assistant or tool).",
                param=f"{param}.role",
            )
    turns = [turn for turn in turns if turn["content"]]
    if not turns:
        raise TranslationError(
            "`messages` must contain at least one user or assistant message with content.",
            param="messages",
        )
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic: tool_result blocks come first in their user message.
            turn["content"].sort(key=lambda block: block.get("type") != "tool_result")
    _check_tool_pairs(turns)
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Consecutive turns of one role become one Anthropic message (tool messages and
    the user message after them included)."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _mark_last(blocks: list[dict[str, Any]], message: dict[str, Any]) -> list[dict[str, Any]]:
    """Some clients put cache_control on the message rather than on a part."""
    if blocks and isinstance(message.get("cache_control"), dict):
        blocks[-1].setdefault("cache_control", copy.deepcopy(message["cache_control"]))
    return blocks


def _system_blocks(message: dict[str, Any], param: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        blocks = [] if is_blank(content) else [{"type": "text", "text": content}]
        return _mark_last(blocks, message)
    if not isinstance(content, list):
        raise TranslationError("System message content must be text.", param=f"{param}.content")
    blocks = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise TranslationError(
                "System messages may only contain text parts.", param=f"{param}.content[{index}]"
            )
        if not is_blank(part.get("text")):
            blocks.append(with_cache_control({"type": "text", "text": part["text"]}, part))
    return _mark_last(blocks, message)


def _user_blocks(message: dict[str, Any], param: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        blocks = [] if is_blank(content) else [{"type": "text", "text": content}]
        return _mark_last(blocks, message)
    if not isinstance(content, list):
        raise TranslationError(
            "User message content must be a string or a list of parts.", param=f"{param}.content"
        )
    blocks = []
    for index, part in enumerate(content):
        block = _user_part(part, f"{param}.content[{index}]")
        if block is not None:
            blocks.append(with_cache_control(block, part))
    return _mark_last(blocks, message)


def _user_part(part: Any, param: str) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        text = part.get("text")
        return None if is_blank(text) else {"type": "text", "text": text}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise TranslationError("`image_url.url` must be a string.", param=param)
        if url.startswith(("http://", "https://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        media_type, data = parse_data_url(url, param=f"{param}.image_url.url")
        if media_type not in ANTHROPIC_IMAGE_TYPES:
            raise TranslationError(
                f"Image type {media_type!r} is not supported by this model (use JPEG, PNG, "
                "GIF or WebP).",
                param=f"{param}.image_url.url",
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if kind == "file":
        file = part.get("file") or {}
        data_url = file.get("file_data")
        if not isinstance(data_url, str):
            raise TranslationError(
                "Files must be sent inline as `file.file_data` (a base64 data URL); file "
                "ids are not supported for this model.",
                param=param,
            )
        media_type, data = parse_data_url(data_url, param=f"{param}.file.file_data")
        if media_type != "application/pdf":
            raise TranslationError(
                "Only PDF files are supported for this model.", param=f"{param}.file.file_data"
            )
        block: dict[str, Any] = {
            "type": "document",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
        if file.get("filename"):
            block["title"] = file["filename"]
        return block
    raise TranslationError(
        f"Content part type {kind!r} is not supported for this model.", param=param
    )


def _assistant_blocks(message: dict[str, Any], param: str) -> list[dict[str, Any]]:
    if message.get("function_call"):
        raise TranslationError(_WHY["function_call"], param=f"{param}.function_call")
    # Signed thinking first: Anthropic wants it back unchanged and first in the turn.
    blocks = _thinking_blocks(message.get("reasoning_details"))
    content = message.get("content")
    if isinstance(content, list):
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("text", "refusal"):
                raise TranslationError(
                    "Assistant messages may only contain text or refusal parts.",
                    param=f"{param}.content[{index}]",
                )
            text = part.get("text") if kind == "text" else part.get("refusal")
            if not is_blank(text):
                blocks.append(with_cache_control({"type": "text", "text": text}, part))
    else:
        text = text_of_parts(content, param=f"{param}.content")
        if not is_blank(text):
            blocks.append({"type": "text", "text": text})
    for index, call in enumerate(message.get("tool_calls") or []):
        blocks.append(_tool_use(call, f"{param}.tool_calls[{index}]"))
    return _mark_last(blocks, message)


def _thinking_blocks(details: Any) -> list[dict[str, Any]]:
    """OpenRouter-style `reasoning_details` (which we emit, and Roo Code echoes back)
    carry Anthropic's signed thinking across an OpenAI client."""
    blocks: list[dict[str, Any]] = []
    for item in details if isinstance(details, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "reasoning.text" and item.get("signature"):
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": str(item.get("text") or ""),
                    "signature": item["signature"],
                }
            )
        elif item.get("type") == "reasoning.encrypted" and item.get("data"):
            blocks.append({"type": "redacted_thinking", "data": item["data"]})
    return blocks


def _tool_use(call: Any, param: str) -> dict[str, Any]:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise TranslationError("Only function tool calls are supported.", param=param)
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if arguments in (None, ""):
        parsed: Any = {}
    else:
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            raise TranslationError(
                "Tool call arguments are not valid JSON; Anthropic needs them as an object.",
                param=f"{param}.function.arguments",
            ) from None
    if not isinstance(parsed, dict):
        raise TranslationError(
            "Tool call arguments must be a JSON object.", param=f"{param}.function.arguments"
        )
    if not isinstance(call.get("id"), str) or not function.get("name"):
        raise TranslationError("Tool calls need an `id` and a `function.name`.", param=param)
    return {
        "type": "tool_use",
        "id": tool_id_to_anthropic(call["id"]),
        "name": function["name"],
        "input": parsed,
    }


def _tool_result(message: dict[str, Any], param: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise TranslationError(
            "Tool messages need a `tool_call_id`.", param=f"{param}.tool_call_id"
        )
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id_to_anthropic(call_id)}
    content = message.get("content")
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise TranslationError(
                    "Tool messages may only contain text parts.", param=f"{param}.content[{index}]"
                )
            if not is_blank(part.get("text")):
                parts.append(with_cache_control({"type": "text", "text": part["text"]}, part))
        if parts:
            block["content"] = parts
    elif isinstance(content, str) and content:
        block["content"] = content
    elif content not in (None, ""):
        raise TranslationError("Tool message content must be text.", param=f"{param}.content")
    return with_cache_control(block, message)


def _check_tool_pairs(turns: list[dict[str, Any]]) -> None:
    """Anthropic's rule: every tool_use is answered by a tool_result in the very next
    user message, and every tool_result answers a tool_use just before it. Said here,
    in the client's own terms, rather than as the upstream's 400."""
    for index, turn in enumerate(turns):
        results = {b["tool_use_id"] for b in turn["content"] if b["type"] == "tool_result"}
        previous = turns[index - 1] if index else None
        asked = (
            {b["id"] for b in previous["content"] if b["type"] == "tool_use"}
            if previous and previous["role"] == "assistant"
            else set()
        )
        if results - asked:
            raise TranslationError(
                "A tool message answers a tool call that is not in the assistant message "
                "right before it (tool_call_id "
                f"{tool_id_to_openai(sorted(results - asked)[0])!r}).",
                param="messages",
            )
        if turn["role"] == "assistant":
            calls = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
            following = turns[index + 1] if index + 1 < len(turns) else None
            answered = (
                {b["tool_use_id"] for b in following["content"] if b["type"] == "tool_result"}
                if following
                else set()
            )
            missing = [call for call in calls if call not in answered]
            if missing:
                raise TranslationError(
                    "Every tool call needs its tool message right after the assistant "
                    f"message that made it; none was found for {tool_id_to_openai(missing[0])!r}.",
                    param="messages",
                )


def _history_has_tools(turns: list[dict[str, Any]]) -> bool:
    return any(b["type"] in ("tool_use", "tool_result") for t in turns for b in t["content"])


def _stub_tools(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = dict.fromkeys(b["name"] for t in turns for b in t["content"] if b["type"] == "tool_use")
    return [
        {
            "name": name,
            "description": "A tool used earlier in this conversation.",
            "input_schema": {"type": "object"},
        }
        for name in names
    ]
