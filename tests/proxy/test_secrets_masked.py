"""An upstream that echoes the key it was sent must not hand the operator's managed key
(or a tenant's own) to the caller or to the request log."""

from __future__ import annotations

import json

import openai
import pytest

from gateway.models import RequestLog

pytestmark = pytest.mark.django_db(transaction=True)

MANAGED = "upstream-key"  # the fake providers' managed key (tests/conftest.py)


def sdk(world):
    return openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0)


@pytest.mark.parametrize("status", [401, 400, 429, 500])
def test_an_echoed_managed_key_is_masked_for_the_client_and_in_the_log(world, status):
    echoed = {
        "error": {
            "message": f"Incorrect API key provided: {MANAGED}. Also sk-proj-abcdefghijklmnop9876.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    world.fake.script("gpt-5.5", [{"status": status, "body": echoed}])

    with pytest.raises(openai.APIStatusError) as info:
        sdk(world).chat.completions.create(
            model="test-gpt-5.5", messages=[{"role": "user", "content": "hi"}]
        )

    seen = json.dumps(info.value.body) + info.value.response.text
    assert MANAGED not in seen and "abcdefghijklmnop9876" not in seen
    assert "sk-proj-...9876" in seen or status == 401
    world.drain()
    row = RequestLog.objects.get()
    stored = row.error_message + json.dumps(row.attempts)
    assert MANAGED not in stored and "abcdefghijklmnop9876" not in stored
