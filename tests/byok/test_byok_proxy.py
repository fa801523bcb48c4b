"""Requests served with the customer's own provider key (BYOK), and key spend limits."""

from __future__ import annotations

import logging

import openai
import pytest
from django.test import Client

from accounts.models import ApiKey
from billing.models import EntryKind, LedgerEntry
from gateway.byok import provider_key_save
from gateway.models import ProviderKey, ProviderKeyMode, RequestLog
from testkit.tenants import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

OWN_KEY = "sk-customer-own-provider-key-9876"
CHAT = [{"role": "user", "content": "bring your own"}]


def client(world) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
    )


def own_key(world, mode=ProviderKeyMode.PREFER, secret=OWN_KEY):
    return provider_key_save(
        organisation=world.organisation,
        provider=world.openai,
        secret=secret,
        mode=mode,
        created_by=world.tenant.owner,
        verify=False,
    )


def test_a_request_uses_the_customers_key_and_pays_only_the_fee(world, caplog, settings):
    caplog.set_level(logging.DEBUG)
    own_key(world)
    raw = client(world).chat.completions.with_raw_response.create(
        model="test-gpt-5.5", messages=CHAT
    )
    completion = raw.parse()
    assert world.fake.requests[-1]["headers"]["authorization"] == f"Bearer {OWN_KEY}"
    usage = completion.usage
    list_pico = usage.prompt_tokens * 1_250_000 + usage.completion_tokens * 10_000_000
    list_nano = (list_pico + 500) // 1000
    fee = (list_nano * 15 + 500) // 1000  # 1.5 %, half up
    assert usage.model_extra["is_byok"] is True
    assert usage.model_extra["cost"] == pytest.approx(fee / 1e9, abs=1e-15)
    world.drain()
    row = RequestLog.objects.get()
    assert row.byok and row.cost_nano == fee
    entry = LedgerEntry.objects.get(reference=row.request_id)
    assert entry.kind == EntryKind.BYOK_FEE and entry.amount_nano == -fee
    # The customer's key is nowhere: not in the response, the log, the database, logs.
    assert OWN_KEY not in raw.http_response.text
    assert OWN_KEY not in str(dict(raw.headers))
    for stored in ProviderKey.objects.values_list("secret_encrypted", flat=True):
        assert OWN_KEY not in stored
    assert OWN_KEY not in str(list(RequestLog.objects.values()))
    assert OWN_KEY not in caplog.text
    admin = Client()
    world.tenant.owner.is_staff = world.tenant.owner.is_superuser = True
    world.tenant.owner.save()
    admin.login(email=world.tenant.owner.email, password=PASSWORD)
    for url in (
        "/admin/gateway/providerkey/",
        f"/admin/gateway/providerkey/{ProviderKey.objects.get().pk}/change/",
        "/admin/gateway/requestlog/",
    ):
        page = admin.get(url)
        assert page.status_code == 200 and OWN_KEY not in page.content.decode()


def test_a_refused_own_key_falls_back_to_managed_when_preferred(world):
    own_key(world, secret="bad-customer-key")
    completion = client(world).chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    assert completion.usage.model_extra.get("is_byok") is None
    auth = [r["headers"]["authorization"] for r in world.fake.requests]
    assert auth == ["Bearer bad-customer-key", "Bearer upstream-key"]


def test_mine_only_never_uses_the_managed_key(world):
    own_key(world, mode=ProviderKeyMode.ONLY, secret="bad-customer-key")
    with pytest.raises(openai.APIStatusError) as info:
        client(world).chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    assert info.value.status_code == 502
    assert "your own provider key" in info.value.message
    auth = [r["headers"]["authorization"] for r in world.fake.requests]
    assert auth == ["Bearer bad-customer-key"]


def test_a_key_spend_limit_refuses_once_reached(world):
    ApiKey.objects.filter(pk=world.key.pk).update(spend_limit_total_nano=2_000_000)
    world.key.refresh_from_db()
    world.key.save()  # publishes the change to the key caches
    c = client(world)
    statuses = []
    for _ in range(3):
        try:
            c.chat.completions.create(model="test-gpt-5.5", messages=CHAT, max_tokens=50)
            statuses.append(200)
        except openai.APIStatusError as error:
            statuses.append(error.status_code)
            assert "spend limit" in error.message
    # Each may cost up to ~$0.0005 (50 output tokens at $10/M, plus input): a $0.002
    # limit admits the first requests; after the real spend it refuses.
    assert statuses[0] == 200
    world.drain()
    spent = -sum(
        LedgerEntry.objects.filter(api_key=world.key).values_list("amount_nano", flat=True)
    )
    assert 0 < spent <= 2_000_000
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="test-gpt-5.5", messages=CHAT, max_tokens=4000)
    assert info.value.status_code == 402
    assert info.value.body["code"] == "key_spend_limit"
