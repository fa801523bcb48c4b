"""A Codex-style tool loop, two turns, through each Responses route against the fake
upstream's real wire endpoints: the routes' request bodies are what each vendor
accepts, the streams they answer are read back by the openai SDK, and the turn-2 body
built from turn 1's output items is accepted too. Over Anthropic the fake checks the
thinking signature, so Anthropic's signed thinking must survive the Responses client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.protocols.registry import route
from tests.protocols.test_responses_stream import relay, sdk_reads

SHELL = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a command",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
    },
}
MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-5.5", "responses": "gpt-5.5"}
PATHS = {
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
    "responses": "/v1/responses",
}


def codex_request(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "public",
        "instructions": "You are Codex.",
        "input": items,
        "tools": [SHELL, {"type": "web_search"}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "thread-1",
    }


def turn(fake_upstream: Any, wire: str, body: dict[str, Any]) -> tuple[Any, list[Any], Any]:
    r = route("responses", wire)
    prepared = r.request(body, upstream_model=MODELS[wire], max_output_tokens=8192)
    headers = {"authorization": "Bearer sk-test", "anthropic-version": "2023-06-01"}
    answer = httpx.post(fake_upstream.url + PATHS[wire], json=prepared.body, headers=headers)
    assert answer.status_code == 200, answer.text
    usage: list[Any] = []
    adapter = r.stream(
        model="public",
        request_body=body,
        input_estimate=1,
        usage_hook=lambda u: usage.append(u) or {"cost": 0.001},
    )
    response = sdk_reads(relay(adapter, [answer.content]))
    assert adapter.done and adapter.error is None and len(usage) == 1
    return response, usage, prepared


def next_input(first: list[dict[str, Any]], response: Any, output: str) -> list[dict[str, Any]]:
    items = [*first]
    for item in response.output:
        items.append(item.model_dump(exclude_none=True, exclude={"parsed_arguments"}))
    calls = [o for o in response.output if o.type == "function_call"]
    items += [
        {"type": "function_call_output", "call_id": c.call_id, "output": output} for c in calls
    ]
    return items


@pytest.mark.parametrize("wire", ["anthropic", "openai", "responses"])
def test_a_codex_tool_loop_over_each_wire(fake_upstream: Any, wire: str) -> None:
    first = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls"}]}]
    response, usage, prepared = turn(fake_upstream, wire, codex_request(first))
    call = [o for o in response.output if o.type == "function_call"][-1]
    assert call.name == "exec_command" and json.loads(call.arguments) == {"cmd": "cmd-value"}
    kinds = [o.type for o in response.output]
    # OpenAI's Chat Completions shows no reasoning; Anthropic's thinking and the
    # Responses wire's reasoning items come first
    assert kinds[0] == ("function_call" if wire == "openai" else "reasoning")
    if wire == "anthropic":
        assert response.output[0].encrypted_content.startswith("tgr1.")
        assert call.call_id.startswith("call_")
    if wire == "responses":
        assert response.output[0].encrypted_content.startswith("gAAAAA")  # OpenAI's own
    assert prepared.dropped_tools == (() if wire == "responses" else ("web_search",))
    assert response.usage.input_tokens == usage[0].prompt_tokens

    second, _, prepared = turn(
        fake_upstream, wire, codex_request(next_input(first, response, "a.py"))
    )
    assert second.output_text == "Tool result: a.py"
    if wire == "anthropic":  # the signed thinking went back first, and was accepted
        assistant = prepared.body["messages"][1]
        assert assistant["content"][0]["type"] == "thinking"


def test_anthropic_thinking_does_not_break_a_fallback_to_the_responses_wire(
    fake_upstream: Any,
) -> None:
    first = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls"}]}]
    response, _, _ = turn(fake_upstream, "anthropic", codex_request(first))
    items = next_input(first, response, "a.py")
    # the next turn lands on an OpenAI Responses upstream: Tollgate's reasoning is left out
    second, _, prepared = turn(fake_upstream, "responses", codex_request(items))
    assert second.output_text == "Tool result: a.py"
    assert all(i.get("type") != "reasoning" for i in prepared.body["input"])
    # and back on Anthropic, OpenAI's encrypted reasoning is left out in turn
    items = next_input(items, second, "")
    items.append({"type": "message", "role": "user", "content": "thanks"})
    assert any(i.get("encrypted_content", "").startswith("gAAAAA") for i in items)
    third, _, _ = turn(fake_upstream, "anthropic", codex_request(items))
    assert [o.type for o in third.output] == ["reasoning", "function_call"]  # the fake's reply
