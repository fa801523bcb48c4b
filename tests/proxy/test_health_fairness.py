"""Deployment health tracks the upstream, not its callers (gateway.health): one
tenant's failures or malformed requests never rest a shared deployment for the others,
a dropped connection is tried again before it counts, and a model whose deployments
all rest is still probed."""

from __future__ import annotations

import httpx
import openai
import pytest

from accounts.services import api_key_create
from billing.models import EntryKind
from billing.money import usd_to_nano
from billing.services import ledger_post
from gateway.health import scoped
from gateway.models import Deployment, RequestLog
from gateway.runtime import runtime
from testkit.tenants import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def other(world):
    """A second organisation with credit and a key, in the same group."""
    tenant = make_tenant("globex")
    ledger_post(
        organisation=tenant.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=usd_to_nano(100),
        idempotency_key="test:globex",
    )
    created = api_key_create(organisation=tenant.organisation, name="k", created_by=tenant.owner)
    return tenant.organisation, created.secret


def sdk(world, secret):
    return openai.OpenAI(base_url=world.openai_base, api_key=secret, max_retries=0, timeout=20)


def upstream_models(world):
    return [r["body"]["model"] for r in world.fake.requests if r["path"].endswith("/completions")]


def test_one_organisations_failures_rest_the_deployment_for_it_alone(chain, other):
    world = chain.world
    org, secret = other
    world.fake.script("gpt-a", [{"status": 500}] * 3)
    for _ in range(3):  # acme's three calls fail on gpt-a and fall back to gpt-b
        assert chain.create().parse().choices

    sdk(world, secret).chat.completions.create(model="chain-model", messages=HI)
    chain.create()

    # globex is still served by gpt-a; acme, whose calls failed, goes to gpt-b.
    assert upstream_models(world)[-2:] == ["gpt-a", "gpt-b"]
    key = str(chain.model.deployments.get(upstream_model="gpt-a").pk)
    assert runtime.health.resting(scoped(key, world.organisation.pk)) > 0
    assert runtime.health.resting(key) == 0
    assert runtime.health.resting(scoped(key, org.pk)) == 0


def test_failures_seen_by_several_organisations_rest_the_deployment_for_everyone(chain, other):
    world = chain.world
    _, secret = other
    world.fake.script("gpt-a", [{"status": 503}] * 3)
    chain.create()
    chain.create()
    sdk(world, secret).chat.completions.create(model="chain-model", messages=HI)

    key = str(chain.model.deployments.get(upstream_model="gpt-a").pk)
    assert runtime.health.resting(key) > 0


def test_malformed_requests_never_reach_the_upstream_or_its_health(chain, other):
    world = chain.world
    _, secret = other
    for body in (
        {"stream": True, "stream_options": [["include_usage", True]]},
        {"stop": 1},
    ):
        for _ in range(5):
            response = httpx.post(
                f"{world.openai_base}/chat/completions",
                headers={"authorization": f"Bearer {world.secret}"},
                json={"model": "chain-model", "messages": HI, **body},
                timeout=20,
            )
            assert response.status_code == 400

    sdk(world, secret).chat.completions.create(model="chain-model", messages=HI)

    assert upstream_models(world) == ["gpt-a"]  # only globex's good request went up
    assert runtime.health.rest_until == {}


def test_a_successful_share_of_calls_keeps_the_breaker_closed(chain):
    world = chain.world
    # One call in three fails (a flaky connection pool upstream): 2 of 3 succeed.
    world.fake.script("gpt-a", [{"status": 502}, {}, {}] * 3)
    for _ in range(9):
        chain.create()

    key = str(chain.model.deployments.get(upstream_model="gpt-a").pk)
    assert runtime.health.resting(scoped(key, world.organisation.pk)) == 0
    assert upstream_models(world)[-1] == "gpt-a"


def test_a_dropped_connection_is_tried_again_on_the_same_deployment(chain):
    world = chain.world
    world.fake.script("gpt-a", [{"drop_after_chunks": 0}])  # the head, then a reset

    raw = chain.create()

    assert raw.parse().choices[0].message.content == "Echo: hi"
    assert upstream_models(world) == ["gpt-a", "gpt-a"]
    world.drain()
    attempts = RequestLog.objects.get().attempts
    assert [a["error_type"] for a in attempts] == ["upstream_unreachable", ""]


def _rest_everything(world):
    key = scoped(str(Deployment.objects.get(model=world.gpt).pk), world.organisation.pk)
    runtime.health.rest_until[key] = 10**10
    return key


def test_when_every_deployment_rests_a_probe_that_succeeds_ends_the_rest(world):
    key = _rest_everything(world)

    first = sdk(world, world.secret).chat.completions.create(model="test-gpt-5.5", messages=HI)
    second = sdk(world, world.secret).chat.completions.create(model="test-gpt-5.5", messages=HI)

    assert first.choices and second.choices
    assert runtime.health.resting(key) == 0


def test_when_every_deployment_rests_only_one_request_at_a_time_probes(world):
    _rest_everything(world)
    world.fake.script("gpt-5.5", [{"status": 500}])

    with pytest.raises(openai.InternalServerError):  # the probe: still failing
        sdk(world, world.secret).chat.completions.create(model="test-gpt-5.5", messages=HI)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk(world, world.secret).chat.completions.create(model="test-gpt-5.5", messages=HI)

    assert int(refused.value.response.headers["retry-after"]) > 0
    assert len(world.fake.requests) == 1
