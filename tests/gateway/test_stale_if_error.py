"""When the database or Redis falters, warm requests are served from what the worker
has cached (stale-if-error), and cold ones get a retryable 503, never a 500."""

from __future__ import annotations

import anthropic
import openai
import pytest
from django.db import OperationalError

from gateway import runtime as runtime_module
from gateway.runtime import runtime

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]


def sdk(world):
    return openai.OpenAI(
        base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
    )


def _database_down(*args, **kwargs):
    raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


def _expire_caches():
    # As if the cache TTL had run out: every entry is due for a re-read.
    runtime._keys.update({k: (v[0], 0.0) for k, v in runtime._keys.items()})
    runtime._byok.update({k: (v[0], 0.0) for k, v in runtime._byok.items()})


def test_a_warm_key_is_served_while_the_database_is_down(world, monkeypatch):
    assert sdk(world).chat.completions.create(model="test-gpt-5.5", messages=HI).choices
    _expire_caches()
    monkeypatch.setattr(runtime_module, "_byok_load", _database_down)
    monkeypatch.setattr(runtime_module, "key_info_load", _database_down)

    again = sdk(world).chat.completions.create(model="test-gpt-5.5", messages=HI)

    assert again.choices[0].message.content == "Echo: hi"


def test_a_cold_key_gets_a_retryable_503_in_its_protocol(world, monkeypatch):
    runtime.caches_clear()
    monkeypatch.setattr(runtime_module, "key_info_load", _database_down)
    with pytest.raises(openai.InternalServerError) as openai_error:
        sdk(world).chat.completions.create(model="test-gpt-5.5", messages=HI)
    anthropic_sdk = anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as anthropic_error:
        anthropic_sdk.messages.create(model="claude-test-4.6", max_tokens=10, messages=HI)

    for error in (openai_error.value, anthropic_error.value):
        assert error.status_code == 503
        assert error.response.headers["retry-after"] == "5"
    assert openai_error.value.code == "dependency_unavailable"
    assert anthropic_error.value.body["error"]["type"] == "overloaded_error"
    assert world.fake.requests == []
