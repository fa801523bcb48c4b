"""RPM, TPM and concurrency limits per key and per organisation, end to end: the 429
and its headers in OpenAI's and Anthropic's shapes, the remaining budget on admitted
answers, who is and is not affected, and slots given back after errors and clients
that leave."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

import anthropic
import httpx
import openai
import pytest

from accounts.models import ApiKey, Group, Organisation
from accounts.services import api_key_create
from billing.models import EntryKind
from billing.money import usd_to_nano
from billing.services import ledger_post
from testkit.observe import recorded_events
from testkit.tenants import make_tenant

MESSAGES = [{"role": "user", "content": "hi"}]


def oai(world, secret: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=world.openai_base, api_key=secret or world.secret, max_retries=0, timeout=20
    )


def claude(world, secret: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=world.url, api_key=secret or world.secret, max_retries=0, timeout=20
    )


def chat(world, secret: str | None = None, **kwargs):
    return oai(world, secret).chat.completions.with_raw_response.create(
        model="test-gpt-5.5", messages=kwargs.pop("messages", MESSAGES), **kwargs
    )


def limit(obj, **limits) -> None:
    """Set limits before the gateway has seen the key (its cache is cold per test)."""
    type(obj).objects.filter(pk=obj.pk).update(**limits)


def second_key(world, name: str = "other") -> str:
    created = api_key_create(
        organisation=world.organisation, name=name, created_by=world.tenant.owner
    )
    return created.secret


def other_organisation() -> str:
    tenant = make_tenant("globex")
    ledger_post(
        organisation=tenant.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=usd_to_nano(100),
        idempotency_key="test:globex",
    )
    return api_key_create(organisation=tenant.organisation, name="g").secret


def test_the_third_request_in_a_minute_is_refused_in_openai_shape(world):
    limit(world.key, rpm_limit=2)
    first = chat(world)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert re.fullmatch(r"(\d+(\.\d+)?s|\d+ms|1m0s)", first.headers["x-ratelimit-reset-requests"])
    assert "x-ratelimit-limit-tokens" not in first.headers  # no TPM limit
    assert chat(world).headers["x-ratelimit-remaining-requests"] == "0"

    with pytest.raises(openai.RateLimitError) as info:
        oai(world).chat.completions.create(model="test-gpt-5.5", messages=MESSAGES)
    error = info.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "rate_limit_error"
    message = error.body["message"]
    assert "this API key" in message and "2 requests per minute" in message
    assert "resets in" in message
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"]
    assert headers["x-tollgate-request-id"]
    assert len([r for r in world.fake.requests if r["method"] == "POST"]) == 2


def test_the_third_request_in_a_minute_is_refused_in_anthropic_shape(world):
    limit(world.key, rpm_limit=2, tpm_limit=100_000)
    client = claude(world)
    for remaining in ("1", "0"):
        raw = client.messages.with_raw_response.create(
            model="claude-test-4.6", max_tokens=100, messages=MESSAGES
        )
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "2"
        assert raw.headers["anthropic-ratelimit-requests-remaining"] == remaining
        assert raw.headers["anthropic-ratelimit-tokens-limit"] == "100000"
        assert int(raw.headers["anthropic-ratelimit-tokens-remaining"]) < 100_000
        assert "x-ratelimit-limit-requests" not in raw.headers

    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-test-4.6", max_tokens=100, messages=MESSAGES)
    error = info.value
    assert error.status_code == 429
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == "rate_limit_error"
    assert "2 requests per minute" in error.body["error"]["message"]
    headers = error.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["anthropic-ratelimit-requests-limit"] == "2"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = datetime.strptime(headers["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%SZ")
    assert reset.replace(tzinfo=UTC) > datetime.now(UTC)
    assert "anthropic-ratelimit-tokens-remaining" in headers


def test_a_key_limit_leaves_the_other_keys_of_its_organisation_alone(world):
    limit(world.key, rpm_limit=1)
    other = second_key(world)
    chat(world)
    with pytest.raises(openai.RateLimitError):
        chat(world)
    for _ in range(3):
        response = chat(world, other)
        assert "x-ratelimit-limit-requests" not in response.headers  # nothing limits it


def test_an_organisation_limit_covers_all_its_keys_and_no_other_organisation(world):
    limit(world.organisation, rpm_limit=2)
    other = second_key(world)
    chat(world)
    assert chat(world, other).headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as info:
        chat(world)
    assert "the organisation 'acme'" in info.value.body["message"]
    with pytest.raises(openai.RateLimitError):
        chat(world, other)

    outsider = other_organisation()
    for _ in range(3):
        assert chat(world, outsider).http_response.status_code == 200


def test_the_tighter_level_is_reported_and_both_are_enforced(world):
    limit(world.key, rpm_limit=5)
    limit(world.organisation, rpm_limit=3)
    response = chat(world)
    assert response.headers["x-ratelimit-limit-requests"] == "3"  # the org leaves less
    assert response.headers["x-ratelimit-remaining-requests"] == "2"
    chat(world)
    chat(world)
    with pytest.raises(openai.RateLimitError) as info:
        chat(world)
    assert "organisation" in info.value.body["message"]


def test_group_defaults_apply_to_keys_and_organisations_that_set_none(world):
    default = Group.objects.get(slug="default")
    limit(default, rpm_limit=1, org_rpm_limit=3)
    unlimited_key = second_key(world, "batch")
    ApiKey.objects.filter(name="batch").update(rpm_limit=0)  # 0: no limit for this key

    chat(world)
    with pytest.raises(openai.RateLimitError) as info:
        chat(world)  # the group's default of 1 RPM per key
    assert "this API key" in info.value.body["message"]

    chat(world, unlimited_key)
    chat(world, unlimited_key)
    with pytest.raises(openai.RateLimitError) as info:
        chat(world, unlimited_key)  # the group's default of 3 RPM per organisation
    assert "organisation" in info.value.body["message"]


def test_an_organisations_own_zero_overrides_its_group_default(world):
    default = Group.objects.get(slug="default")
    limit(default, org_rpm_limit=1)
    limit(world.organisation, rpm_limit=0)
    for _ in range(3):
        assert "x-ratelimit-limit-requests" not in chat(world).headers


def test_tokens_per_minute_count_the_estimate_then_the_actual_usage(world):
    limit(world.key, tpm_limit=1000)
    first = chat(world, max_tokens=900)  # counted as ~900 while it runs
    used = first.parse().usage.total_tokens
    remaining = int(first.headers["x-ratelimit-remaining-tokens"])
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert remaining < 100  # at admission: the estimate
    assert used < 50

    # Settled to its actual usage, the budget has room for the same request again:
    # what is left is the first one's actual tokens and the second one's estimate.
    second = chat(world, max_tokens=900)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == remaining - used
    # A request bigger than the whole budget gets an empty window only.
    with pytest.raises(openai.RateLimitError) as info:
        chat(world, max_tokens=4000)
    message = info.value.body["message"]
    assert "1000 tokens per minute" in message and "may use up to" in message
    headers = info.value.response.headers
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-tokens"]
    assert int(headers["retry-after"]) >= 1


def test_a_request_larger_than_the_budget_fits_an_empty_window(world):
    limit(world.key, tpm_limit=100)
    assert chat(world, max_tokens=4000).http_response.status_code == 200


def _parallel(world, count: int) -> list[int]:
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def one() -> None:
        barrier.wait()
        response = httpx.post(
            f"{world.openai_base}/chat/completions",
            headers={"authorization": f"Bearer {world.secret}"},
            json={"model": "test-gpt-5.5", "messages": MESSAGES},
            timeout=20,
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            body = response.json()["error"]
            assert body["code"] == "rate_limit_exceeded"
            assert "2 requests at a time" in body["message"]
            assert response.headers["retry-after"] == "1"

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def test_concurrent_requests_beyond_the_limit_are_refused_and_slots_come_back(world):
    limit(world.key, concurrency_limit=2)
    world.fake.script("gpt-5.5", [{"delay_ms": 300}] * 3)
    assert _parallel(world, 3) == [200, 200, 429]
    world.fake.script("gpt-5.5", [{"delay_ms": 300}] * 2)
    assert _parallel(world, 2) == [200, 200]  # both slots were given back


def test_an_organisation_concurrency_limit(world):
    limit(world.organisation, concurrency_limit=2)
    world.fake.script("gpt-5.5", [{"delay_ms": 300}] * 3)
    assert _parallel(world, 3) == [200, 200, 429]


def test_a_slot_is_given_back_after_an_upstream_error(world):
    limit(world.key, concurrency_limit=1)
    world.fake.script("gpt-5.5", [{"status": 500}])
    with pytest.raises(openai.InternalServerError):
        chat(world)
    assert chat(world).http_response.status_code == 200


def test_a_slot_is_given_back_after_a_refused_hold(world):
    limit(world.key, concurrency_limit=1, spend_limit_total_nano=1)
    with pytest.raises(openai.APIStatusError) as info:
        chat(world)
    assert info.value.status_code == 402
    limit(world.key, spend_limit_total_nano=None)
    ApiKey.objects.get(pk=world.key.pk).save()  # drop the cached key
    assert chat(world).http_response.status_code == 200


def test_a_slot_is_given_back_when_the_client_leaves_a_stream(world):
    limit(world.key, concurrency_limit=1)
    world.fake.script("gpt-5.5", [{"hang": True}])
    queued = recorded_events.count
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{world.openai_base}/chat/completions",
            headers={"authorization": f"Bearer {world.secret}"},
            json={"model": "test-gpt-5.5", "messages": MESSAGES, "stream": True},
            timeout=httpx.Timeout(20, read=0.3),
        )
    assert recorded_events.wait_for(queued + 1)  # settled as cancelled
    assert chat(world).http_response.status_code == 200


def test_requests_without_limits_carry_no_rate_limit_headers(world):
    response = chat(world)
    assert not [h for h in response.headers if "ratelimit" in h]


def test_changing_a_limit_takes_effect_at_once(world):
    limit(world.key, rpm_limit=1)
    chat(world)
    with pytest.raises(openai.RateLimitError):
        chat(world)
    key = ApiKey.objects.get(pk=world.key.pk)
    key.rpm_limit = 5
    key.save()
    assert chat(world).headers["x-ratelimit-remaining-requests"] == "3"
    organisation = Organisation.objects.get(pk=world.organisation.pk)
    organisation.rpm_limit = 1
    organisation.save()
    chat(world)  # the organisation's counting starts now
    with pytest.raises(openai.RateLimitError) as info:
        chat(world)
    assert "organisation" in info.value.body["message"]


def test_a_group_default_changed_in_the_admin_reaches_cached_keys(world, client):
    from accounts.models import User

    chat(world)  # the key is cached now, with no limits
    operator = User.objects.create_superuser(email="ops@tollgate.test", password="x" * 20)
    client.force_login(operator)
    group = Group.objects.get(slug="default")
    response = client.post(
        f"/admin/accounts/group/{group.pk}/change/",
        {"slug": "default", "name": group.name, "description": "", "rpm_limit": "1"},
    )
    assert response.status_code == 302, response.content[:2000]
    assert chat(world).headers["x-ratelimit-limit-requests"] == "1"
    with pytest.raises(openai.RateLimitError):
        chat(world)
