"""Output limits per deployment, end to end: opencode's `max_tokens` to an OpenAI
reasoning model, Cline's 128,000 to a smaller model, a vendor that knows only
`max_tokens`."""

from __future__ import annotations

import anthropic
import openai
import pytest

from gateway.models import Deployment
from gateway.runtime import runtime

pytestmark = pytest.mark.django_db(transaction=True)


def sent(world):
    return world.fake.requests[-1]["body"]


def test_max_tokens_reaches_an_openai_reasoning_model_as_max_completion_tokens(world):
    sdk = openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0)

    completion = sdk.chat.completions.create(
        model="test-gpt-5.5",  # upstream gpt-5.5, which refuses max_tokens
        max_tokens=32000,
        messages=[{"role": "user", "content": "hi"}],
    )

    assert completion.choices[0].message.content == "Echo: hi"
    assert "max_tokens" not in sent(world)
    assert sent(world)["max_completion_tokens"] == world.gpt.max_output_tokens == 4096


def test_an_anthropic_client_asking_more_than_the_model_allows_is_clamped(world):
    sdk = anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)

    with sdk.messages.stream(  # the SDK insists on streaming for 128,000 tokens
        model="claude-test-4.6", max_tokens=128000, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        message = stream.get_final_message()

    assert message.content[0].text == "Echo: hi"
    assert sent(world)["max_tokens"] == world.claude.max_output_tokens


def test_a_deployment_names_its_parameter_and_its_own_maximum(world):
    Deployment.objects.filter(model=world.gpt).update(
        upstream_model="legacy-chat", max_tokens_param="max_tokens", max_output_tokens=300
    )
    runtime.caches_clear()
    sdk = anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)

    sdk.messages.create(
        model="test-gpt-5.5", max_tokens=1000, messages=[{"role": "user", "content": "hi"}]
    )

    assert sent(world)["max_tokens"] == 300
    assert "max_completion_tokens" not in sent(world)
