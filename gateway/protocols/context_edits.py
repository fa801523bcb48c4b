"""Anthropic's `context_management` edits, applied by the gateway for upstreams that do
not run them (every model served through an OpenAI-protocol provider).

Claude Code sends `{"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}` on
every main-loop request. The two edit types Anthropic defines:

- `clear_thinking_20251015` clears earlier turns' thinking blocks. A translated
  upstream never receives earlier thinking (Chat Completions takes no reasoning back),
  so whatever `keep` says, there is nothing left to clear: a no-op.
- `clear_tool_uses_20250919` replaces the results of older tool calls with a short
  placeholder once the prompt passes `trigger` (default 100,000 input tokens, or a
  number of tool uses), keeping the newest `keep` (default 3) and those of
  `exclude_tools`; `clear_tool_inputs` also empties the calls' inputs (all, or those
  of the named tools). The gateway applies it with its local token estimate
  (gateway.protocols.tokens), so the point at which it triggers is approximate.

Anything else is a 400 naming the field, as Anthropic answers an unknown edit.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.protocols.request_common import TranslationError
from gateway.protocols.tokens import estimate_tokens_anthropic

CLEAR_THINKING = "clear_thinking_20251015"
CLEAR_TOOL_USES = "clear_tool_uses_20250919"
CLEARED = "[Tool result cleared to save context]"
_DEFAULT_TRIGGER = {"type": "input_tokens", "value": 100_000}
_DEFAULT_KEEP = {"type": "tool_uses", "value": 3}


def context_edits_apply(body: dict[str, Any]) -> Any:
    """The body's `messages` with its `context_management` edits applied (the same
    list when no edit changes anything). Raises TranslationError for malformed edits."""
    messages = body.get("messages")
    config = body.get("context_management")
    if config is None or not isinstance(messages, list):
        return messages
    if not isinstance(config, dict) or not isinstance(config.get("edits", []), list):
        raise TranslationError(
            "`context_management` must be an object with a list of `edits`.",
            param="context_management",
        )
    for index, edit in enumerate(config.get("edits") or []):
        param = f"context_management.edits[{index}]"
        kind = edit.get("type") if isinstance(edit, dict) else None
        if kind == CLEAR_THINKING:
            continue  # translated upstreams never see earlier thinking
        if kind == CLEAR_TOOL_USES:
            assert isinstance(edit, dict)
            messages = _clear_tool_uses(body, messages, edit, param)
            continue
        raise TranslationError(
            f"Unknown context management edit {kind!r}: use {CLEAR_THINKING} or {CLEAR_TOOL_USES}.",
            param=f"{param}.type",
        )
    return messages


def _threshold(
    edit: dict[str, Any], name: str, default: dict[str, Any], param: str
) -> tuple[str, int]:
    value = edit.get(name, default)
    if value is None:
        value = default
    if (
        not isinstance(value, dict)
        or value.get("type") not in ("input_tokens", "tool_uses")
        or isinstance(value.get("value"), bool)
        or not isinstance(value.get("value"), int)
        or value["value"] < 0
    ):
        raise TranslationError(
            f"`{name}` must be {{type: input_tokens | tool_uses, value: a whole number}}.",
            param=f"{param}.{name}",
        )
    return value["type"], value["value"]


def _clear_tool_uses(
    body: dict[str, Any], messages: list[Any], edit: dict[str, Any], param: str
) -> list[Any]:
    trigger_kind, trigger = _threshold(edit, "trigger", _DEFAULT_TRIGGER, param)
    keep_kind, keep = _threshold(edit, "keep", _DEFAULT_KEEP, param)
    if keep_kind != "tool_uses":
        raise TranslationError("`keep` counts tool uses.", param=f"{param}.keep")
    excluded = edit.get("exclude_tools") or []
    inputs = edit.get("clear_tool_inputs") or False
    if not isinstance(excluded, list) or not isinstance(inputs, bool | list):
        raise TranslationError(
            "`exclude_tools` must be a list of tool names and `clear_tool_inputs` a "
            "boolean or a list of tool names.",
            param=param,
        )
    uses = [
        (m_index, b_index, block)
        for m_index, message in enumerate(messages)
        if isinstance(message, dict) and message.get("role") == "assistant"
        for b_index, block in enumerate(_blocks(message))
        if block.get("type") == "tool_use" and block.get("name") not in excluded
    ]
    reached = (
        len(uses) > trigger
        if trigger_kind == "tool_uses"
        else estimate_tokens_anthropic({**body, "messages": messages}) > trigger
    )
    cleared = uses[: max(0, len(uses) - keep)]
    if not reached or not cleared:
        return messages
    out = copy.deepcopy(messages)
    ids = set()
    for m_index, b_index, block in cleared:
        ids.add(block.get("id"))
        if inputs is True or (isinstance(inputs, list) and block.get("name") in inputs):
            out[m_index]["content"][b_index]["input"] = {}
    for message in out:
        if isinstance(message, dict) and message.get("role") == "user":
            for block in _blocks(message):
                if block.get("type") == "tool_result" and block.get("tool_use_id") in ids:
                    block["content"] = CLEARED
    return out


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict)]
