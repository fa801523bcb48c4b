"""What clients reach when their base URL is off by a `/v1`, Claude Code's `HEAD /`
probe, configuration errors (never a retryable 5xx), and `/v1/models` listing what a
key can use now."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from gateway.models import Deployment, ModelAlias, Provider

pytestmark = pytest.mark.django_db(transaction=True)


def bearer(world) -> dict[str, str]:
    return {"authorization": f"Bearer {world.secret}"}


# --- base URLs ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "base",
    ["", "/v1/v1", "/v1/"],
    ids=["bare (AI SDK given the README's address)", "doubled /v1", "trailing slash"],
)
def test_anthropic_clients_reach_messages_whatever_their_v1(world, base):
    # The AI SDK POSTs {base}/messages: a bare base URL reaches /messages.
    response = httpx.post(
        f"{world.url}{base}/messages",
        json={
            "model": "claude-test-4.6",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": world.secret, "anthropic-version": "2023-06-01"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "Echo: hi"


def test_openai_sdk_with_the_bare_address_is_served(world):
    sdk = openai.OpenAI(base_url=world.url, api_key=world.secret, max_retries=0, timeout=20)

    completion = sdk.chat.completions.create(
        model="test-gpt-5.5", messages=[{"role": "user", "content": "hi"}]
    )
    models = sdk.models.list()
    response = sdk.responses.create(model="test-gpt-5.5", input="hi")

    assert completion.choices[0].message.content == "Echo: hi"
    assert "test-gpt-5.5" in {m.id for m in models}
    assert response.output_text == "Echo: hi"


def test_anthropic_sdk_with_v1_in_its_base_url_is_served(world):
    # The Anthropic SDKs append /v1/messages themselves: /v1 in the base doubles it.
    sdk = anthropic.Anthropic(
        base_url=f"{world.url}/v1", api_key=world.secret, max_retries=0, timeout=20
    )

    message = sdk.messages.create(
        model="claude-test-4.6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )

    assert message.content[0].text == "Echo: hi"


def test_claude_codes_head_probe_is_answered_200_without_a_key(world):
    for path in ("/", "/v1", "/api/hello"):  # Claude Code's is HEAD {base}/api/hello
        response = httpx.head(f"{world.url}{path}")
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "headers", "shape"),
    [
        ("/v1/embeddings", {}, "openai"),
        ("/v1/messages/batches", {"anthropic-version": "2023-06-01"}, "anthropic"),
        ("/messages/batches", {"anthropic-version": "2023-06-01"}, "anthropic"),
        ("/chat/nothing", {}, "openai"),
    ],
)
def test_unknown_api_paths_are_json_404s_in_the_callers_shape(world, path, headers, shape):
    response = httpx.post(f"{world.url}{path}", json={}, headers={**bearer(world), **headers})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if shape == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    else:
        assert body["error"]["code"] == "not_found"
    assert "/v1/chat/completions" in str(body)  # says what is served


def test_the_console_is_still_django(world):
    response = httpx.get(f"{world.url}/accounts/login/")

    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


# --- configuration errors ------------------------------------------------------------------
@pytest.fixture
def keyless(world):
    """A model of the default group whose only provider has no credentials at all."""
    provider = Provider.objects.create(
        slug="nokey", name="No key", protocol="openai", base_url=world.openai.base_url
    )
    model = world.gpt.__class__.objects.create(
        public_id="keyless-model", display_name="Keyless", max_output_tokens=100
    )
    model.groups.set(world.gpt.groups.all())
    Deployment.objects.create(model=model, provider=provider, upstream_model="gpt-5.5")
    return model


def test_a_model_without_credentials_is_a_non_retryable_403_in_each_shape(world, keyless):
    sdk = anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as anthropic_error:
        sdk.messages.create(
            model="keyless-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    oai = openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as openai_error:
        oai.chat.completions.create(
            model="keyless-model", messages=[{"role": "user", "content": "hi"}]
        )

    assert anthropic_error.value.body["error"]["type"] == "permission_error"
    assert "Provider Keys" in anthropic_error.value.body["error"]["message"]
    assert openai_error.value.code == "provider_not_configured"
    assert world.fake.requests == []


def test_a_model_whose_deployments_are_all_disabled_is_a_404(world):
    Deployment.objects.filter(model=world.gpt).update(enabled=False)
    oai = openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0)

    with pytest.raises(openai.NotFoundError) as caught:
        oai.chat.completions.create(
            model="test-gpt-5.5", messages=[{"role": "user", "content": "hi"}]
        )

    assert caught.value.code == "no_deployment"


# --- /v1/models ------------------------------------------------------------------------------
def test_models_lists_only_what_the_key_can_use_now_unless_asked_for_all(world, keyless):
    listed = httpx.get(f"{world.url}/v1/models", headers=bearer(world)).json()["data"]
    everything = httpx.get(f"{world.url}/v1/models?all=true", headers=bearer(world)).json()["data"]

    assert "keyless-model" not in {m["id"] for m in listed}
    assert {m["id"]: m["available"] for m in everything}["keyless-model"] is False
    assert {m["id"]: m["available"] for m in everything}["test-gpt-5.5"] is True
    assert {m["id"] for m in everything} - {m["id"] for m in listed} == {"keyless-model"}


def test_models_lists_the_aliases_when_asked_by_query_or_header(world):
    ModelAlias.objects.create(alias="claude-sonnet-4-6-20990101", model=world.claude)

    by_query = httpx.get(f"{world.url}/v1/models?aliases=true", headers=bearer(world)).json()
    by_header = httpx.get(
        f"{world.url}/v1/models", headers={**bearer(world), "x-tollgate-models-aliases": "1"}
    ).json()
    plain = httpx.get(f"{world.url}/v1/models", headers=bearer(world)).json()

    aliases = {m["id"]: m.get("alias_of") for m in by_query["data"]}
    assert aliases["gpt-latest"] == "test-gpt-5.5"
    assert aliases["claude-sonnet-4-6-20990101"] == "claude-test-4.6"
    assert by_header == by_query
    assert "gpt-latest" not in {m["id"] for m in plain["data"]}


def test_anthropic_models_are_paged_as_anthropic_pages_them(world):
    sdk = anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)
    everything = [m.id for m in sdk.models.list(limit=1000)]

    first = sdk.models.list(limit=1)
    second = sdk.models.list(limit=1, after_id=first.data[0].id)
    paged = [m.id for m in sdk.models.list(limit=1)]  # the SDK follows has_more

    assert len(everything) >= 2
    assert [m.id for m in first.data] == everything[:1] and first.has_more
    assert [m.id for m in second.data] == everything[1:2]
    assert paged == everything
    claude = next(m for m in sdk.models.list(limit=1000) if m.id == "claude-test-4.6")
    assert (claude.max_tokens, claude.lifecycle) == (world.claude.max_output_tokens, "active")


def test_a_bad_models_limit_is_a_400(world):
    response = httpx.get(
        f"{world.url}/v1/models?limit=0",
        headers={**bearer(world), "anthropic-version": "2023-06-01"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_prices_are_plain_decimals(world):
    # test-gpt-5.5 costs $10 per million output tokens: "10", never Decimal's "1E+1".
    models = httpx.get(f"{world.url}/v1/models", headers=bearer(world)).json()["data"]

    gpt = next(m for m in models if m["id"] == "test-gpt-5.5")
    assert (gpt["pricing"]["output"], gpt["pricing"]["input"]) == ("10", "1.25")
