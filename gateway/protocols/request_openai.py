"""Anthropic Messages request -> OpenAI Chat Completions request.

One function, `openai_request_from_anthropic`, and the per-row helpers it uses (the
reverse direction of request_anthropic.py; the table is in docs/protocols.md).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from gateway.protocols.context_edits import context_edits_apply
from gateway.protocols.ids import tool_id_to_openai
from gateway.protocols.request_common import (
    ANTHROPIC_EFFORTS,
    TranslationError,
    openai_effort_from_budget,
    openai_model_accepts_reasoning,
    requested_max_tokens,
    resolve_max_tokens,
)

_OPENAI_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_OPENAI_MAX_STOP = 4
_SAFETY_ID_MAX = 128
# Anthropic features that run on Anthropic's side and have no Chat Completions form.
# (`context_management` is applied by the gateway: gateway.protocols.context_edits.)
_SERVER_SIDE = ("container", "mcp_servers", "top_k")


def openai_request_from_anthropic(
    body: dict[str, Any], *, upstream_model: str, max_output_tokens: int
) -> dict[str, Any]:
    """Translate an Anthropic messages request for an OpenAI upstream. Streaming
    requests always ask the upstream for usage (billing needs it)."""
    for field in _SERVER_SIDE:
        if body.get(field) not in (None, [], {}):
            raise TranslationError(
                f"`{field}` has no equivalent for this model (served through an OpenAI-"
                "compatible API): remove it.",
                param=field,
            )
    raw_max = body.get("max_tokens")
    if raw_max == 0:
        raise TranslationError(
            "max_tokens 0 (prompt-cache pre-warming) is not available for this model: "
            "its upstream caches prompts automatically.",
            param="max_tokens",
        )
    requested = requested_max_tokens(raw_max, param="max_tokens")
    out: dict[str, Any] = {"model": upstream_model, "messages": []}
    system = _system(body.get("system"))
    if system is not None:
        out["messages"].append(system)
    out["messages"].extend(_messages(context_edits_apply(body)))
    out["max_completion_tokens"] = resolve_max_tokens(requested, max_output_tokens)

    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("tool_choice"), out)

    stops = body.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise TranslationError(
                "`stop_sequences` must be a list of strings.", param="stop_sequences"
            )
        if len(stops) > _OPENAI_MAX_STOP:
            raise TranslationError(
                f"This model accepts at most {_OPENAI_MAX_STOP} stop sequences.",
                param="stop_sequences",
            )
        out["stop"] = list(stops)
    for field in ("temperature", "top_p"):
        if body.get(field) is not None:
            out[field] = body[field]

    output_config = body.get("output_config") or {}
    fmt = output_config.get("format") or body.get("output_format")
    if fmt:
        if (
            not isinstance(fmt, dict)
            or fmt.get("type") != "json_schema"
            or not isinstance(fmt.get("schema"), dict)
        ):
            raise TranslationError(
                "`output_config.format` must be a json_schema format.", param="output_config.format"
            )
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": "response",
                "schema": copy.deepcopy(fmt["schema"]),
                "strict": True,
            },
        }
    effort = _reasoning_effort(body.get("thinking"), output_config.get("effort"))
    if effort and openai_model_accepts_reasoning(upstream_model):
        out["reasoning_effort"] = effort

    user_id = (body.get("metadata") or {}).get("user_id")
    if isinstance(user_id, str) and user_id:
        # OpenAI caps safety_identifier at 128 characters; Claude Code's user ids are
        # longer. It is an opaque abuse-detection id, so a stable hash serves as well.
        if len(user_id) > _SAFETY_ID_MAX:
            user_id = hashlib.sha256(user_id.encode()).hexdigest()
        out["safety_identifier"] = user_id
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# --- messages -----------------------------------------------------------------------
def _system(system: Any, *, param: str = "system") -> dict[str, Any] | None:
    if system is None or system == "" or system == []:
        return None
    if isinstance(system, str):
        return {"role": "system", "content": system}
    if not isinstance(system, list):
        raise TranslationError(
            "System content must be a string or a list of text blocks.", param=param
        )
    parts = []
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise TranslationError("System blocks must be text blocks.", param=f"{param}[{index}]")
        parts.append({"type": "text", "text": block.get("text") or ""})
    return {"role": "system", "content": parts}


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise TranslationError("`messages` must be a non-empty list.", param="messages")
    out: list[dict[str, Any]] = []
    for index, message in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise TranslationError("Each message must be an object.", param=param)
        role, content = message.get("role"), message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise TranslationError(
                "`content` must be a string or a list of blocks.", param=f"{param}.content"
            )
        if role == "user":
            out.extend(_user(blocks, param, plain=isinstance(content, str)))
        elif role == "assistant":
            out.append(_assistant(blocks, param))
        elif role == "system" and index > 0:
            # A mid-conversation system message (Claude Code's agent and skill lists):
            # Chat Completions takes system messages anywhere, so it stays in place.
            system = _system(content, param=f"{param}.content")
            if system is not None:
                out.append(system)
        else:
            raise TranslationError(
                "Message role must be 'user' or 'assistant' (or 'system' after the first message).",
                param=f"{param}.role",
            )
    return out


def _user(blocks: list[Any], param: str, *, plain: bool) -> list[dict[str, Any]]:
    """Tool results become `tool` messages, which OpenAI wants right after the
    assistant's tool calls; the rest of the turn follows as one user message."""
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        where = f"{param}.content[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            message, images = _tool_result(block, where)
            tool_messages.append(message)
            parts.extend(images)
        else:
            part = _user_part(block, kind, where)
            if part is not None:
                parts.append(part)
    out = tool_messages
    if parts:
        if plain and len(parts) == 1:
            out.append({"role": "user", "content": parts[0]["text"]})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _user_part(block: Any, kind: str | None, param: str) -> dict[str, Any] | None:
    if kind == "text":
        return {"type": "text", "text": block.get("text") or ""}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _image_url(block, param)}}
    if kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
            file: dict[str, Any] = {"file_data": f"data:application/pdf;base64,{source['data']}"}
            file["filename"] = block.get("title") or "document.pdf"
            return {"type": "file", "file": file}
        if source.get("type") == "text":
            return {"type": "text", "text": source.get("data") or ""}
        raise TranslationError(
            "Only base64 PDF and plain-text documents are supported for this model.",
            param=param,
        )
    if kind in ("thinking", "redacted_thinking"):
        return None
    raise TranslationError(
        f"Content block type {kind!r} is not supported for this model.", param=param
    )


def _image_url(block: dict[str, Any], param: str) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    raise TranslationError(
        "Images must have a base64 or url source for this model.", param=f"{param}.source"
    )


def _tool_result(block: dict[str, Any], param: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A `tool` message, plus the images of the result: OpenAI tool messages hold
    text only, so images travel in the user message that follows."""
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for index, item in enumerate(content):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                texts.append(item.get("text") or "")
            elif kind == "image":
                images.append(
                    {
                        "type": "image_url",
                        "image_url": {"url": _image_url(item, f"{param}.content[{index}]")},
                    }
                )
            else:
                raise TranslationError(
                    f"Tool result block type {kind!r} is not supported for this model.",
                    param=f"{param}.content[{index}]",
                )
    elif content is not None:
        raise TranslationError(
            "Tool result content must be text or blocks.", param=f"{param}.content"
        )
    text = "\n".join(texts)
    if block.get("is_error"):
        # Chat Completions has no error flag on tool results; say it in the text.
        text = f"Error: {text}" if text else "Error"
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str):
        raise TranslationError("`tool_use_id` is required.", param=f"{param}.tool_use_id")
    message = {"role": "tool", "tool_call_id": tool_id_to_openai(tool_use_id), "content": text}
    return message, images


def _assistant(blocks: list[Any], param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            if not _OPENAI_TOOL_NAME.match(str(block.get("name") or "")):
                raise TranslationError(_NAME_RULE, param=f"{param}.content[{index}].name")
            calls.append(
                {
                    "id": tool_id_to_openai(str(block.get("id") or "")),
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            # Chat Completions takes no reasoning back; the signature is Anthropic's.
            continue
        else:
            raise TranslationError(
                f"Assistant block type {kind!r} is not supported for this model.",
                param=f"{param}.content[{index}]",
            )
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


# --- tools --------------------------------------------------------------------------
# Anthropic's server tools: they run on Anthropic's platform, so nothing behind an
# OpenAI-protocol API can run them (Anthropic-defined client tools such as bash or the
# text editor are not here: the client runs those, and a silent drop would hide them).
SERVER_TOOL_PREFIXES = (
    "web_search_",
    "web_fetch_",
    "code_execution_",
    "tool_search_tool_",
    "mcp_toolset",
)


def _server_tool(tool: Any) -> bool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    return isinstance(kind, str) and kind.startswith(SERVER_TOOL_PREFIXES)


def server_tools_split(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The body without Anthropic server tools, and their types. A tool_choice that
    requires a dropped tool (by name, or `any` with no tool left) is a 400: the
    request cannot be answered as asked."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not any(_server_tool(t) for t in tools):
        return body, ()
    kept = [t for t in tools if not _server_tool(t)]
    dropped = [t for t in tools if _server_tool(t)]
    choice = body.get("tool_choice")
    choice = choice if isinstance(choice, dict) else {}
    kind = choice.get("type")
    names = {t.get("name") for t in dropped}
    if (kind == "tool" and choice.get("name") in names) or (kind == "any" and not kept):
        raise TranslationError(
            f"`tool_choice` requires a server tool ({', '.join(sorted(map(str, names)))}) "
            "that only runs on Anthropic's platform, not for this model.",
            param="tool_choice",
        )
    out = {**body, "tools": kept}
    if not kept:
        out.pop("tools")
        if kind in ("auto", "none"):
            out.pop("tool_choice", None)  # Chat Completions wants tools with a choice
    return out, tuple(str(t.get("type")) for t in dropped)


_NAME_RULE = "Tool names must be 1-64 letters, digits, underscores or dashes for this model."


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        raise TranslationError("`tools` must be a list.", param="tools")
    tools = []
    for index, tool in enumerate(raw):
        param = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise TranslationError(
                f"Server tool {kind!r} runs only on Anthropic's platform and is not "
                "available for this model.",
                param=param,
            )
        name = tool.get("name")
        if not isinstance(name, str) or not _OPENAI_TOOL_NAME.match(name):
            raise TranslationError(_NAME_RULE, param=f"{param}.name")
        function: dict[str, Any] = {
            "name": name,
            "parameters": copy.deepcopy(tool.get("input_schema") or {"type": "object"}),
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and choice.get("name"):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise TranslationError("Unsupported `tool_choice`.", param="tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _reasoning_effort(thinking: Any, effort: Any) -> str | None:
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if effort is not None and effort not in ANTHROPIC_EFFORTS:
        raise TranslationError(
            f"`output_config.effort` must be one of {', '.join(ANTHROPIC_EFFORTS)}.",
            param="output_config.effort",
        )
    if kind == "disabled":
        return None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise TranslationError(
                "`thinking.budget_tokens` must be an integer.", param="thinking.budget_tokens"
            )
        return effort or openai_effort_from_budget(budget)
    # Adaptive thinking, or no thinking with an effort: OpenAI's efforts share names.
    return effort
