"""What the fake upstream's tests share: SDK clients pointed at it, tools, and a raw
Messages call."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

CLAUDE = "claude-sonnet-4-6"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"enum": ["c", "f"]},
            "days": {"type": "integer"},
        },
        "required": ["city", "unit"],
    },
}
TIME_TOOL = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def openai_tool(tool: dict) -> dict:
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": tool["input_schema"],
        },
    }


@pytest.fixture
def oai(fake_upstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{fake_upstream.url}/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def claude(fake_upstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake_upstream.url, api_key="sk-ant-test", max_retries=0)


def post_messages(fake_upstream, body: dict) -> httpx.Response:
    return httpx.post(
        f"{fake_upstream.url}/v1/messages",
        json=body,
        headers={"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"},
    )
