"""Failures on the Anthropic-native endpoint, answered in Anthropic's shape
`{"type": "error", "error": {"type", "message"}, "request_id"}` with the statuses the
`anthropic` SDK maps to its exception classes: auth, routing, group, credit, malformed
bodies, what cannot be translated, and upstream failures (before and mid-stream)."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from accounts.services import api_key_create
from billing.models import EntryKind
from billing.services import ledger_post
from gateway.models import RequestLog
from testkit.tenants import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

CLAUDE, GPT = "claude-test-4.6", "test-gpt-5.5"
BOTH = pytest.mark.parametrize("model", [CLAUDE, GPT])


def client(world, **kwargs) -> anthropic.Anthropic:
    kwargs.setdefault("timeout", 20)
    return anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0, **kwargs)


def _error(info) -> dict:
    body = info.value.body
    assert body["type"] == "error" and body["error"]["message"]
    assert body["request_id"].startswith("req_")
    return body["error"]


def test_a_bad_key_is_an_authentication_error(world):
    bad = anthropic.Anthropic(base_url=world.url, api_key="sk-tg-nope", max_retries=0, timeout=20)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(
            model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert _error(info)["type"] == "authentication_error"
    assert world.fake.requests == []


def test_an_unknown_model_is_not_found_with_suggestions(world):
    with pytest.raises(anthropic.NotFoundError) as info:
        client(world).messages.create(
            model="claude-test-4.5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    error = _error(info)
    assert error["type"] == "not_found_error"
    assert CLAUDE in error["message"]
    with pytest.raises(anthropic.NotFoundError):
        client(world).messages.count_tokens(
            model="claude-test-4.5", messages=[{"role": "user", "content": "x"}]
        )


def test_a_model_outside_the_keys_group_is_permission_denied(world):
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        client(world).messages.create(
            model="test-gpt-pro", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    error = _error(info)
    assert error["type"] == "permission_error"
    assert "'default'" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"max_tokens": 5, "messages": []}',
        b'{"model": "claude-test-4.6", "max_tokens": 5}',
    ],
)
def test_a_malformed_body_is_an_invalid_request_error(world, body):
    response = httpx.post(
        f"{world.url}/v1/messages",
        content=body,
        timeout=20,
        headers={"x-api-key": world.secret, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 400
    data = response.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error"


def test_a_bad_request_raises_bad_request_error(world):
    with pytest.raises(anthropic.BadRequestError) as info:
        client(world).messages.create(
            model=CLAUDE, max_tokens=10, messages=[], extra_body={"messages": "not a list"}
        )
    assert _error(info)["type"] == "invalid_request_error"


def test_what_anthropic_refuses_comes_back_with_its_reason(world):
    """A native request is passed through as sent: Anthropic's own 400 (here, both
    temperature and top_p for a 4.6 model) reaches the client with its message."""
    with pytest.raises(anthropic.BadRequestError) as info:
        client(world).messages.create(
            model=CLAUDE,
            max_tokens=10,
            extra_body={"temperature": 0.5, "top_p": 0.9},
            messages=[{"role": "user", "content": "x"}],
        )
    # Relayed as Anthropic wrote it (its request id too); the provider is in a header.
    body = info.value.body
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "`temperature` and `top_p` cannot both be specified for this model. "
        "Please use only one.",
    }
    assert body["request_id"].startswith("req_011C")
    assert info.value.response.headers["x-tollgate-provider"] == "fakeanthropic"


def test_what_an_openai_upstream_cannot_do_is_a_clear_400(world):
    with pytest.raises(anthropic.BadRequestError) as info:
        client(world).messages.create(
            model=GPT,
            max_tokens=10,
            extra_body={"top_k": 5},
            messages=[{"role": "user", "content": "x"}],
        )
    assert "top_k" in _error(info)["message"]
    assert world.fake.requests == []


@BOTH
def test_an_upstream_429_is_a_rate_limit_error(world, model):
    upstream = "claude-sonnet-4-6" if model == CLAUDE else "gpt-5.5"
    world.fake.script(upstream, [{"status": 429, "headers": {"retry-after": "7"}}])
    with pytest.raises(anthropic.RateLimitError) as info:
        client(world).messages.create(
            model=model, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert _error(info)["type"] == "rate_limit_error"
    world.drain()
    row = RequestLog.objects.get()
    assert (row.outcome, row.status_code, row.cost_nano) == ("error", 429, 0)


def test_an_overloaded_anthropic_upstream_is_an_overloaded_error(world):
    world.fake.script("claude-sonnet-4-6", [{"status": 529}])
    with pytest.raises(anthropic.OverloadedError) as info:
        client(world).messages.create(
            model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert _error(info)["type"] == "overloaded_error"


def test_an_overloaded_upstream_is_a_retryable_overloaded_error(world):
    world.fake.script("claude-sonnet-4-6", [{"status": 529}])
    with pytest.raises(anthropic.InternalServerError) as info:
        client(world).messages.create(
            model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 529
    assert _error(info) == {"type": "overloaded_error", "message": "Overloaded"}
    assert info.value.response.headers["x-tollgate-provider"] == "fakeanthropic"


@BOTH
def test_an_error_mid_stream_arrives_as_an_error_event(world, model):
    """After bytes reached the client the status is sent: the error is an `error`
    event, which the SDK raises; the request is logged as failed."""
    upstream = "claude-sonnet-4-6" if model == CLAUDE else "gpt-5.5"
    world.fake.script(upstream, [{"stream_error_after_chunks": 3}])
    with pytest.raises(anthropic.APIStatusError) as info:
        with client(world).messages.stream(
            model=model,
            max_tokens=100,
            messages=[{"role": "user", "content": "a b c d e f"}],
        ) as stream:
            list(stream)
    expected = "overloaded_error" if model == CLAUDE else "api_error"  # OpenAI's is a 500
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == expected
    world.drain()
    assert RequestLog.objects.get().outcome == "error"


def test_insufficient_credit_is_a_billing_error(world):
    poor = make_tenant("poor")
    ledger_post(
        organisation=poor.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=1000,
        idempotency_key="test:poor",
    )
    created = api_key_create(organisation=poor.organisation, name="ci", created_by=poor.owner)
    c = anthropic.Anthropic(base_url=world.url, api_key=created.secret, max_retries=0, timeout=20)
    with pytest.raises(anthropic.PaymentRequiredError) as info:
        c.messages.create(
            model=CLAUDE, max_tokens=1024, messages=[{"role": "user", "content": "x"}]
        )
    error = _error(info)
    assert error["type"] == "billing_error"
    assert "Insufficient credit" in error["message"]
    assert world.fake.requests == []
