"""Resilient routing, as chaos tests: fake upstreams scripted to fail, called with the
official SDKs and raw HTTP through the running gateway."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from billing.models import LedgerEntry
from gateway.health import scoped
from gateway.models import RequestLog
from gateway.runtime import runtime
from testkit.observe import recorded_events

pytestmark = pytest.mark.django_db(transaction=True)


def upstream_models(world) -> list[str]:
    return [
        r["body"]["model"]
        for r in world.fake.requests
        if r["path"].endswith(("/chat/completions", "/messages"))
    ]


def only_row(world) -> RequestLog:
    world.drain()
    return RequestLog.objects.get()


def test_a_rate_limited_deployment_falls_back_and_rests(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"status": 429, "headers": {"retry-after": "30"}}])
    raw = chain.create()
    assert raw.parse().choices[0].message.content == "Echo: hi"
    assert raw.headers["x-tollgate-attempted-count"] == "2"
    assert upstream_models(world) == ["gpt-a", "gpt-b"]
    row = only_row(world)
    assert [a["status"] for a in row.attempts] == [429, 200]
    assert row.attempts[0]["provider"] == "fakeai" and row.attempts[0]["error"]
    assert row.attempts[0]["error_type"] == "upstream_rate_limited"
    assert row.attempts[0]["latency_ms"] >= 0 and row.attempts[0]["started_at"] > 0
    assert row.upstream_model == "gpt-b"
    assert LedgerEntry.objects.filter(reference=row.request_id).count() == 1
    # The next request does not knock on the resting deployment.
    chain.create()
    assert upstream_models(world) == ["gpt-a", "gpt-b", "gpt-b"]


def test_fallback_across_protocols_keeps_the_clients_shape(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"status": 500}, {"status": 500}])
    world.fake.script("gpt-b", [{"status": 529}])  # rests 5 s: skipped in turn 2
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                },
            },
        }
    ]
    first = chain.create(tools=tools, messages=[{"role": "user", "content": "read it"}])
    completion = first.parse()
    call = completion.choices[0].message.tool_calls[0]
    assert call.id.startswith("call_")
    assert first.headers["x-tollgate-provider"] == "fakeanthropic"
    # Turn 2 reaches the Anthropic deployment again, with the tool-call id translated
    # back to the upstream's own.
    messages = [
        {"role": "user", "content": "read it"},
        completion.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "contents"},
    ]
    second = chain.create(tools=tools, messages=messages).parse()
    assert second.choices[0].message.content == "Tool result: contents"
    sent = world.fake.requests[-1]["body"]
    assert sent["model"] == "claude-c"
    tool_use_ids = [
        b["id"]
        for m in sent["messages"]
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if b.get("type") == "tool_use"
    ]
    assert tool_use_ids and all(i.startswith("toolu_") for i in tool_use_ids)


def test_when_every_deployment_fails_the_error_names_each_attempt(chain):
    world = chain.world
    for model in ("gpt-a", "gpt-b", "claude-c"):
        world.fake.script(model, [{"status": 500}])
    with pytest.raises(openai.APIStatusError) as info:
        chain.create()
    message = info.value.message
    assert "All 3 attempts failed" in message
    assert message.count("fakeai") == 2 and "fakeanthropic" in message
    row = only_row(world)
    assert row.outcome == "error" and row.cost_nano == 0
    assert len(row.attempts) == 3
    assert not LedgerEntry.objects.filter(reference=row.request_id).exists()


def test_other_client_errors_are_not_retried(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"status": 400}])
    with pytest.raises(openai.BadRequestError):
        chain.create()
    assert upstream_models(world) == ["gpt-a"]


def test_refused_credentials_move_on_without_retrying_that_deployment(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"status": 401}])
    assert chain.create().parse().choices
    chain.create()
    assert upstream_models(world) == ["gpt-a", "gpt-b", "gpt-b"]


def test_a_quota_exhausted_429_goes_back_to_the_client(chain):
    world = chain.world
    world.fake.script(
        "gpt-a",
        [
            {
                "status": 429,
                "body": {
                    "error": {
                        "message": "You exceeded your current quota",
                        "type": "insufficient_quota",
                        "code": "insufficient_quota",
                        "param": None,
                    }
                },
            }
        ],
    )
    with pytest.raises(openai.RateLimitError):
        chain.create()
    assert upstream_models(world) == ["gpt-a"]


def test_repeated_failures_open_the_circuit_breaker(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"status": 502}] * 3)
    for _ in range(3):
        assert chain.create().parse().choices
    assert upstream_models(world) == ["gpt-a", "gpt-b"] * 3
    chain.create()
    assert upstream_models(world)[-1] == "gpt-b"  # gpt-a is out for a while
    key = str(chain.model.deployments.get(upstream_model="gpt-a").pk)
    # One organisation saw the failures: gpt-a rests for it alone (test_health_fairness).
    assert runtime.health.resting(scoped(key, world.organisation.pk))
    assert not runtime.health.resting(key)


def test_a_stream_dropped_before_the_first_byte_falls_back(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"drop_after_chunks": 0}])
    stream = chain.create(stream=True, stream_options={"include_usage": True}).parse()
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hi"
    assert chunks[-1].usage.model_extra["cost"] > 0
    row = only_row(world)
    assert [a["status"] for a in row.attempts][-1] == 200 and len(row.attempts) == 2


def test_an_anthropic_stream_error_before_content_falls_back(world):
    """An Anthropic deployment whose stream opens with an overloaded error is left for
    the next one; the client only sees the answer."""
    from accounts.models import Group
    from gateway.models import Deployment, Model
    from tests.conftest import PRICES

    model = Model.objects.create(public_id="mixed", display_name="Mixed", **PRICES)
    model.groups.set([Group.objects.get(slug="default")])
    Deployment.objects.create(
        model=model, provider=world.anthropic, upstream_model="claude-x", priority=0
    )
    Deployment.objects.create(
        model=model, provider=world.openai, upstream_model="gpt-y", priority=1
    )
    world.fake.script("claude-x", [{"stream_error_after_chunks": 0}])
    response = httpx.post(
        f"{world.url}/v1/messages",
        headers={"x-api-key": world.secret},
        json={
            "model": "mixed",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hello"}],
        },
    )
    assert response.status_code == 200
    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "error" not in events
    assert upstream_models(world) == ["claude-x", "gpt-y"]


def test_the_latency_budget_bounds_the_first_byte(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"hang": True}])
    response = httpx.post(
        f"{world.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {world.secret}", "x-tollgate-max-latency-ms": "300"},
        json={"model": "chain-model", "messages": [{"role": "user", "content": "x"}]},
        timeout=20,
    )
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "latency_budget_exceeded"
    assert "300 ms" in error["message"] and "fakeai" in error["message"]


def test_a_bad_latency_header_is_a_400(chain):
    response = httpx.post(
        f"{chain.world.url}/v1/chat/completions",
        headers={
            "authorization": f"Bearer {chain.world.secret}",
            "x-tollgate-max-latency-ms": "soon",
        },
        json={"model": "chain-model", "messages": []},
    )
    assert response.status_code == 400
    assert "x-tollgate-max-latency-ms" in response.json()["error"]["message"]


def test_hedging_takes_the_first_answer_and_bills_both(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"hang": True}])
    queued = recorded_events.count
    response = httpx.post(
        f"{world.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {world.secret}", "x-tollgate-hedge-ms": "50"},
        json={"model": "chain-model", "messages": [{"role": "user", "content": "fast"}]},
        timeout=20,
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: fast"
    assert recorded_events.wait_for(queued + 1)
    row = only_row(world)
    assert len(row.attempts) == 2
    loser = next(a for a in row.attempts if a["upstream_model"] == "gpt-a")
    assert loser["billed_estimate_nano"] > 0
    assert row.upstream_model == "gpt-b"
    served_cost = json.loads(response.text)["usage"]["cost"]
    assert row.cost_nano == round(served_cost * 1e9)
    assert LedgerEntry.objects.get(reference=row.request_id).amount_nano == -row.cost_nano


def test_same_priority_deployments_share_load_by_weight(world, monkeypatch):
    import random

    from gateway import planning

    monkeypatch.setattr(planning, "_rng", random.Random(20261122))  # deterministic draws
    from accounts.models import Group
    from gateway.models import Deployment, Model
    from tests.conftest import PRICES

    model = Model.objects.create(public_id="spread", display_name="Spread", **PRICES)
    model.groups.set([Group.objects.get(slug="default")])
    Deployment.objects.create(
        model=model, provider=world.openai, upstream_model="heavy", priority=0, weight=9
    )
    Deployment.objects.create(
        model=model, provider=world.openai, upstream_model="light", priority=0, weight=1
    )
    c = openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0)
    for _ in range(100):
        c.chat.completions.create(model="spread", messages=[{"role": "user", "content": "x"}])
    seen = upstream_models(world)
    # 9:1 over 100 draws: "light" is expected about 10 times (0 or 100: no weighting).
    assert 80 <= seen.count("heavy") <= 97 and seen.count("light") >= 3


@pytest.fixture
def second_worker(settings, live_url):
    """Start another gateway process on the same PostgreSQL and Redis (a second
    worker). Its socket is bound here first, so requests queue until it is ready."""
    if not settings.REDIS_URL or "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs PostgreSQL and Redis: workers share state through them")
    import os
    import socket
    import subprocess
    import sys

    from django.db import connection

    db = connection.settings_dict
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "TOLLGATE_VAR_DIR": str(settings.VAR_DIR),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--fd",
            str(sock.fileno()),
            "--log-level",
            "warning",
            "--lifespan",
            "on",
        ],
        pass_fds=[sock.fileno()],
        env=env,
        cwd=str(settings.BASE_DIR),
    )
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        sock.close()


def test_two_workers_share_cooldowns(chain, second_worker):
    world = chain.world
    world.fake.script("gpt-a", [{"status": 429, "headers": {"retry-after": "60"}}])
    assert chain.create().parse().choices  # worker 1: gpt-a 429 -> gpt-b
    response = httpx.post(
        f"{second_worker}/v1/chat/completions",
        timeout=30,
        headers={"authorization": f"Bearer {world.secret}"},
        json={"model": "chain-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert response.headers["x-tollgate-attempted-count"] == "1"
    assert upstream_models(world) == ["gpt-a", "gpt-b", "gpt-b"]


def test_a_rested_deployment_is_probed_back_in(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"status": 502}] * 3)
    for _ in range(3):
        chain.create()
    key = scoped(str(chain.model.deployments.get(upstream_model="gpt-a").pk), world.organisation.pk)
    assert runtime.health.resting(key) > 0
    runtime.health.rest_until[key] = 0.0  # as if the rest had run out
    assert runtime.health.needs_probe(key)
    chain.create()  # this request probes gpt-a, which has recovered
    assert upstream_models(world)[-1] == "gpt-a"
    assert not runtime.health.needs_probe(key)  # closed again
    chain.create()
    assert upstream_models(world)[-1] == "gpt-a"


@pytest.mark.parametrize("behaviour", [{"drop_after_chunks": 4}, {"stream_error_after_chunks": 4}])
def test_a_stream_that_breaks_after_output_started_is_billed_for_what_was_used(chain, behaviour):
    world = chain.world
    world.fake.script("gpt-a", [behaviour])
    queued = recorded_events.count
    with httpx.stream(
        "POST",
        f"{world.url}/v1/chat/completions",
        timeout=20,
        headers={"authorization": f"Bearer {world.secret}"},
        json={
            "model": "chain-model",
            "stream": True,
            "messages": [{"role": "user", "content": "one two three four five six"}],
        },
    ) as r:
        assert r.status_code == 200
        body = r.read().decode()
    assert "Echo" in body
    assert recorded_events.wait_for(queued + 1)
    row = only_row(world)
    assert row.outcome == "error" and row.usage_estimated
    assert row.output_tokens > 0 and row.cost_nano > 0
    assert LedgerEntry.objects.get(reference=row.request_id).amount_nano == -row.cost_nano
    assert upstream_models(world) == ["gpt-a"]  # output had started: no fallback


def test_a_malformed_stream_error_falls_back_instead_of_failing(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"stream_error_after_chunks": 0, "body": {"error": "oops"}}])
    stream = chain.create(stream=True).parse()
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: hi"
    assert upstream_models(world) == ["gpt-a", "gpt-b"]


def test_rate_limits_rest_a_deployment_without_opening_its_breaker(chain):
    world = chain.world
    key = str(chain.model.deployments.get(upstream_model="gpt-a").pk)
    world.fake.script("gpt-a", [{"status": 429, "headers": {"retry-after": "1"}}] * 3)
    for _ in range(3):
        chain.create()
        runtime.health.rest_until[key] = 0.0  # the 1 s rest is over
    assert not runtime.health.needs_probe(key)
    assert runtime.health.resting(key) == 0
