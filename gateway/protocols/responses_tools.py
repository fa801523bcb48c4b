"""Responses tools and output format as Chat Completions has them.

    chat_tools          function tools converted; every other tool (built-in, MCP,
                        namespace, custom) left out and named, since a chat upstream
                        cannot run it
    chat_tool_choice    tool_choice; one that requires a tool left out is a 400
    chat_text_format    text.format (json_schema, json_object) and text.verbosity

Pure; raise TranslationError (400) naming the Responses field.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.protocols.request_common import TranslationError


def chat_tools(raw: Any) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    if raw in (None, []):
        return [], ()
    if not isinstance(raw, list):
        raise TranslationError("`tools` must be a list.", param="tools")
    tools: list[dict[str, Any]] = []
    dropped: list[str] = []
    for index, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise TranslationError("Each tool must be an object.", param=f"tools[{index}]")
        kind = tool.get("type")
        if kind == "function":
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise TranslationError(
                    "Function tools need a `name`.", param=f"tools[{index}].name"
                )
            function: dict[str, Any] = {"name": name}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            if tool.get("parameters") is not None:
                function["parameters"] = copy.deepcopy(tool["parameters"])
            if tool.get("strict") is not None:
                function["strict"] = bool(tool["strict"])
            tools.append({"type": "function", "function": function})
        else:
            dropped.append(tool_label(tool))
    return tools, tuple(dropped)


def tool_label(tool: dict[str, Any]) -> str:
    kind = str(tool.get("type") or "unknown")
    name = tool.get("name") or tool.get("server_label")
    return f"{kind}:{name}" if isinstance(name, str) and name else kind


def chat_tool_choice(choice: Any, tools: list[dict[str, Any]], dropped: tuple[str, ...]) -> Any:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return choice if tools else None
    if choice == "required":
        if not tools:
            raise TranslationError(
                "tool_choice is 'required' but this model can run none of the tools sent"
                + (f" ({', '.join(dropped)} cannot run here)." if dropped else "."),
                param="tool_choice",
            )
        return choice
    if not isinstance(choice, dict):
        raise TranslationError("Unsupported `tool_choice`.", param="tool_choice")
    kind = choice.get("type")
    names = {t["function"]["name"] for t in tools}
    if kind == "function":
        name = choice.get("name")
        if not isinstance(name, str) or name not in names:
            raise TranslationError(
                f"tool_choice names the function {name!r}, which is not among the "
                "function tools sent.",
                param="tool_choice",
            )
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        allowed = []
        for tool in choice.get("tools") or []:
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise TranslationError(
                    "This model can only be restricted to function tools: "
                    f"{tool_label(tool if isinstance(tool, dict) else {})} cannot run here.",
                    param="tool_choice.tools",
                )
            allowed.append({"type": "function", "function": {"name": tool.get("name")}})
        return {
            "type": "allowed_tools",
            "allowed_tools": {"mode": choice.get("mode") or "auto", "tools": allowed},
        }
    label = tool_label(choice)
    raise TranslationError(
        f"tool_choice asks for the built-in tool {label!r}, which this model cannot run "
        "(it is served through Chat Completions, which runs only function tools).",
        param="tool_choice",
    )


def chat_text_format(text: Any, out: dict[str, Any]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise TranslationError("`text` must be an object.", param="text")
    fmt = text.get("format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_schema":
            schema: dict[str, Any] = {"name": fmt.get("name") or "response"}
            for field in ("description", "schema", "strict"):
                if fmt.get(field) is not None:
                    schema[field] = copy.deepcopy(fmt[field])
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif kind not in (None, "text"):
            raise TranslationError(
                f"text.format type {kind!r} is not supported.", param="text.format.type"
            )
    elif fmt is not None:
        raise TranslationError("`text.format` must be an object.", param="text.format")
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
