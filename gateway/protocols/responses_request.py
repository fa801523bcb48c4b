"""OpenAI Responses requests on their way upstream.

    chat_request_from_responses   Responses client -> a Chat Completions body (the hub)
    responses_request_prepare     Responses client -> Responses upstream (pass-through)

The chat body is what a Chat Completions client would have sent; the routes then
prepare it for an OpenAI upstream (openai_request_prepare) or translate it for an
Anthropic one (anthropic_request_from_openai). Pure: the given body is never
modified. What cannot be expressed raises TranslationError (400) naming the
Responses field (`input[3].content[0]`, `tool_choice`, ...).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.protocols.adapter import Prepared
from gateway.protocols.reasoning_carrier import is_tollgate_reasoning, reasoning_details_from
from gateway.protocols.request_common import TranslationError
from gateway.protocols.responses_tools import chat_text_format, chat_tool_choice, chat_tools

NO_CONVERSATIONS = (
    "Tollgate stores no conversations: send the full conversation in `input` instead "
    "of previous_response_id."
)
# Fields that need stored state or a server-side runtime Tollgate does not have.
_STATEFUL = {
    "conversation": "Tollgate stores no conversations: send the full conversation in "
    "`input` instead of `conversation`.",
    "prompt": "Stored prompt templates are not supported: send `instructions` and "
    "`input` instead of `prompt`.",
    "background": "Background responses are not supported: omit `background` (or "
    "set it to false) and stream the response instead.",
}
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_IMAGE_DETAILS = ("auto", "low", "high")
# Output items of tools the upstream ran itself (web search, file search, ...): their
# outcome is in the assistant text after them, and a chat upstream cannot take them.
_SERVER_TOOL_ITEMS = (
    "web_search_call",
    "file_search_call",
    "code_interpreter_call",
    "image_generation_call",
    "mcp_list_tools",
    "mcp_call",
    "tool_search_call",
    "tool_search_output",
    "compaction",
)


# --- pass-through -------------------------------------------------------------------
def responses_request_prepare(
    body: dict[str, Any], *, upstream_model: str, max_output_tokens: int
) -> Prepared:
    """Responses client -> Responses upstream: the upstream's model name, `store`
    forced to false (Tollgate keeps nothing, so nothing should be kept upstream for
    it either), and reasoning items minted by Tollgate (Anthropic thinking carried
    through an earlier turn) removed: OpenAI cannot decrypt them.

    `max_output_tokens` is accepted for symmetry; OpenAI applies its own limit."""
    del max_output_tokens
    _check_stateless(body)
    out = dict(body)
    out["model"] = upstream_model
    out["store"] = False
    items = body.get("input")
    if isinstance(items, list) and any(_is_tollgate_reasoning_item(i) for i in items):
        out["input"] = [i for i in items if not _is_tollgate_reasoning_item(i)]
    return Prepared(out)


def _is_tollgate_reasoning_item(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and item.get("type") == "reasoning"
        and is_tollgate_reasoning(item.get("encrypted_content"))
    )


def _check_stateless(body: dict[str, Any]) -> None:
    if body.get("previous_response_id"):
        raise TranslationError(NO_CONVERSATIONS, param="previous_response_id")
    for field, why in _STATEFUL.items():
        if body.get(field) not in (None, False):
            raise TranslationError(why, param=field)


# --- Responses -> Chat --------------------------------------------------------------
class _Builder:
    """Chat messages from Responses input items. Every chat message remembers the
    input item it came from (`sources`), so a later 400 can name the client's item."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.sources: list[str] = []
        self._assistant: dict[str, Any] | None = None  # the open assistant turn
        self._details: list[dict[str, Any]] = []  # reasoning waiting for its turn
        self._images: list[dict[str, Any]] = []  # from tool outputs: next user message
        self._images_source = ""

    def add(self, message: dict[str, Any], source: str) -> None:
        self._flush_images()
        self._assistant = None
        self._details = []
        self.messages.append(message)
        self.sources.append(source)

    def assistant(self, source: str) -> dict[str, Any]:
        """The open assistant turn (created on first use): assistant text, reasoning
        and function calls in a row make one chat assistant message."""
        if self._assistant is None:
            self._flush_images()
            message: dict[str, Any] = {"role": "assistant", "content": None}
            self.messages.append(message)
            self.sources.append(source)
            self._assistant = message
        if self._details:
            self._assistant.setdefault("reasoning_details", []).extend(self._details)
            self._details = []
        return self._assistant

    def reasoning(self, details: list[dict[str, Any]]) -> None:
        if self._assistant is not None and not self._assistant.get("tool_calls"):
            # Reasoning after the turn's text but before its calls: still this turn.
            self._assistant.setdefault("reasoning_details", []).extend(details)
        else:
            self._assistant = None
            self._details.extend(details)

    def tool_output(
        self, message: dict[str, Any], images: list[dict[str, Any]], source: str
    ) -> None:
        self._assistant = None
        self._details = []
        self.messages.append(message)
        self.sources.append(source)
        if images:
            self._images.extend(images)
            self._images_source = self._images_source or source

    def _flush_images(self) -> None:
        if self._images:
            self.messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Images returned by the tool calls above:"},
                        *self._images,
                    ],
                }
            )
            self.sources.append(self._images_source)
            self._images, self._images_source = [], ""

    def finish(self) -> None:
        self._flush_images()
        for message in self.messages:
            if message["role"] == "assistant":
                _index_details(message)
                if message["content"] is None and not message.get("tool_calls"):
                    message["content"] = ""


def _index_details(message: dict[str, Any]) -> None:
    for index, detail in enumerate(message.get("reasoning_details") or []):
        detail["index"] = index


def chat_request_from_responses(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A Responses request as a Chat Completions request (the model name kept), and
    the tools left out because a chat upstream cannot run them. See the table in
    docs/protocols.md ("Responses requests")."""
    chat, dropped, _ = _chat_request(body)
    return chat, dropped


def chat_request_with_sources(
    body: dict[str, Any],
) -> tuple[dict[str, Any], tuple[str, ...], list[str]]:
    """`chat_request_from_responses` plus, for each chat message, the Responses field
    it came from (`instructions`, `input`, `input[3]`)."""
    return _chat_request(body)


def _chat_request(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...], list[str]]:
    _check_stateless(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise TranslationError("The field 'model' is required.", param="model")
    builder = _Builder()
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        if instructions:
            builder.add({"role": "system", "content": instructions}, "instructions")
    elif isinstance(instructions, list):  # input items, as a stored prompt would give
        _items(builder, instructions, "instructions")
    elif instructions is not None:
        raise TranslationError("`instructions` must be a string.", param="instructions")
    raw = body.get("input")
    if isinstance(raw, str):
        builder.add({"role": "user", "content": raw}, "input")
    elif isinstance(raw, list):
        _items(builder, raw, "input")
    else:
        raise TranslationError(
            "`input` is required: a string or a list of input items.", param="input"
        )
    builder.finish()
    if not any(m["role"] != "system" for m in builder.messages):
        raise TranslationError(
            "`input` must contain at least one message or function call output.",
            param="input",
        )

    out: dict[str, Any] = {"model": model, "messages": builder.messages}
    tools, dropped = chat_tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    choice = chat_tool_choice(body.get("tool_choice"), tools, dropped)
    if choice is not None:
        out["tool_choice"] = choice
    if tools and body.get("parallel_tool_calls") is not None:
        out["parallel_tool_calls"] = bool(body["parallel_tool_calls"])

    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        out["reasoning_effort"] = reasoning["effort"]
    elif reasoning is not None and not isinstance(reasoning, dict):
        raise TranslationError("`reasoning` must be an object.", param="reasoning")
    chat_text_format(body.get("text"), out)
    if body.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = body["max_output_tokens"]
    for field in ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key"):
        if body.get(field) is not None:
            out[field] = body[field]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out, dropped, builder.sources


def _items(builder: _Builder, items: list[Any], where: str) -> None:
    for index, item in enumerate(items):
        param = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise TranslationError("Each input item must be an object.", param=param)
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if kind == "message":
            _message(builder, item, param)
        elif kind == "function_call":
            _function_call(builder, item, param)
        elif kind == "function_call_output":
            _function_call_output(builder, item, param)
        elif kind == "custom_tool_call":
            _custom_tool_call(builder, item, param)
        elif kind == "custom_tool_call_output":
            _function_call_output(builder, item, param)
        elif kind == "reasoning":
            _reasoning(builder, item, param)
        elif kind in _SERVER_TOOL_ITEMS:
            continue
        elif kind == "item_reference":
            raise TranslationError(
                "Tollgate stores no responses, so items cannot be referenced by id: send "
                "the item itself.",
                param=param,
            )
        else:
            raise TranslationError(
                f"Input items of type {kind!r} are not supported for this model (it is "
                "served through Chat Completions): send messages, function calls, "
                "function call outputs and reasoning items.",
                param=f"{param}.type",
            )


def _message(builder: _Builder, item: dict[str, Any], param: str) -> None:
    role = item.get("role")
    if role not in _MESSAGE_ROLES:
        raise TranslationError(
            f"Message role {role!r} is not supported (use user, assistant, system or developer).",
            param=f"{param}.role",
        )
    content = item.get("content")
    if role == "assistant":
        parts = _assistant_parts(content, param)
        message = builder.assistant(param)
        message["content"] = _join_assistant(message["content"], parts)
        return
    if isinstance(content, str):
        builder.add({"role": role, "content": content}, param)
        return
    if not isinstance(content, list):
        raise TranslationError(
            "Message content must be a string or a list of content parts.",
            param=f"{param}.content",
        )
    parts = [_input_part(part, f"{param}.content[{i}]", role) for i, part in enumerate(content)]
    builder.add({"role": role, "content": parts}, param)


def _input_part(part: Any, param: str, role: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise TranslationError("Text parts need a `text` string.", param=f"{param}.text")
        return {"type": "text", "text": text}
    if role in ("system", "developer"):
        raise TranslationError(
            "System and developer messages may only contain text.", param=f"{param}.type"
        )
    if kind == "input_image":
        if part.get("file_id"):
            raise TranslationError(
                "Images by `file_id` are not supported (Tollgate has no file storage): "
                "send `image_url` as an https URL or a base64 data URL.",
                param=f"{param}.file_id",
            )
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise TranslationError(
                "Image parts need an `image_url` (an https URL or a base64 data URL).",
                param=f"{param}.image_url",
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in _IMAGE_DETAILS:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if part.get("file_id") or part.get("file_url") or not isinstance(data, str):
            raise TranslationError(
                "Files are supported only inline, as `file_data` (a base64 data URL such "
                "as data:application/pdf;base64,...): Tollgate has no file storage, and "
                "file ids and file URLs cannot be sent to this model.",
                param=param,
            )
        if not data.startswith("data:"):
            raise TranslationError(
                "`file_data` must be a base64 data URL (data:application/pdf;base64,...).",
                param=f"{param}.file_data",
            )
        file: dict[str, Any] = {"file_data": data}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise TranslationError(
        f"Content part type {kind!r} is not supported for this model.", param=f"{param}.type"
    )


def _assistant_parts(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError(
            "Message content must be a string or a list of content parts.",
            param=f"{param}.content",
        )
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{param}.content[{index}]"
        if kind in ("output_text", "input_text", "text"):
            if not isinstance(part.get("text"), str):
                raise TranslationError("Text parts need a `text` string.", param=f"{where}.text")
            if part["text"]:
                parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            if isinstance(part.get("refusal"), str) and part["refusal"]:
                parts.append({"type": "refusal", "refusal": part["refusal"]})
        else:
            raise TranslationError(
                "Assistant messages may only contain output_text or refusal parts.",
                param=f"{where}.type",
            )
    return parts


def _join_assistant(existing: Any, parts: list[dict[str, Any]]) -> Any:
    """Assistant content: a plain string while it is one text, else a list of parts."""
    if existing is None or existing == "":
        old: list[dict[str, Any]] = []
    elif isinstance(existing, str):
        old = [{"type": "text", "text": existing}]
    else:
        old = list(existing)
    merged = old + parts
    if not merged:
        return existing
    if len(merged) == 1 and merged[0]["type"] == "text":
        return merged[0]["text"]
    return merged


def _call_id(item: dict[str, Any], param: str) -> str:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("Function call items need a `call_id`.", param=f"{param}.call_id")
    return call_id


def _function_call(builder: _Builder, item: dict[str, Any], param: str) -> None:
    call_id = _call_id(item, param)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise TranslationError("Function call items need a `name`.", param=f"{param}.name")
    arguments = item.get("arguments")
    if arguments is None:
        arguments = "{}"
    if not isinstance(arguments, str):
        raise TranslationError("`arguments` must be a string of JSON.", param=f"{param}.arguments")
    message = builder.assistant(param)
    message.setdefault("tool_calls", []).append(
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    )


def _custom_tool_call(builder: _Builder, item: dict[str, Any], param: str) -> None:
    """A freeform (custom) tool call from an earlier turn, kept in the history as a
    function call whose arguments are {"input": ...}, so that its output still has
    the call it answers."""
    call_id = _call_id(item, param)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise TranslationError("Custom tool call items need a `name`.", param=f"{param}.name")
    arguments = json.dumps({"input": str(item.get("input") or "")}, ensure_ascii=False)
    message = builder.assistant(param)
    message.setdefault("tool_calls", []).append(
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    )


def _function_call_output(builder: _Builder, item: dict[str, Any], param: str) -> None:
    call_id = _call_id(item, param)
    output = item.get("output")
    images: list[dict[str, Any]] = []
    if isinstance(output, str):
        content: Any = output
    elif isinstance(output, list):
        texts: list[dict[str, Any]] = []
        for index, part in enumerate(output):
            where = f"{param}.output[{index}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("input_text", "output_text", "text"):
                texts.append({"type": "text", "text": str(part.get("text") or "")})
            elif kind in ("input_image", "input_file"):
                images.append(_input_part(part, where, "user"))
            else:
                raise TranslationError(
                    f"Function call output part type {kind!r} is not supported.",
                    param=f"{where}.type",
                )
        content = texts if texts else ""
    elif output is None:
        content = ""
    else:
        raise TranslationError(
            "`output` must be a string or a list of content parts.", param=f"{param}.output"
        )
    builder.tool_output(
        {"role": "tool", "tool_call_id": call_id, "content": content}, images, param
    )


def _reasoning(builder: _Builder, item: dict[str, Any], param: str) -> None:
    """Reasoning Tollgate minted (Anthropic's signed thinking) goes back on the next
    assistant turn as `reasoning_details`; anything else (OpenAI's own encrypted
    reasoning, bare summaries) cannot be given to a chat upstream and is left out."""
    encrypted = item.get("encrypted_content")
    if not isinstance(encrypted, str) or not is_tollgate_reasoning(encrypted):
        return
    details = reasoning_details_from(encrypted, param=f"{param}.encrypted_content")
    if details:
        builder.reasoning(details)
