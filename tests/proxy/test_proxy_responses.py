"""POST /v1/responses with the official openai SDK, served over each upstream wire:
Responses itself (passed through), Chat Completions and Anthropic Messages
(translated), with the cost billed to the nano-dollar and the request logged."""

from __future__ import annotations

import openai
import pytest

from gateway.models import RequestLog
from tests.conftest import PRICES, model_create, provider_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(world):
    """The world, plus a model on a provider that speaks the Responses API."""
    from accounts.models import Group

    native = provider_create("fakeresponses", "openai", world.openai.base_url)
    native.speaks_responses = True
    native.save()
    default = Group.objects.get(slug="default")
    model_create("test-gpt-native", native, "gpt-5.5", [default], PRICES, max_output_tokens=4096)
    return world


MODELS = {
    "responses": "test-gpt-native",
    "chat": "test-gpt-5.5",
    "anthropic": "claude-test-4.6",
}


def client(world) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
    )


@pytest.mark.parametrize("wire", list(MODELS))
def test_text_answer(served, wire):
    raw = client(served).responses.with_raw_response.create(
        model=MODELS[wire], input="Say hello", instructions="Be brief."
    )
    response = raw.parse()
    assert response.status == "completed"
    assert response.output_text
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    served.drain()
    row = RequestLog.objects.get(request_id=raw.headers["x-tollgate-request-id"])
    assert row.client_protocol == "responses"
    assert row.cost_nano > 0
    assert raw.headers["x-tollgate-cost-usd"]


@pytest.mark.parametrize("wire", list(MODELS))
def test_text_stream(served, wire):
    with client(served).responses.stream(model=MODELS[wire], input="Say hello") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text and final.output_text == text
    assert final.usage.output_tokens > 0
