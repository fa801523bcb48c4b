"""What both request translators share: the 400 they raise, max-token resolution,
reasoning-effort <-> thinking tables, and the few per-model facts the vendors'
APIs force on a translator (which Claude models take adaptive thinking, which OpenAI
models reject `reasoning_effort`). Facts and their sources: docs/protocols.md."""

from __future__ import annotations

import re
from typing import Any

from gateway.protocols.errors import GatewayError


class TranslationError(GatewayError):
    """A request that cannot be expressed in the upstream's protocol: a clear 400
    naming the field, never a silent drop."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(
            status=400,
            message=message,
            code="untranslatable_request",
            param=param,
            type="invalid_request_error",
        )


def requested_max_tokens(value: Any, *, param: str) -> int | None:
    """A client's max-token value as an int, None for 'no limit' (absent, 0 or -1:
    Roo Code sends -1), or a 400 for junk."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TranslationError(f"`{param}` must be an integer.", param=param)
    if int(value) != value:
        raise TranslationError(f"`{param}` must be an integer.", param=param)
    return int(value) if value > 0 else None


def resolve_max_tokens(requested: int | None, max_output_tokens: int) -> int:
    """Absent or 'no limit' means the model's maximum; more than the maximum is
    clamped to it (the upstream would refuse it)."""
    if requested is None:
        return max_output_tokens
    return min(requested, max_output_tokens) if max_output_tokens > 0 else requested


# --- reasoning ----------------------------------------------------------------------
# OpenAI reasoning_effort -> Anthropic thinking budget (manual extended thinking).
# Anthropic: budget_tokens >= 1024 and < max_tokens.
THINKING_BUDGET_BY_EFFORT = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 32000,
}
MIN_THINKING_BUDGET = 1024
# OpenAI reasoning_effort -> Anthropic output_config.effort (adaptive thinking).
ANTHROPIC_EFFORT_BY_OPENAI = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}
OPENAI_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
ANTHROPIC_EFFORTS = ("low", "medium", "high", "xhigh", "max")


def openai_effort_from_budget(budget: int) -> str:
    """The reverse of THINKING_BUDGET_BY_EFFORT, by ranges. Never `minimal`: several
    current OpenAI models reject it."""
    if budget <= THINKING_BUDGET_BY_EFFORT["low"]:
        return "low"
    if budget <= THINKING_BUDGET_BY_EFFORT["medium"]:
        return "medium"
    return "high"


_CLAUDE_NEW = re.compile(r"claude-(?:[a-z]+-)+(\d+)(?:[-.](\d{1,2}))?(?![0-9])")
_CLAUDE_OLD = re.compile(r"claude-(\d+)(?:[-.](\d))?-[a-z]")


def claude_version(model: str) -> tuple[int, int] | None:
    """(major, minor) from a Claude model name in either naming scheme:
    `claude-sonnet-4-6`, `claude-opus-4.7`, `claude-sonnet-4-20250514` -> (4, 0),
    `claude-3-7-sonnet-20250219` -> (3, 7). None for other names."""
    name = model.lower().rsplit("/", 1)[-1]
    match = _CLAUDE_NEW.search(name)
    if match:
        return int(match.group(1)), int(match.group(2) or 0)
    match = _CLAUDE_OLD.search(name)
    if match:
        return int(match.group(1)), int(match.group(2) or 0)
    return None


def claude_uses_adaptive_thinking(model: str) -> bool:
    """Claude 4.6 and later: adaptive thinking with an effort (manual budgets are
    deprecated on 4.6 and refused from Opus 4.7 on). Older or unknown: budgets."""
    version = claude_version(model)
    return version is not None and version >= (4, 6)


def claude_takes_system_messages(model: str) -> bool:
    """Claude 4.8 and later accept `role: "system"` messages inside `messages` (no beta
    needed); older or unknown models refuse them."""
    version = claude_version(model)
    return version is not None and version >= (4, 8)


_OPENAI_NON_REASONING = re.compile(r"^(gpt-3\.5|gpt-4(?!\d)|gpt-4o|gpt-4\.1|chatgpt-4o)")


def openai_model_accepts_reasoning(model: str) -> bool:
    """OpenAI answers 400 'Unrecognized request argument supplied: reasoning_effort'
    for its non-reasoning models; everything else is assumed to reason."""
    name = model.lower().rsplit("/", 1)[-1]
    return _OPENAI_NON_REASONING.match(name) is None


# --- content helpers ----------------------------------------------------------------
ANTHROPIC_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"^data:([^;,]+)((?:;[^;,]+)*),(.*)$", re.DOTALL)


def parse_data_url(url: str, *, param: str) -> tuple[str, str]:
    """(media_type, base64 data) of a base64 data URL."""
    match = _DATA_URL.match(url)
    if not match or ";base64" not in match.group(2):
        raise TranslationError(
            "Only base64 data URLs (data:<type>;base64,...) or http(s) URLs can be sent "
            "to this model.",
            param=param,
        )
    return match.group(1).strip().lower(), match.group(3)


def is_blank(text: Any) -> bool:
    return not isinstance(text, str) or not text.strip()


def text_of_parts(content: Any, *, param: str, allow: tuple[str, ...] = ("text",)) -> str:
    """Join the text of a string-or-parts content that may only hold text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError("`content` must be a string or a list of parts.", param=param)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allow:
            raise TranslationError(
                f"Content part type {kind!r} is not supported here.",
                param=f"{param}[{index}]",
            )
        texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)
