"""What the fake "model" answers: a pure function of the request, the same in both wire
formats (see the package docstring for the rules and the token formulas).

Each wire module turns its request into a `Conversation`; `plan_reply` turns that into
a `Plan` (thinking, text chunks, tool calls, stop reason, token counts) which the wire
module renders as JSON or as a stream.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

TOOL_CALL_TOKENS = 10  # one tool call, in history or in a reply
TOOL_DEFINITION_TOKENS = 10  # plus the words of its description
MEDIA_TOKENS = 100  # one image or document
THINKING_TEXT = "Let me think about this request."
NARRATE_TRIGGER = "narrate"
PARALLEL_TRIGGER = "parallel"
SEARCH_TRIGGER = "search"
SEARCH_RESULT_URL = "https://example.com/search-result"
# What the demo's "model" may call: tools that only read (agents' own names for them).
DEMO_TOOLS = frozenset(
    {"read", "read_file", "ls", "list_files", "list_dir", "glob", "grep", "search_files"}
)

# A word with the whitespace before it: one output token and one stream chunk.
_WORD = re.compile(r"\s*\S+")


def words(text: str) -> int:
    return len(text.split())


@dataclass(slots=True)
class Unit:
    """One countable piece of the prompt, in prompt order (tools, system, messages)."""

    tokens: int
    obj: Any  # what the piece is, for prefix hashing when caching applies
    ttl: str | None = None  # "5m" / "1h" when the piece carries a cache breakpoint


@dataclass(slots=True)
class Conversation:
    model: str
    units: list[Unit]
    last_kind: str  # "user" or "tool_result"
    last_text: str
    tools: list[tuple[str, dict[str, Any]]]  # (name, JSON schema of the arguments)
    tool_mode: str = "auto"  # "auto", "none", "required" (any tool) or "tool"
    forced_tool: str | None = None
    parallel: bool = True
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    thinking: bool = False
    reasoning_tokens: int = 0  # OpenAI reasoning_effort, counted but never shown
    tool_arguments: dict[str, dict[str, Any]] = field(default_factory=dict)  # by tool name
    file_write: tuple[str, str] | None = None  # (path, content) for the agent's own tool
    tools_when_asked: bool = False  # the demo's rule: call a tool only if the text says "tool"
    web_search: bool = False  # the request offers Anthropic's server-side web search

    def input_tokens(self) -> int:
        return sum(unit.tokens for unit in self.units)


@dataclass(slots=True)
class Plan:
    thinking: str = ""
    chunks: list[str] = field(default_factory=list)
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, JSON args)
    stop: str = "end_turn"  # end_turn, max_tokens, stop_sequence, tool_use
    stop_sequence: str | None = None
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_query: str | None = None  # the provider searched the web for this

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def plan_reply(conv: Conversation) -> Plan:
    plan = Plan()
    budget = conv.max_tokens if conv.max_tokens is not None else 1 << 30
    if conv.thinking:
        thought = _WORD.findall(THINKING_TEXT)
        if len(thought) > budget:
            plan.thinking = "".join(thought[:budget]).strip()
            plan.output_tokens = budget
            plan.stop = "max_tokens"
            return plan
        plan.thinking = THINKING_TEXT
        budget -= len(thought)
        plan.output_tokens += len(thought)
    if conv.reasoning_tokens:
        used = min(conv.reasoning_tokens, budget)
        plan.reasoning_tokens = used
        plan.output_tokens += used
        budget -= used
        if used < conv.reasoning_tokens:
            plan.stop = "max_tokens"
            return plan

    if conv.web_search and conv.last_kind == "user" and SEARCH_TRIGGER in conv.last_text.lower():
        plan.web_search_query = conv.last_text  # searched server-side, then answered
    calls = _tool_calls(conv)
    if calls:
        text = (
            f"Calling {', '.join(name for name, _ in calls)}."
            if NARRATE_TRIGGER in conv.last_text.lower()
            else ""
        )
    elif conv.last_kind == "tool_result":
        text = f"Tool result: {conv.last_text}"
    else:
        text = f"Echo: {conv.last_text}"
    text = _apply_stop_sequences(plan, text, conv.stop)
    if plan.stop == "stop_sequence":
        calls = []
    chunks = _WORD.findall(text)
    if len(chunks) > budget:
        plan.chunks = chunks[:budget]
        plan.output_tokens += budget
        plan.stop = "max_tokens"
        return plan
    plan.chunks = chunks
    plan.output_tokens += len(chunks)
    budget -= len(chunks)
    for name, arguments in calls:
        if budget < TOOL_CALL_TOKENS:
            plan.stop = "max_tokens"
            return plan
        plan.tool_calls.append((name, arguments))
        plan.output_tokens += TOOL_CALL_TOKENS
        budget -= TOOL_CALL_TOKENS
    if plan.tool_calls:
        plan.stop = "tool_use"
    return plan


def _apply_stop_sequences(plan: Plan, text: str, stop: list[str]) -> str:
    if not stop:
        return text
    cut, hit = len(text), None
    for sequence in stop:
        at = text.find(sequence) if sequence else -1
        if 0 <= at < cut:
            cut, hit = at, sequence
    if hit is None:
        return text
    plan.stop, plan.stop_sequence = "stop_sequence", hit
    return text[:cut]


def _tool_calls(conv: Conversation) -> list[tuple[str, str]]:
    if not conv.tools or conv.tool_mode == "none":
        return []
    if conv.last_kind == "tool_result" and conv.tool_mode == "auto":
        return []  # the model has what it asked for: it answers in text
    if conv.tools_when_asked and conv.tool_mode == "auto":
        # The demo: an agent gets an answer, not a loop (Claude Code's first tool starts
        # a sub-agent, whose first tool starts another...). Only when the text asks for
        # a tool, and only a read-only one.
        if "tool" not in conv.last_text.lower():
            return []
        safe = [(name, schema) for name, schema in conv.tools if name.lower() in DEMO_TOOLS]
        return [(name, json.dumps(example_arguments(schema))) for name, schema in safe[:1]]
    by_name = dict(conv.tools)
    if conv.file_write and conv.tool_mode != "tool":
        writer = file_write_call(conv.tools, *conv.file_write)
        if writer is not None:
            return [(writer[0], json.dumps(writer[1], separators=(",", ":")))]
    named = [name for name, _ in conv.tools if name in conv.tool_arguments]
    if conv.tool_mode == "tool" and conv.forced_tool in by_name:
        chosen = [conv.forced_tool]
    elif named:
        chosen = named[:1]
    elif conv.parallel and len(conv.tools) > 1 and PARALLEL_TRIGGER in conv.last_text.lower():
        chosen = [conv.tools[0][0], conv.tools[1][0]]
    else:
        chosen = [conv.tools[0][0]]
    return [
        (
            name,
            json.dumps(
                conv.tool_arguments.get(name) or example_arguments(by_name[name]),
                separators=(",", ":"),
            ),
        )
        for name in chosen
    ]


# How agents name the path and the content of their file-writing tools (Claude Code
# Write: file_path/content; opencode write: filePath/content; Cline editor:
# path/new_text), and the command of their shell tools (Codex exec_command: cmd).
_PATH_KEYS = ("file_path", "filePath", "path", "absolute_path", "absolutePath", "target_file")
_CONTENT_KEYS = ("content", "contents", "file_text", "new_text", "text")
_COMMAND_KEYS = ("cmd", "command")
_SHELL_NAMES = ("exec_command", "shell", "bash", "execute_command", "run_command")


def file_write_call(
    tools: list[tuple[str, dict[str, Any]]], path: str, content: str
) -> tuple[str, dict[str, Any]] | None:
    """A call that writes `content` to `path` with one of the request's own tools: a
    tool whose schema takes a path and a content (names with "write" first), else a
    shell tool running printf. None when the request offers neither."""

    def props(schema: dict[str, Any]) -> dict[str, Any]:
        found = schema.get("properties") if isinstance(schema, dict) else None
        return found if isinstance(found, dict) else {}

    writers = []
    for name, schema in tools:
        fields = props(schema)
        path_key = next((k for k in _PATH_KEYS if k in fields), None)
        content_key = next((k for k in _CONTENT_KEYS if k in fields), None)
        if path_key and content_key:
            writers.append(
                (0 if "write" in name.lower() else 1, name, schema, path_key, content_key)
            )
    if writers:
        _, name, schema, path_key, content_key = min(writers, key=lambda w: w[0])
        arguments = example_arguments(schema)
        arguments.update({path_key: path, content_key: content})
        return name, arguments
    for name, schema in tools:
        keys = list(props(schema))
        if name == "apply_patch" and keys in (["input"], ["patchText"]):
            # Cline's and opencode's apply_patch (for GPT model ids): one patch string
            # adding the file.
            added = "".join(f"+{line}\n" for line in content.split("\n"))
            patch = f"*** Begin Patch\n*** Add File: {path}\n{added}*** End Patch"
            return name, {keys[0]: patch}
    for name, schema in tools:
        command_key = next((k for k in _COMMAND_KEYS if k in props(schema)), None)
        if command_key and name.lower() in _SHELL_NAMES:
            arguments = example_arguments(schema)
            arguments[command_key] = f"printf %s {shlex.quote(content)} > {shlex.quote(path)}"
            return name, arguments
    return None


def example_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments holding every required property of the schema, and nothing else."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties") or {}
    return {
        name: example_value(name, properties.get(name) or {})
        for name in schema.get("required") or ()
    }


def example_value(name: str, prop: dict[str, Any]) -> Any:
    if not isinstance(prop, dict):
        return f"{name}-value"
    if prop.get("enum"):
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    if "default" in prop:
        return prop["default"]
    for key in ("anyOf", "oneOf"):
        if prop.get(key):
            return example_value(name, prop[key][0])
    kind = prop.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return example_arguments(prop)
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return prop.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"{name}-value"


def split_fragments(text: str, parts: int = 3) -> list[str]:
    """Cut a JSON string into pieces that break it mid-token, as vendors stream it."""
    if len(text) < 2:
        return [text]
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]
