"""Malformed requests are the caller's 400 in its own protocol's shape: never a 5xx,
never sent upstream (where an upstream's error would count against its health for
every tenant)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]
SURROGATE_ID = "call_\\ud800x"  # a lone surrogate, as a JSON escape
TOOL_LOOP_WITH_A_SURROGATE = (
    '{"model":"claude-test-4.6","messages":[{"role":"user","content":"hi"},'
    '{"role":"assistant","content":null,"tool_calls":[{"id":"' + SURROGATE_ID + '",'
    '"type":"function","function":{"name":"f","arguments":"{}"}}]},'
    '{"role":"tool","tool_call_id":"' + SURROGATE_ID + '","content":"r"}],'
    '"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}'
)


def post(world, path, body, *, anthropic=False):
    headers = {"authorization": f"Bearer {world.secret}", "content-type": "application/json"}
    if anthropic:
        headers["anthropic-version"] = "2023-06-01"
    content = (
        body if isinstance(body, str | bytes) else httpx.Request("POST", "/", json=body).content
    )
    return httpx.post(f"{world.url}{path}", content=content, headers=headers, timeout=30)


CASES = [
    (
        "/v1/chat/completions",
        {
            "model": "test-gpt-5.5",
            "stream": True,
            "stream_options": [["include_usage", True]],
            "messages": HI,
        },
        "stream_options",
    ),
    ("/v1/chat/completions", {"model": "test-gpt-5.5", "stop": 1, "messages": HI}, "stop"),
    ("/v1/chat/completions", {"model": "test-gpt-5.5", "messages": ["hi"]}, "messages[0]"),
    (
        "/v1/chat/completions",
        {"model": "test-gpt-5.5", "messages": [{"role": 1}]},
        "messages[0].role",
    ),
    (
        "/v1/chat/completions",
        {"model": "test-gpt-5.5", "max_tokens": "9", "messages": HI},
        "max_tokens",
    ),
    ("/v1/chat/completions", {"model": "test-gpt-5.5", "stream": "yes", "messages": HI}, "stream"),
    (
        "/v1/messages",
        {"model": "test-gpt-5.5", "max_tokens": 10, "output_config": "x", "messages": HI},
        "output_config",
    ),
    (
        "/v1/messages",
        {
            "model": "claude-test-4.6",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": 5}],
        },
        "messages[0].content",
    ),
    (
        "/v1/messages",
        {"model": "claude-test-4.6", "max_tokens": True, "messages": HI},
        "max_tokens",
    ),
    ("/v1/messages/count_tokens", {"model": "test-gpt-5.5", "messages": "hi"}, "messages"),
    ("/v1/messages/count_tokens", {"model": "claude-test-4.6", "messages": "hi"}, "messages"),
    ("/v1/responses", {"model": "test-gpt-5.5", "input": "hi", "tools": {}}, "tools"),
    ("/v1/responses", {"model": "test-gpt-5.5", "input": [3]}, "input[0]"),
]


@pytest.mark.parametrize(("path", "body", "param"), CASES, ids=[c[2] for c in CASES])
def test_a_field_of_the_wrong_type_is_a_400_naming_it(world, path, body, param):
    anthropic = path.startswith("/v1/messages")

    response = post(world, path, body, anthropic=anthropic)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if anthropic:
        assert error["type"] == "invalid_request_error"
        assert param in error["message"].replace("'", "`").replace("`", "")
    else:
        assert error["param"] == param
    assert world.fake.requests == []


def test_json_nested_a_hundred_thousand_deep_is_a_400(world):
    deep = '{"model":"test-gpt-5.5","messages":' + "[" * 100_000 + "]" * 100_000 + "}"

    response = post(world, "/v1/chat/completions", deep)

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


def test_a_lone_surrogate_in_a_tool_call_id_across_protocols_is_no_5xx(world):
    response = post(world, "/v1/chat/completions", TOOL_LOOP_WITH_A_SURROGATE)

    assert response.status_code < 500, response.text


def test_too_many_headers_is_a_431_without_a_lookup(world):
    headers = [("authorization", f"Bearer {world.secret}")]
    headers += [(f"x-pad-{n}", "1") for n in range(150)]

    response = httpx.post(
        f"{world.url}/v1/chat/completions",
        json={"model": "test-gpt-5.5", "messages": HI},
        headers=headers,
        timeout=30,
    )

    assert response.status_code == 431
    assert response.json()["error"]["code"] == "too_many_headers"
    assert world.fake.requests == []
