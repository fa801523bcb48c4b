"""The fake's authentication and its scripted failures (rate limits, hangs, dropped
streams, mid-stream errors), and its admin API."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.fakeupstream.conftest import CLAUDE

# -- auth ------------------------------------------------------------------------------


def test_it_refuses_bad_keys_in_each_vendor_shape(fake_upstream):
    bad_oai = openai.OpenAI(
        base_url=f"{fake_upstream.url}/v1", api_key="bad-key-1234", max_retries=0
    )
    bad_claude = anthropic.Anthropic(base_url=fake_upstream.url, api_key="bad-key", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as oai_error:
        bad_oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.AuthenticationError) as claude_error:
        bad_claude.messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )

    assert oai_error.value.code == "invalid_api_key"
    assert "bad*****1234" in oai_error.value.message
    assert claude_error.value.body["error"]["type"] == "authentication_error"


def test_it_answers_401_without_a_key(fake_upstream):
    openai_response = httpx.post(f"{fake_upstream.url}/v1/chat/completions", json={})
    anthropic_response = httpx.post(
        f"{fake_upstream.url}/v1/messages", json={}, headers={"anthropic-version": "2023-06-01"}
    )

    assert openai_response.status_code == 401
    assert "You didn't provide an API key" in openai_response.json()["error"]["message"]
    assert anthropic_response.status_code == 401
    assert anthropic_response.json()["error"]["message"] == "x-api-key header is required"


def test_it_accepts_only_configured_keys_when_given(fake_upstream, oai):
    fake_upstream.app.valid_keys = {"sk-byok-1"}
    allowed = openai.OpenAI(base_url=f"{fake_upstream.url}/v1", api_key="sk-byok-1", max_retries=0)

    allowed.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


# -- scripted behaviours ---------------------------------------------------------------


def test_a_scripted_429_carries_retry_after_and_the_vendor_body(fake_upstream, oai):
    fake_upstream.app.script("gpt-4o", [{"status": 429, "headers": {"retry-after": "1"}}])

    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    after = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])

    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    assert after.choices[0].message.content == "Echo: x"


def test_scripts_run_in_order_with_star_as_fallback(fake_upstream, claude):
    fake_upstream.app.script("*", [{"status": 500}])
    fake_upstream.app.script(CLAUDE, [{"status": 529}])
    ask = {"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}

    with pytest.raises(anthropic.OverloadedError) as first:
        claude.messages.create(**ask)
    with pytest.raises(anthropic.InternalServerError) as second:
        claude.messages.create(**ask)
    claude.messages.create(**ask)

    assert first.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert second.value.status_code == 500


def test_a_hanging_upstream_is_released_by_the_client_timeout(fake_upstream, oai):
    fake_upstream.app.script("gpt-4o", [{"hang": True}])

    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.3).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    ).choices


def test_a_dropped_stream_fails_after_the_chunks_sent(fake_upstream, oai):
    fake_upstream.app.script("gpt-4o", [{"drop_after_chunks": 2, "chunk_delay_ms": 1}])
    received = []

    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "a b c d"}], stream=True
        ):
            received.append(chunk)

    assert len(received) == 2


def test_a_mid_stream_error_reaches_each_sdk(fake_upstream, oai, claude):
    fake_upstream.app.script("*", [{"stream_error_after_chunks": 2}] * 2)

    with pytest.raises(openai.APIError, match="The server had an error"):
        list(
            oai.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "a b"}], stream=True
            )
        )
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        list(
            claude.messages.create(
                model=CLAUDE,
                max_tokens=5,
                stream=True,
                messages=[{"role": "user", "content": "a b"}],
            )
        )


def test_the_admin_api_scripts_records_and_resets(fake_upstream, oai):
    admin = httpx.Client(base_url=f"{fake_upstream.url}/_fake")
    assert admin.post(
        "/script", json={"model": "gpt-4o", "behaviours": [{"status": 503, "body": None}]}
    ).is_success
    assert (
        admin.post("/script", json={"model": "gpt-4o", "behaviours": [{"stauts": 503}]}).status_code
        == 400
    )

    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    recorded = admin.get("/requests").json()
    admin.post("/reset")

    assert recorded[-1]["path"] == "/v1/chat/completions"
    assert recorded[-1]["body"]["messages"] == [{"role": "user", "content": "x"}]
    assert recorded[-1]["headers"]["authorization"] == "Bearer sk-test"
    assert admin.get("/requests").json() == []
