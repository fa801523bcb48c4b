"""OpenAI -> Anthropic request parameters: tools, tool_choice, stop sequences,
sampling, response_format and reasoning (the non-message rows of the table in
docs/protocols.md). Used by request_anthropic.py."""

from __future__ import annotations

import copy
from typing import Any

from gateway.protocols.request_common import (
    ANTHROPIC_EFFORT_BY_OPENAI,
    MIN_THINKING_BUDGET,
    OPENAI_EFFORTS,
    THINKING_BUDGET_BY_EFFORT,
    TranslationError,
    claude_uses_adaptive_thinking,
)


def with_cache_control(block: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    if isinstance(source.get("cache_control"), dict):
        block["cache_control"] = copy.deepcopy(source["cache_control"])
    return block


def tools(raw: Any) -> list[dict[str, Any]]:
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        raise TranslationError("`tools` must be a list.", param="tools")
    tools = []
    for index, tool in enumerate(raw):
        param = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise TranslationError("Only function tools are supported for this model.", param=param)
        function = tool.get("function") or {}
        if not function.get("name"):
            raise TranslationError("Each tool needs `function.name`.", param=f"{param}.function")
        schema = copy.deepcopy(function.get("parameters") or {})
        if not isinstance(schema, dict):
            raise TranslationError(
                "`function.parameters` must be a JSON schema object.",
                param=f"{param}.function.parameters",
            )
        schema.setdefault("type", "object")
        # `strict` is not forwarded: see docs/protocols.md (Anthropic's strict tool use
        # has model and schema-complexity limits that would refuse working requests).
        out: dict[str, Any] = {"name": function["name"], "input_schema": schema}
        if function.get("description"):
            out["description"] = function["description"]
        tools.append(with_cache_control(out, tool))
    return tools


def tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise TranslationError("`tool_choice.function.name` is required.", param="tool_choice")
        result = {"type": "tool", "name": name}
    else:
        raise TranslationError(
            "tool_choice must be 'auto', 'none', 'required' or a named function for this model.",
            param="tool_choice",
        )
    if parallel is False:
        if result is None:
            result = {"type": "auto"}
        if result["type"] != "none":
            result["disable_parallel_tool_use"] = True
    return result


# --- parameters ---------------------------------------------------------------------
def stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise TranslationError("`stop` must be a string or a list of strings.", param="stop")
    # Anthropic refuses whitespace-only stop sequences.
    return [s for s in items if s.strip()]


def sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise TranslationError("`temperature` must be a number.", param="temperature")
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
            raise TranslationError("`top_p` must be a number.", param="top_p")
        # Newer Claude models refuse temperature and top_p together: keep temperature.
        if temperature is None:
            out["top_p"] = float(top_p)


def response_format(fmt: Any, out: dict[str, Any]) -> None:
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise TranslationError(
                "`response_format.json_schema.schema` is required.",
                param="response_format.json_schema.schema",
            )
        out.setdefault("output_config", {})["format"] = {
            "type": "json_schema",
            "schema": copy.deepcopy(schema),
        }
        return
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        raise TranslationError(
            "JSON mode (`json_object`) has no equivalent for this model: use "
            "response_format type `json_schema` with a schema.",
            param="response_format",
        )
    raise TranslationError("Unsupported `response_format`.", param="response_format")


def reasoning(effort: Any, out: dict[str, Any], upstream_model: str) -> None:
    if effort is None or effort == "none":
        return
    if effort not in OPENAI_EFFORTS:
        raise TranslationError(
            f"`reasoning_effort` must be one of {', '.join(OPENAI_EFFORTS)}.",
            param="reasoning_effort",
        )
    choice = out.get("tool_choice", {}).get("type")
    if choice in ("any", "tool"):
        raise TranslationError(
            "This model cannot reason while forced to call a tool: with reasoning_effort "
            "set, tool_choice must be 'auto' or 'none'.",
            param="tool_choice",
        )
    if _mid_tool_loop_without_thinking(out["messages"]):
        # Anthropic needs the turn's signed thinking block back to continue a tool loop
        # with thinking on; a client that did not keep it gets this turn without.
        return
    if claude_uses_adaptive_thinking(upstream_model):
        out["thinking"] = {"type": "adaptive"}
        out.setdefault("output_config", {})["effort"] = ANTHROPIC_EFFORT_BY_OPENAI[effort]
    else:
        budget = min(THINKING_BUDGET_BY_EFFORT[effort], out["max_tokens"] - 1)
        if budget < MIN_THINKING_BUDGET:
            raise TranslationError(
                f"With reasoning_effort set, max tokens must be above {MIN_THINKING_BUDGET} "
                "for this model (thinking needs at least 1024 tokens of its own).",
                param="max_completion_tokens",
            )
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    # Anthropic: thinking is incompatible with a modified temperature, and allows top_p
    # only from 0.95 to 1.
    out.pop("temperature", None)
    if "top_p" in out and out["top_p"] < 0.95:
        out.pop("top_p")


def _mid_tool_loop_without_thinking(turns: list[dict[str, Any]]) -> bool:
    last = next((i for i in range(len(turns) - 1, -1, -1) if turns[i]["role"] == "assistant"), None)
    if last is None or last != len(turns) - 2:
        return False
    content = turns[last]["content"]
    uses_tools = any(b["type"] == "tool_use" for b in content)
    return uses_tools and content[0]["type"] not in ("thinking", "redacted_thinking")
