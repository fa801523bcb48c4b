"""Local input-token estimates, for `/v1/messages/count_tokens` when the model has no
Anthropic upstream to ask, and for a stream's message_start before the upstream has
reported its count.

Method (an estimate, and documented as one in docs/protocols.md): about four
characters of English or code per token, the rule of thumb both vendors publish, over
every piece of text the model reads — system prompt, message text, tool-call
arguments, tool results, tool names, descriptions and schemas (as compact JSON) —
plus small fixed overheads per message and per tool for the formatting each vendor
wraps around them, and a fixed cost per image (its size is not known without decoding
it: Anthropic's cap of about 1,600 tokens, OpenAI's high-detail 1024x1024 cost of
765). Rounded up, never zero for a non-empty request.
"""

from __future__ import annotations

import json
import math
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 8
ANTHROPIC_IMAGE_TOKENS = 1600
OPENAI_IMAGE_TOKENS = 765
# A PDF page costs far more than its text; without parsing it, count its bytes.
DOCUMENT_BYTES_PER_TOKEN = 3 * 1024 // 4


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _Counter:
    def __init__(self, image_tokens: int) -> None:
        self.chars = 0
        self.tokens = 0
        self.image_tokens = image_tokens

    def text(self, value: Any) -> None:
        if isinstance(value, str):
            self.chars += len(value)
        elif value is not None:
            self.chars += len(_json(value))

    def total(self) -> int:
        return self.tokens + math.ceil(self.chars / CHARS_PER_TOKEN)


def _anthropic_block(counter: _Counter, block: Any) -> None:
    if isinstance(block, str):
        counter.text(block)
        return
    if not isinstance(block, dict):
        return
    kind = block.get("type")
    if kind == "text":
        counter.text(block.get("text"))
    elif kind == "image":
        counter.tokens += counter.image_tokens
    elif kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "text":
            counter.text(source.get("data"))
        else:
            raw = source.get("data")
            data = raw if isinstance(raw, str) else ""
            counter.tokens += max(len(data) // DOCUMENT_BYTES_PER_TOKEN, counter.image_tokens)
    elif kind == "tool_use":
        counter.text(block.get("name"))
        counter.text(block.get("input") or {})
    elif kind == "tool_result":
        content = block.get("content")
        for item in content if isinstance(content, list) else [content]:
            _anthropic_block(counter, item)
    elif kind == "thinking":
        # Anthropic does not count thinking from earlier turns as input; we cannot
        # tell turns apart cheaply, so count it (an estimate errs high, not low).
        counter.text(block.get("thinking"))
    else:
        counter.text({k: v for k, v in block.items() if k != "cache_control"})


def estimate_tokens_anthropic(body: dict[str, Any]) -> int:
    """Estimated `input_tokens` of an Anthropic messages (or count_tokens) body."""
    counter = _Counter(ANTHROPIC_IMAGE_TOKENS)
    system = body.get("system")
    for block in system if isinstance(system, list) else [system]:
        _anthropic_block(counter, block)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        counter.tokens += MESSAGE_OVERHEAD
        content = message.get("content")
        for block in content if isinstance(content, list) else [content]:
            _anthropic_block(counter, block)
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            counter.tokens += TOOL_OVERHEAD
            counter.text(tool.get("name"))
            counter.text(tool.get("description"))
            counter.text(tool.get("input_schema"))
    return counter.total()


def _openai_part(counter: _Counter, part: Any) -> None:
    if isinstance(part, str):
        counter.text(part)
    elif isinstance(part, dict):
        kind = part.get("type")
        if kind == "text":
            counter.text(part.get("text"))
        elif kind == "image_url":
            counter.tokens += counter.image_tokens
        elif kind == "refusal":
            counter.text(part.get("refusal"))
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data")
            counter.tokens += max(
                len(data) // DOCUMENT_BYTES_PER_TOKEN if isinstance(data, str) else 0,
                counter.image_tokens,
            )
        else:
            counter.text({k: v for k, v in part.items() if k != "cache_control"})


def estimate_tokens_openai(body: dict[str, Any]) -> int:
    """Estimated `prompt_tokens` of an OpenAI chat completion request."""
    counter = _Counter(OPENAI_IMAGE_TOKENS)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        counter.tokens += MESSAGE_OVERHEAD
        content = message.get("content")
        for part in content if isinstance(content, list) else [content]:
            _openai_part(counter, part)
        for call in message.get("tool_calls") or []:
            function = (call.get("function") or {}) if isinstance(call, dict) else {}
            counter.text(function.get("name"))
            counter.text(function.get("arguments"))
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            counter.tokens += TOOL_OVERHEAD
            counter.text(tool.get("function") or tool)
    return counter.total()


# --- what a credit hold assumes --------------------------------------------------------
# A hold must cover the worst case before the upstream is called. Text costs at most
# about one token per 3 bytes of JSON; media referenced by URL cost far more than their
# bytes. Per media part, at most: an image at Anthropic's 1.15-megapixel cap (OpenAI's
# high-detail images stay below it); a document or file sent inline, its data at the
# PDF rate above (never less than an image); one sent by URL or file id, whose size
# cannot be known here, HOLD_URL_DOCUMENT_TOKENS (about 13 dense pages); audio sent
# inline is covered by its bytes.
HOLD_BYTES_PER_TOKEN = 3
HOLD_IMAGE_TOKENS = ANTHROPIC_IMAGE_TOKENS
HOLD_URL_DOCUMENT_TOKENS = 20_000
_IMAGES = frozenset({"image", "image_url", "input_image"})
_DOCUMENTS = frozenset({"document", "file", "input_file"})
_MEDIA_MARKERS = (b'"image', b'"input_image', b'"document', b'"file', b'"input_file')


def hold_input_tokens(raw: bytes, body: dict[str, Any]) -> int:
    """The input tokens a credit hold assumes for this request body (any protocol)."""
    tokens = len(raw) // HOLD_BYTES_PER_TOKEN + 1
    if not any(marker in raw for marker in _MEDIA_MARKERS):
        return tokens  # the common case: no media, no walk
    stack: list[Any] = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            kind = node.get("type")
            kind = kind if isinstance(kind, str) else ""  # a schema's "type" property, say
            if kind in _IMAGES:
                tokens += HOLD_IMAGE_TOKENS
            elif kind in _DOCUMENTS:
                tokens += _document_hold(node)
            else:
                stack.extend(v for v in node.values() if isinstance(v, dict | list))
    return tokens


def _document_hold(part: dict[str, Any]) -> int:
    source = part.get("source") or part.get("file") or part
    data = None
    if isinstance(source, dict):
        data = source.get("data") or source.get("file_data")
    if isinstance(data, str) and data:
        if isinstance(source, dict) and source.get("type") == "text":
            return len(data) // HOLD_BYTES_PER_TOKEN + 1
        return max(len(data) // DOCUMENT_BYTES_PER_TOKEN, HOLD_IMAGE_TOKENS)
    return HOLD_URL_DOCUMENT_TOKENS
