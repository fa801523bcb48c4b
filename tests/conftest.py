"""Fixtures for end-to-end gateway tests: a catalog whose providers are the fake
upstream, an organisation with credit, and a key; all committed, because the ASGI
server under test runs in its own thread."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import openai
import pytest

from accounts.models import ApiKey, Group, Organisation
from accounts.services import api_key_create
from billing.models import EntryKind
from billing.money import usd_to_nano
from billing.services import ledger_post
from gateway.encryption import secret_encrypt
from gateway.models import Deployment, Model, ModelAlias, Provider
from gateway.runtime import runtime
from testkit.tenants import Tenant, make_tenant

PRICES = {
    "price_input": Decimal("1.25"),
    "price_output": Decimal("10"),
    "price_cache_read": Decimal("0.125"),
    "price_cache_write_5m": Decimal("1.5625"),
    "price_cache_write_1h": Decimal("2.5"),
}
CLAUDE_PRICES = {
    "price_input": Decimal("3"),
    "price_output": Decimal("15"),
    "price_cache_read": Decimal("0.3"),
    "price_cache_write_5m": Decimal("3.75"),
    "price_cache_write_1h": Decimal("6"),
}


@dataclass
class World:
    url: str  # the gateway
    tenant: Tenant
    organisation: Organisation
    key: ApiKey
    secret: str
    openai: Provider
    anthropic: Provider
    gpt: Model
    claude: Model
    pro_model: Model
    fake: object

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    def drain(self) -> None:
        runtime.drain()


def provider_create(slug: str, protocol: str, base_url: str, key: str = "upstream-key"):
    return Provider.objects.create(
        slug=slug,
        name=slug,
        protocol=protocol,
        base_url=base_url,
        api_key_encrypted=secret_encrypt(key),
        api_key_last_four=key[-4:],
    )


def model_create(
    public_id: str, provider: Provider, upstream_model: str, groups, prices, **extra
) -> Model:
    model = Model.objects.create(public_id=public_id, display_name=public_id, **prices, **extra)
    model.groups.set(groups)
    Deployment.objects.create(model=model, provider=provider, upstream_model=upstream_model)
    return model


@pytest.fixture
def world(live_url, fake_upstream) -> World:
    tenant = make_tenant("acme", groups=("default",))
    default = Group.objects.get(slug="default")
    pro, _ = Group.objects.get_or_create(slug="pro", defaults={"name": "Pro"})
    openai = provider_create("fakeai", "openai", f"{fake_upstream.url}/v1")
    anthropic = provider_create("fakeanthropic", "anthropic", f"{fake_upstream.url}/v1")
    gpt = model_create(
        "test-gpt-5.5", openai, "gpt-5.5", [default, pro], PRICES, max_output_tokens=4096
    )
    ModelAlias.objects.create(alias="gpt-latest", model=gpt)
    claude = model_create(
        "claude-test-4.6",
        anthropic,
        "claude-sonnet-4-6",
        [default, pro],
        CLAUDE_PRICES,
        max_output_tokens=8192,
    )
    pro_model = model_create("test-gpt-pro", openai, "gpt-5.5-pro", [pro], PRICES)
    ledger_post(
        organisation=tenant.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=usd_to_nano(100),
        idempotency_key="test:credit",
    )
    created = api_key_create(organisation=tenant.organisation, name="ci", created_by=tenant.owner)
    return World(
        url=live_url,
        tenant=tenant,
        organisation=tenant.organisation,
        key=created.api_key,
        secret=created.secret,
        openai=openai,
        anthropic=anthropic,
        gpt=gpt,
        claude=claude,
        pro_model=pro_model,
        fake=fake_upstream.app,
    )


@pytest.fixture
def native_model(world) -> Model:
    """A model on a provider that also speaks the Responses API (the fake does), so
    Responses clients are passed through; set as `world.native` too."""
    native = provider_create("fakeresponses", "openai", world.openai.base_url)
    native.speaks_responses = True
    native.save()
    default = Group.objects.get(slug="default")
    world.native = model_create(
        "test-gpt-native", native, "gpt-5.5", [default], PRICES, max_output_tokens=4096
    )
    return world.native


def _vendor_cost_nano(usage: dict[str, int], model: Model) -> int:
    """The vendor's formula, written out independently of gateway.pricing: each kind of
    token once, at the model's own price per million for it, rounded half up to the
    nano-dollar. `usage` keys: input, cache_read, write_5m, write_1h, output, and
    optionally web_searches (at the model's price per 1,000)."""
    from decimal import ROUND_HALF_UP

    usd = (
        usage["input"] * model.price_input
        + usage["cache_read"] * model.price_cache_read
        + usage["write_5m"] * model.price_cache_write_5m
        + usage["write_1h"] * model.price_cache_write_1h
        + usage["output"] * model.price_output
    ) / 1_000_000 + usage.get("web_searches", 0) * model.price_web_search / 1000
    return int((usd * 10**9).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _upstream_usage_counts(usage: dict) -> dict[str, int]:
    """A `usage` object of any of the three wires, as the counts _vendor_cost_nano
    takes (OpenAI's prompt and input counts include cached tokens; Anthropic's don't)."""
    if "prompt_tokens" in usage:  # Chat Completions
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        return {
            "input": usage["prompt_tokens"] - cached,
            "cache_read": cached,
            "write_5m": 0,
            "write_1h": 0,
            "output": usage["completion_tokens"],
        }
    if "cache_read_input_tokens" in usage or "cache_creation" in usage:
        return _anthropic_usage_counts(usage)
    if "input_tokens_details" in usage or "total_tokens" in usage:  # Responses
        cached = (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
        return {
            "input": usage["input_tokens"] - cached,
            "cache_read": cached,
            "write_5m": 0,
            "write_1h": 0,
            "output": usage["output_tokens"],
        }
    return _anthropic_usage_counts(usage)


@pytest.fixture
def upstream_counts():
    """_upstream_usage_counts(usage of any wire) -> the counts vendor_cost takes."""
    return _upstream_usage_counts


def _anthropic_usage_counts(usage: dict) -> dict[str, int]:
    """An Anthropic `usage` object as the five counts _vendor_cost_nano takes."""
    split = usage.get("cache_creation") or {}
    return {
        "input": usage["input_tokens"],
        "cache_read": usage.get("cache_read_input_tokens") or 0,
        "write_5m": split.get("ephemeral_5m_input_tokens") or 0,
        "write_1h": split.get("ephemeral_1h_input_tokens") or 0,
        "output": usage["output_tokens"],
        "web_searches": (usage.get("server_tool_use") or {}).get("web_search_requests") or 0,
    }


@pytest.fixture
def vendor_cost():
    """_vendor_cost_nano(usage counts, model) -> nano-dollars (the vendor's formula)."""
    return _vendor_cost_nano


@pytest.fixture
def anthropic_counts():
    """_anthropic_usage_counts(Anthropic usage dict) -> the counts vendor_cost takes."""
    return _anthropic_usage_counts


@pytest.fixture
def upstream_replay(world):
    """Replays, in order and on a cold prompt cache, the requests the gateway sent to
    the fake upstream (Anthropic messages and OpenAI chat completions), straight to the
    fake and unstreamed; returns each answer's `usage` as the upstream reported it, in
    the upstream's own shape. Tests price conversations from this rather than from
    what the gateway passed on."""
    import httpx

    routes = {
        "/v1/messages": (
            f"{world.anthropic.base_url}/messages",
            {"x-api-key": "upstream-key", "anthropic-version": "2023-06-01"},
        ),
        "/v1/chat/completions": (
            f"{world.openai.base_url}/chat/completions",
            {"authorization": "Bearer upstream-key"},
        ),
        "/v1/responses": (
            f"{world.openai.base_url}/responses",
            {"authorization": "Bearer upstream-key"},
        ),
    }

    def replay() -> list[dict]:
        sent = [r for r in world.fake.requests if r["method"] == "POST" and r["path"] in routes]
        world.fake.cache.clear()
        usages = []
        for request in sent:
            url, headers = routes[request["path"]]
            body = {
                k: v for k, v in request["body"].items() if k not in ("stream", "stream_options")
            }
            response = httpx.post(url, json=body, headers=headers, timeout=20)
            assert response.status_code == 200, response.text
            usages.append(response.json()["usage"])
        return usages

    return replay


@dataclass
class Chain:
    world: World
    model: Model
    public_id: str = "chain-model"

    def create(self, messages=None, **kwargs):
        c = openai.OpenAI(
            base_url=self.world.openai_base, api_key=self.world.secret, max_retries=0, timeout=20
        )
        return c.chat.completions.with_raw_response.create(
            model=self.public_id, messages=messages or [{"role": "user", "content": "hi"}], **kwargs
        )


@pytest.fixture
def chain(world) -> Chain:
    """`chain-model`: three deployments in priority order, two OpenAI-protocol
    (upstream names gpt-a, gpt-b) and one Anthropic (claude-c), so scripts can fail each."""
    default = Group.objects.get(slug="default")
    model = Model.objects.create(
        public_id="chain-model", display_name="Chain", **PRICES, max_output_tokens=4096
    )
    model.groups.set([default])
    Deployment.objects.create(
        model=model, provider=world.openai, upstream_model="gpt-a", priority=0
    )
    Deployment.objects.create(
        model=model, provider=world.openai, upstream_model="gpt-b", priority=1
    )
    Deployment.objects.create(
        model=model, provider=world.anthropic, upstream_model="claude-c", priority=2
    )
    return Chain(world=world, model=model)
