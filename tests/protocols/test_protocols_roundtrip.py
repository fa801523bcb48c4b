"""Property: an OpenAI request sent through Anthropic's format and back means the same
thing (messages, tool calls and their ids, tool results, tools, tool_choice, sampling,
stop, max tokens), for generated conversations of the shape agents produce."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocols.requests import (
    anthropic_request_from_openai,
    openai_request_from_anthropic,
)

MAX = 64000
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
texts = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    tool_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": draw(texts),
                "parameters": {
                    "type": "object",
                    "properties": {
                        key: {"type": "string"}
                        for key in draw(st.lists(names, max_size=3, unique=True))
                    },
                },
            },
        }
        for name in tool_names
    ]
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append(
            {"role": draw(st.sampled_from(["system", "developer"])), "content": draw(texts)}
        )
    call_ids = iter(
        draw(
            st.lists(
                st.from_regex(r"call_[A-Za-z0-9]{1,24}", fullmatch=True),
                min_size=12,
                max_size=12,
                unique=True,
            )
        )
    )
    for _ in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(texts)})
        calls = [
            {
                "id": next(call_ids),
                "type": "function",
                "function": {
                    "name": draw(st.sampled_from(tool_names)),
                    "arguments": json.dumps(draw(arguments)),
                },
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": draw(st.one_of(texts, st.none() if calls else texts)),
        }
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        messages.extend(
            {"role": "tool", "tool_call_id": c["id"], "content": draw(texts)} for c in calls
        )
    body: dict[str, Any] = {
        "model": "any",
        "messages": messages,
        "tools": tools,
        "max_completion_tokens": draw(st.integers(1, MAX)),
    }
    choice = draw(st.sampled_from(["auto", "none", "required", "named", None]))
    if choice == "named":
        body["tool_choice"] = {
            "type": "function",
            "function": {"name": draw(st.sampled_from(tool_names))},
        }
    elif choice:
        body["tool_choice"] = choice
    if draw(st.booleans()):
        body["parallel_tool_calls"] = False
    if draw(st.booleans()):
        body["temperature"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        body["stop"] = draw(st.lists(texts, min_size=1, max_size=4))
    return body


def text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part["text"] for part in content)
    return content or ""


def meaning(body: dict[str, Any]) -> dict[str, Any]:
    """What a model would be told, in a canonical form."""
    system = [
        text_of(m["content"]) for m in body["messages"] if m["role"] in ("system", "developer")
    ]
    turns = []
    for message in body["messages"]:
        if message["role"] in ("system", "developer"):
            continue
        turns.append(
            (
                message["role"],
                text_of(message.get("content")),
                [
                    (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                    for c in message.get("tool_calls") or []
                ],
                message.get("tool_call_id"),
            )
        )
    choice = body.get("tool_choice")
    if choice is None and body.get("parallel_tool_calls") is False:
        choice = "auto"
    return {
        "system": "".join(system),
        "turns": turns,
        "tools": [
            (t["function"]["name"], t["function"].get("description"), t["function"]["parameters"])
            for t in body["tools"]
        ],
        "tool_choice": choice,
        "parallel": body.get("parallel_tool_calls", True) and choice != "none",
        "temperature": body.get("temperature"),
        "stop": body.get("stop"),
        "max": body["max_completion_tokens"],
    }


@settings(max_examples=150, deadline=None)
@given(requests())
def test_openai_to_anthropic_and_back_preserves_meaning(body: dict[str, Any]) -> None:
    anthropic_body = anthropic_request_from_openai(
        body, upstream_model="claude-sonnet-4-5", max_output_tokens=MAX
    )
    back = openai_request_from_anthropic(
        anthropic_body, upstream_model="gpt-5", max_output_tokens=MAX
    )
    assert meaning(back) == meaning(body)
