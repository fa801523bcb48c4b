"""Request bodies on their way upstream: translated between protocols, or prepared for
an upstream of the client's own protocol.

    anthropic_request_from_openai   OpenAI client    -> Anthropic upstream
    openai_request_from_anthropic   Anthropic client -> OpenAI upstream
    openai_request_prepare          OpenAI client    -> OpenAI upstream
    anthropic_request_prepare       Anthropic client -> Anthropic upstream

All are pure: they return a new body and never modify the one they were given. What
cannot be sent upstream raises TranslationError, a 400 naming the field.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.protocols.request_anthropic import anthropic_request_from_openai
from gateway.protocols.request_common import TranslationError, claude_takes_system_messages
from gateway.protocols.request_openai import openai_request_from_anthropic

__all__ = [
    "TranslationError",
    "anthropic_request_from_openai",
    "anthropic_request_prepare",
    "openai_request_from_anthropic",
    "openai_request_prepare",
]

# Fields clients put on messages that OpenAI refuses: Roo Code echoes OpenRouter's
# `reasoning_details` on assistant messages.
_OPENAI_UNKNOWN_MESSAGE_FIELDS = ("reasoning_details", "cache_control")


def openai_request_prepare(
    body: dict[str, Any], *, upstream_model: str, max_output_tokens: int
) -> dict[str, Any]:
    """OpenAI client -> OpenAI upstream: the client's body with the upstream's model
    name, Anthropic-style `cache_control` and `reasoning_details` removed (OpenAI
    refuses them; it caches prompts by itself), "no limit" max-token values (0, -1)
    removed (omitting the field is OpenAI's own way to say 'up to the model's
    maximum'), and usage always requested on streams (billing needs it).

    `max_output_tokens` is accepted for symmetry with the translators; OpenAI applies
    its own model limit."""
    del max_output_tokens
    out = dict(body)
    out["model"] = upstream_model
    if isinstance(body.get("messages"), list):
        out["messages"] = [_openai_message(m) for m in body["messages"]]
    if isinstance(body.get("tools"), list):
        out["tools"] = [
            {k: v for k, v in tool.items() if k != "cache_control"}
            if isinstance(tool, dict)
            else tool
            for tool in body["tools"]
        ]
    for field in ("max_tokens", "max_completion_tokens"):
        value = out.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            del out[field]
    if body.get("stream"):
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        out["stream_options"] = options
    return out


def _openai_message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k not in _OPENAI_UNKNOWN_MESSAGE_FIELDS}
    content = message.get("content")
    if isinstance(content, list):
        out["content"] = [
            {k: v for k, v in part.items() if k != "cache_control"}
            if isinstance(part, dict)
            else part
            for part in content
        ]
    return out


def anthropic_request_prepare(
    body: dict[str, Any], *, upstream_model: str, max_output_tokens: int
) -> dict[str, Any]:
    """Anthropic client -> Anthropic upstream: the upstream's model name, and
    `max_tokens` set to the model's maximum when absent or negative. Everything else,
    `cache_control` and `context_management` included, passes through untouched,
    except what Anthropic would refuse:
    - thinking blocks without a signature (only a translated OpenAI upstream produces
      them) are removed: they carry nothing Anthropic could use;
    - mid-conversation system messages, for models before Claude 4.8, are folded into
      the user turn they follow;
    - thinking is left off for a turn that continues a tool loop whose assistant turn
      lost its thinking block.

    `max_tokens: 0` is kept: Anthropic documents it as pre-warming the prompt cache."""
    out = dict(body)
    out["model"] = upstream_model
    value = body.get("max_tokens")
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        out["max_tokens"] = max_output_tokens
    messages = body.get("messages")
    if not isinstance(messages, list):
        return out
    if any(_has_unsigned_thinking(m) for m in messages):
        messages = [_without_unsigned_thinking(m) for m in messages]
    if not claude_takes_system_messages(upstream_model) and any(
        _is_system_message(m) for m in messages[1:]
    ):
        messages = _system_messages_folded(messages)
    out["messages"] = messages
    if _thinking_on(body) and _tool_loop_lost_its_thinking(messages):
        # Anthropic refuses to continue a tool loop with thinking on when the
        # assistant turn being answered lost its signed thinking block (Roo Code and
        # Cline drop them from history): this turn runs without thinking, as for
        # OpenAI clients that keep no reasoning.
        out.pop("thinking", None)
    return out


def _is_system_message(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "system"


def _system_messages_folded(messages: list[Any]) -> list[Any]:
    """Mid-conversation system messages (Claude Code's agent and skill lists) for a
    model that refuses them: their text joins the user turn they follow (or starts
    one), marked as a system reminder, where the model reads it at the same point."""
    out: list[Any] = []
    for index, message in enumerate(messages):
        if index == 0 or not _is_system_message(message):
            out.append(message)
            continue
        content = message.get("content")
        texts = (
            [content]
            if isinstance(content, str)
            else [
                b.get("text") or ""
                for b in content or ()
                if isinstance(b, dict) and b.get("type") == "text"
            ]
        )
        block = {
            "type": "text",
            "text": "<system-reminder>\n" + "\n".join(texts) + "\n</system-reminder>",
        }
        previous = out[-1] if out else None
        if isinstance(previous, dict) and previous.get("role") == "user":
            earlier = previous.get("content")
            blocks = [{"type": "text", "text": earlier}] if isinstance(earlier, str) else earlier
            out[-1] = {**previous, "content": [*(blocks or []), block]}
        else:
            out.append({"role": "user", "content": [block]})
    return out


def _thinking_on(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _tool_loop_lost_its_thinking(messages: list[Any]) -> bool:
    """The last turn answers tool calls, and the assistant turn that made them does not
    start with a thinking block."""
    turns = [m for m in messages if isinstance(m, dict) and m.get("role") != "system"]
    if len(turns) < 2 or turns[-1].get("role") != "user":
        return False
    last, made = turns[-1].get("content"), turns[-2]
    if not isinstance(last, list) or not any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last
    ):
        return False
    blocks = made.get("content")
    if made.get("role") != "assistant" or not isinstance(blocks, list) or not blocks:
        return False
    first = blocks[0].get("type") if isinstance(blocks[0], dict) else None
    return first not in ("thinking", "redacted_thinking")


def _is_unsigned_thinking(block: Any) -> bool:
    return (
        isinstance(block, dict) and block.get("type") == "thinking" and not block.get("signature")
    )


def _has_unsigned_thinking(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and isinstance(message.get("content"), list)
        and any(_is_unsigned_thinking(b) for b in message["content"])
    )


def _without_unsigned_thinking(message: Any) -> Any:
    if not _has_unsigned_thinking(message):
        return message
    out = copy.copy(message)
    out["content"] = [b for b in message["content"] if not _is_unsigned_thinking(b)]
    return out
