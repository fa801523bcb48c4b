"""tollgate/auto and tollgate/fast, configured from a catalog file."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.models import RequestLog
from gateway.services import catalog_load
from testkit.observe import recorded_events

pytestmark = pytest.mark.django_db(transaction=True)

ROUTERS = {
    "routers": [
        {
            "id": "tollgate/auto",
            "kind": "auto",
            "groups": ["default"],
            "tiers": [
                {"name": "fast", "model": "test-gpt-5.5"},
                {"name": "strongest", "model": "claude-test-4.6"},
            ],
        },
        {
            "id": "tollgate/fast",
            "kind": "fast",
            "groups": ["default"],
            "hedge_ms": 5000,
            "models": ["test-gpt-5.5", "claude-test-4.6"],
        },
    ]
}


@pytest.fixture
def routers(world):
    changes = catalog_load(data=ROUTERS)
    assert "created router tollgate/auto" in changes.lines
    assert not catalog_load(data=ROUTERS).changed  # idempotent
    return world


def post(world, body, **headers):
    return httpx.post(
        f"{world.url}/v1/chat/completions",
        json=body,
        timeout=20,
        headers={"authorization": f"Bearer {world.secret}", **headers},
    )


def test_auto_sends_a_small_plain_question_to_the_fast_tier(routers):
    response = post(
        routers,
        {"model": "tollgate/auto", "messages": [{"role": "user", "content": "what is 2+2?"}]},
    )
    assert response.status_code == 200
    assert response.headers["x-tollgate-model"] == "test-gpt-5.5"
    assert response.json()["model"] == "test-gpt-5.5"
    routers.drain()
    row = RequestLog.objects.get()
    assert row.requested_model == "tollgate/auto" and row.resolved_model == "test-gpt-5.5"
    assert row.route_reason.startswith("auto:") and "fast" in row.route_reason


def test_auto_sends_a_big_agentic_reasoning_task_to_the_strongest_tier(routers):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "run",
                "parameters": {
                    "type": "object",
                    "properties": {"cmd": {"type": "string"}},
                    "required": ["cmd"],
                },
            },
        }
    ]
    context = "lorem ipsum dolor " * 12000  # ~36k words of conversation
    response = post(
        routers,
        {
            "model": "tollgate/auto",
            "tools": tools,
            "reasoning_effort": "high",
            "messages": [{"role": "user", "content": context}],
        },
    )
    assert response.status_code == 200
    assert response.headers["x-tollgate-model"] == "claude-test-4.6"
    routers.drain()
    reason = RequestLog.objects.get().route_reason
    assert "tools" in reason and "reasoning high" in reason and "strongest" in reason


def test_the_cost_quality_dial_moves_the_choice(routers):
    body = {"model": "tollgate/auto", "messages": [{"role": "user", "content": "hi"}]}
    best = post(routers, body, **{"x-tollgate-cost-quality": "0"})
    cheap = post(routers, body, **{"x-tollgate-cost-quality": "1"})
    assert best.headers["x-tollgate-model"] == "claude-test-4.6"
    assert cheap.headers["x-tollgate-model"] == "test-gpt-5.5"
    bad = post(routers, body, **{"x-tollgate-cost-quality": "2"})
    assert bad.status_code == 400 and "x-tollgate-cost-quality" in bad.json()["error"]["message"]


def test_fast_hedges_to_the_next_model_when_the_first_is_slow(routers):
    routers.fake.script("gpt-5.5", [{"hang": True}])
    queued = recorded_events.count
    response = post(
        routers,
        {"model": "tollgate/fast", "messages": [{"role": "user", "content": "quick"}]},
        **{"x-tollgate-hedge-ms": "30"},
    )
    assert response.status_code == 200
    assert response.headers["x-tollgate-model"] == "claude-test-4.6"
    assert response.headers["x-tollgate-attempted-count"] == "2"
    assert recorded_events.wait_for(queued + 1)
    routers.drain()
    row = RequestLog.objects.get()
    assert {a["upstream_model"] for a in row.attempts} == {"gpt-5.5", "claude-sonnet-4-6"}
    assert row.route_reason == "fast: hedged after 30 ms"


def test_fast_with_hedge_zero_races_at_once_and_streams(routers):
    c = openai.OpenAI(
        base_url=routers.openai_base,
        api_key=routers.secret,
        max_retries=0,
        timeout=20,
        default_headers={"x-tollgate-hedge-ms": "0"},
    )
    chunks = list(
        c.chat.completions.create(
            model="tollgate/fast",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "go"}],
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Echo: go"
    assert chunks[-1].usage.model_extra["cost"] > 0


def test_routers_are_listed_with_the_models(routers):
    ids = [
        m.id
        for m in openai.OpenAI(base_url=routers.openai_base, api_key=routers.secret).models.list()
    ]
    assert "tollgate/auto" in ids and "tollgate/fast" in ids
