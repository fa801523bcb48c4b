"""Anthropic Messages requests as the fake reads them: validation with Anthropic's own
error messages (what the real API refuses, the fake refuses), and the request turned
into a `Conversation`. Replies are rendered by `anthropic_render`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from .errors import WireError, anthropic_error
from .reply import (
    MEDIA_TOKENS,
    TOOL_CALL_TOKENS,
    TOOL_DEFINITION_TOKENS,
    Conversation,
    Unit,
    words,
)

MESSAGE_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "metadata",
        "stop_sequences",
        "stream",
        "system",
        "temperature",
        "top_k",
        "top_p",
        "thinking",
        "tool_choice",
        "tools",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_config",
        "output_format",
        "inference_geo",
        "cache_control",
        "speed",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
    }
)
COUNT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "mcp_servers",
        "context_management",
        "output_config",
        "output_format",
        "cache_control",
        "speed",
        "user_profile_id",
        "workspace_id",
    }
)
MAX_BREAKPOINTS = 4
_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_SIGNING_KEY = b"tollgate-fake-upstream-thinking"
_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


def sign_thinking(thinking: str) -> str:
    """The fake's thinking signature: stable across processes, checked when sent back."""
    digest = hashlib.blake2b(thinking.encode(), key=_SIGNING_KEY, digest_size=48).digest()
    return base64.b64encode(digest).decode()


def _text_block_error(where: str, text: Any) -> WireError | None:
    if not isinstance(text, str) or not text:
        return anthropic_error(f"{where}: text content blocks must be non-empty")
    if not text.strip():
        return anthropic_error(f"{where}: text content blocks must contain non-whitespace text")
    return None


def _ttl(block: dict[str, Any]) -> str | None:
    control = block.get("cache_control")
    if not isinstance(control, dict):
        return None
    return control.get("ttl") or "5m"


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"
    )


def _result_tokens(content: Any) -> int:
    if isinstance(content, str):
        return words(content)
    total = 0
    for block in content or ():
        if isinstance(block, dict):
            total += words(block.get("text") or "") if block.get("type") == "text" else MEDIA_TOKENS
    return total


def parse_messages(
    body: Any,
    *,
    count_only: bool = False,
    sampling_exclusive: Iterable[str] = (),
    betas: Iterable[str] = (),
) -> Conversation:
    """Validate like Anthropic does and read the conversation; raises WireError.
    `betas`: the request's `anthropic-beta` values (mid-conversation-system-* allows
    `role: "system"` messages after the first message on models before Claude 4.8)."""
    if not isinstance(body, dict):
        raise anthropic_error("Input should be a valid dictionary")
    allowed = COUNT_FIELDS if count_only else MESSAGE_FIELDS
    for key in body:
        if key not in allowed:
            raise anthropic_error(f"{key}: Extra inputs are not permitted")
    required = ("model", "messages") if count_only else ("model", "max_tokens", "messages")
    for key in required:
        if body.get(key) is None:
            raise anthropic_error(f"{key}: Field required")
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise anthropic_error("model: Input should be a valid string")
    max_tokens = body.get("max_tokens")
    if not count_only:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise anthropic_error("max_tokens: Input should be a valid integer")
        if max_tokens < 0:
            raise anthropic_error("max_tokens: Input should be greater than or equal to 0")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise anthropic_error("messages: Input should be a valid list")
    _check_sampling(body, model, sampling_exclusive)
    for sequence in body.get("stop_sequences") or ():
        if not isinstance(sequence, str) or not sequence:
            raise anthropic_error("stop_sequences: each stop sequence must be non-empty")
        if not sequence.strip():
            raise anthropic_error("stop_sequences: each stop sequence must contain non-whitespace")
    thinking = body.get("thinking") or {}
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    choice = body.get("tool_choice") or {}
    if not isinstance(choice, dict):
        raise anthropic_error("tool_choice: Input should be a valid dictionary")
    if thinking_on:
        _check_thinking(body, thinking, choice, max_tokens, count_only)

    units: list[Unit] = []
    tools: list[tuple[str, dict[str, Any]]] = []
    web_search = False
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict):
            raise anthropic_error(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):  # server tools (web search, ...)
            units.append(Unit(TOOL_DEFINITION_TOKENS, tool, _ttl(tool)))
            web_search = web_search or str(tool.get("type")).startswith("web_search_")
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise anthropic_error(
                f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )
        if not isinstance(tool.get("input_schema"), dict):
            raise anthropic_error(f"tools.{i}.custom.input_schema: Field required")
        tools.append((name, tool["input_schema"]))
        tokens = TOOL_DEFINITION_TOKENS + words(tool.get("description") or "")
        units.append(Unit(tokens, tool, _ttl(tool)))

    system = body.get("system")
    if isinstance(system, str):
        units.append(Unit(words(system), {"system": system}))
    elif isinstance(system, list):
        for block in system:
            if not isinstance(block, dict) or block.get("type") != "text":
                raise anthropic_error("system: Input should be a valid list of text blocks")
            error = _text_block_error("system", block.get("text"))
            if error:
                raise error
            units.append(Unit(words(block["text"]), block, _ttl(block)))

    # Claude 4.8 and later take them as is; earlier models with the beta only.
    system_messages = _claude_version(model) >= (4, 8) or any(
        b.startswith("mid-conversation-system") for b in betas
    )
    has_tool_blocks = _read_messages(messages, units, system_messages=system_messages)
    if has_tool_blocks and not tools:
        raise anthropic_error(
            "Requests which include `tool_use` or `tool_result` blocks must define tools."
        )
    turns = [m for m in messages if m["role"] != "system"]
    _check_tool_pairing(turns)
    if thinking_on and not count_only:
        _check_thinking_continuation(turns)
    if isinstance(body.get("cache_control"), dict) and units and not units[-1].ttl:
        units[-1].ttl = body["cache_control"].get("ttl") or "5m"  # automatic caching
    breakpoints = sum(1 for unit in units if unit.ttl)
    if breakpoints > MAX_BREAKPOINTS:
        raise anthropic_error(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may "
            f"be provided. Found {breakpoints}."
        )

    last_kind, last_text = _last_turn(turns)
    conv = Conversation(
        model=model,
        units=units,
        last_kind=last_kind,
        last_text=last_text,
        tools=tools,
        max_tokens=max_tokens,
        thinking=thinking_on,
        web_search=web_search,
    )
    kind = choice.get("type", "auto")
    conv.tool_mode = {"any": "required", "tool": "tool", "none": "none"}.get(kind, "auto")
    conv.forced_tool = choice.get("name")
    conv.parallel = not choice.get("disable_parallel_tool_use", False)
    conv.stop = list(body.get("stop_sequences") or ())
    return conv


def _check_sampling(body: dict[str, Any], model: str, exclusive: Iterable[str]) -> None:
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        word = "less" if temperature > 1 else "greater"
        raise anthropic_error(
            f"temperature: Input should be {word} than or equal to {1 if temperature > 1 else 0}"
        )
    if (
        temperature is not None
        and body.get("top_p") is not None
        and any(marker in model for marker in exclusive)
    ):
        raise anthropic_error(
            "`temperature` and `top_p` cannot both be specified for this model. Please use "
            "only one."
        )


def _check_thinking(
    body: dict[str, Any],
    thinking: dict[str, Any],
    choice: dict[str, Any],
    max_tokens: int | None,
    count_only: bool,
) -> None:
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise anthropic_error("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise anthropic_error(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if not count_only and max_tokens is not None and budget >= max_tokens:
            raise anthropic_error(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                f"documentation at {_THINKING_DOCS}#max-tokens-and-context-window-size"
            )
    if choice.get("type") in ("any", "tool"):
        raise anthropic_error("Thinking may not be enabled when tool_choice forces tool use.")
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise anthropic_error(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            f"documentation at {_THINKING_DOCS}#feature-compatibility"
        )


def _read_messages(messages: list[Any], units: list[Unit], *, system_messages: bool) -> bool:
    """Check each message and append its blocks as units; True if any tool block."""
    has_tool_blocks = False
    last = len(messages) - 1
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system" and system_messages and i > 0:
            units.append(Unit(0, {"role": role}))
            _read_system_message(message.get("content"), i, units)
            continue
        if role not in ("user", "assistant"):
            raise anthropic_error(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        units.append(Unit(0, {"role": role}))
        content = message.get("content")
        if isinstance(content, str):
            if not content and not (role == "assistant" and i == last):
                raise anthropic_error(
                    f"messages.{i}: all messages must have non-empty content "
                    "except for the optional final assistant message"
                )
            if content and not content.strip():
                raise anthropic_error(
                    "messages: text content blocks must contain non-whitespace text"
                )
            units.append(Unit(words(content), content))
            continue
        if not isinstance(content, list):
            raise anthropic_error(f"messages.{i}.content: Input should be a valid list")
        if not content and not (role == "assistant" and i == last):
            raise anthropic_error(
                f"messages.{i}: all messages must have non-empty content "
                "except for the optional final assistant message"
            )
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                raise anthropic_error(
                    f"messages.{i}.content.{j}: Input should be a valid dictionary"
                )
            kind = block.get("type")
            if kind == "text":
                error = _text_block_error("messages", block.get("text"))
                if error:
                    raise error
                tokens = words(block["text"])
            elif kind == "tool_use":
                has_tool_blocks = True
                if not _ID.match(str(block.get("id", ""))):
                    raise anthropic_error(
                        f"messages.{i}.content.{j}.tool_use.id: String should "
                        "match pattern '^[a-zA-Z0-9_-]+$'"
                    )
                tokens = TOOL_CALL_TOKENS
            elif kind == "tool_result":
                has_tool_blocks = True
                if not _ID.match(str(block.get("tool_use_id", ""))):
                    raise anthropic_error(
                        f"messages.{i}.content.{j}.tool_result.tool_use_id: "
                        "String should match pattern '^[a-zA-Z0-9_-]+$'"
                    )
                tokens = _result_tokens(block.get("content"))
            elif kind == "thinking":
                if block.get("signature") != sign_thinking(str(block.get("thinking", ""))):
                    raise anthropic_error(
                        f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                    )
                tokens = 0  # earlier turns' thinking is dropped from the context
            elif kind in ("image", "document"):
                tokens = MEDIA_TOKENS
            else:
                tokens = 0
            units.append(Unit(tokens, block, _ttl(block)))
    return has_tool_blocks


def _claude_version(model: str) -> tuple[int, int]:
    match = re.search(r"claude-[a-z]+-(\d+)(?:[-.](\d{1,2})(?!\d))?", model)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)


def _read_system_message(content: Any, i: int, units: list[Unit]) -> None:
    """A mid-conversation system message: a string or text blocks, counted like the
    top-level system prompt."""
    if isinstance(content, str) and content.strip():
        units.append(Unit(words(content), content))
        return
    if not isinstance(content, list) or not content:
        raise anthropic_error(f"messages.{i}.content: system messages must have text content")
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "text":
            raise anthropic_error(
                f"messages.{i}.content: Input should be a valid list of text blocks"
            )
        error = _text_block_error("messages", block.get("text"))
        if error:
            raise error
        units.append(Unit(words(block["text"]), block, _ttl(block)))


def _check_thinking_continuation(turns: list[dict[str, Any]]) -> None:
    """With thinking on, the assistant turn whose tool calls are being answered must
    start with its (signed) thinking block, as Anthropic requires."""
    if len(turns) < 2 or turns[-1]["role"] != "user":
        return
    if not any(b.get("type") == "tool_result" for b in _blocks(turns[-1])):
        return
    index = len(turns) - 2
    blocks = _blocks(turns[index])
    if turns[index]["role"] != "assistant" or not blocks:
        return
    first = blocks[0].get("type")
    if first not in ("thinking", "redacted_thinking"):
        raise anthropic_error(
            f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, "
            f"but found `{first}`. When `thinking` is enabled, a final `assistant` message "
            "must start with a thinking block (preceeding the lastmost set of `tool_use` and "
            "`tool_result` blocks). We recommend you include thinking blocks from previous "
            "turns. To avoid this requirement, disable `thinking`. Please consult our "
            f"documentation at {_THINKING_DOCS}"
        )


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def _check_tool_pairing(messages: list[dict[str, Any]]) -> None:
    previous_ids: set[str] = set()
    for i, message in enumerate(messages):
        blocks = _blocks(message)
        for j, block in enumerate(blocks):
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in previous_ids:
                raise anthropic_error(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
        ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        previous_ids = set(ids) if message["role"] == "assistant" else set()
        if not ids:
            continue
        answered: set[str] = set()
        if i + 1 < len(messages) and messages[i + 1]["role"] == "user":
            for block in _blocks(messages[i + 1]):
                if block.get("type") != "tool_result":
                    break  # results must come first in the next user message
                answered.add(str(block.get("tool_use_id")))
        missing = [tool_id for tool_id in ids if tool_id not in answered]
        if missing:
            raise anthropic_error(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )


def _last_turn(messages: list[dict[str, Any]]) -> tuple[str, str]:
    for message in reversed(messages):
        if message["role"] != "user":
            continue  # a final assistant message is a prefill: answer the user before it
        content = message["content"]
        if isinstance(content, str):
            return "user", content
        results = [
            _result_text(b.get("content")) for b in content if b.get("type") == "tool_result"
        ]
        if results:
            return "tool_result", " | ".join(results)
        return "user", " ".join(b["text"] for b in content if b.get("type") == "text")
    return "user", ""
