"""Anthropic server tools on a model served through an OpenAI-protocol provider: left
out and named (Cline offers `web_search_20250305` on every request), unless required."""

from __future__ import annotations

import anthropic
import pytest

from gateway.models import RequestLog

pytestmark = pytest.mark.django_db(transaction=True)

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
READ = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
    },
}


def sdk(world) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_server_tools_are_left_out_named_in_a_header_and_in_the_request_log(world, stream):
    body = {
        "model": "test-gpt-5.5",
        "max_tokens": 200,
        "tools": [READ, WEB_SEARCH],
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": "read it"}],
    }
    if stream:
        with sdk(world).messages.with_streaming_response.create(**body, stream=True) as raw:
            headers = raw.headers
            text = raw.read().decode()
        assert '"name":"read_file"' in text.replace(" ", "")
    else:
        raw = sdk(world).messages.with_raw_response.create(**body)
        headers = raw.headers
        assert [b.name for b in raw.parse().content if b.type == "tool_use"] == ["read_file"]

    assert headers["x-tollgate-dropped-tools"] == "web_search_20250305"
    upstream = world.fake.requests[-1]["body"]
    assert [t["function"]["name"] for t in upstream["tools"]] == ["read_file"]
    world.drain()
    row = RequestLog.objects.get()
    assert (row.status_code, row.dropped_tools) == (200, "web_search_20250305")


def test_only_server_tools_leaves_a_plain_request(world):
    message = sdk(world).messages.create(
        model="test-gpt-5.5",
        max_tokens=200,
        tools=[WEB_SEARCH],
        tool_choice={"type": "auto"},
        messages=[{"role": "user", "content": "hi"}],
    )

    assert message.content[0].text == "Echo: hi"
    upstream = world.fake.requests[-1]["body"]
    assert "tools" not in upstream and "tool_choice" not in upstream


@pytest.mark.parametrize(
    ("tools", "choice"),
    [([READ, WEB_SEARCH], {"type": "tool", "name": "web_search"}), ([WEB_SEARCH], {"type": "any"})],
)
def test_a_tool_choice_that_needs_a_server_tool_is_a_400(world, tools, choice):
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk(world).messages.create(
            model="test-gpt-5.5",
            max_tokens=200,
            tools=tools,
            tool_choice=choice,
            messages=[{"role": "user", "content": "search"}],
        )

    assert "web_search" in caught.value.body["error"]["message"]
    assert world.fake.requests == []


def test_an_anthropic_upstream_gets_its_server_tools(world):
    sdk(world).messages.create(
        model="claude-test-4.6",
        max_tokens=200,
        tools=[READ, WEB_SEARCH],
        messages=[{"role": "user", "content": "hi"}],
    )

    assert world.fake.requests[-1]["body"]["tools"][1] == WEB_SEARCH


def test_a_tool_loop_that_lost_its_thinking_block_is_continued_without_thinking(world):
    # Roo Code's and Cline's Anthropic providers drop the thinking block from history
    # while thinking stays on; Anthropic (and the fake) refuse that continuation.
    message = sdk(world).messages.create(
        model="claude-test-4.6",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[READ],
        messages=[
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
            },
        ],
    )

    assert message.content[-1].text == "Tool result: ok"
    assert "thinking" not in world.fake.requests[-1]["body"]
