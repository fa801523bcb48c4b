"""Credit holds cover the worst case honestly: media counted at the vendors' formulas
(a request of image URLs is small in bytes and large in tokens), and a request with no
output limit holds a capped amount when its model's maximum cannot be held."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from billing.models import EntryKind
from billing.selectors import balance_get
from billing.services import balance_reconcile, ledger_post
from gateway.models import RequestLog

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def _balance_set(world, nano: int) -> None:
    ledger_post(
        organisation=world.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=nano - balance_get(organisation=world.organisation),
        idempotency_key=f"test:set:{nano}",
    )


def _images(count: int) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "text", "text": "what is this"}] + [IMAGE] * count}
    ]


def test_image_urls_are_held_at_their_token_cost_not_their_bytes(world):
    _balance_set(world, 2_000_000)  # $0.002
    sdk = openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0)

    with pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model="test-gpt-5.5", max_tokens=10, messages=_images(60))

    assert refused.value.status_code == 402
    # 60 images x 1,600 tokens, at the dearest input rate a token can cost here (a
    # 1-hour cache write, $2.50 per million): at least $0.24, named in the message.
    quoted = re.search(r"may cost up to \$([0-9.]+)", refused.value.message)
    assert quoted and Decimal(quoted.group(1)) >= Decimal("0.24")
    assert world.fake.requests == []


def test_no_output_limit_holds_a_capped_amount_when_the_maximum_cannot_be_held(world):
    world.key.spend_limit_total_nano = 80_000_000  # $0.08
    world.key.save()
    from gateway.runtime import runtime

    runtime.caches_clear()
    sdk = anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)
    # claude-test-4.6: 8,192 output tokens at $15 per million would need $0.12;
    # 4,096 held instead need $0.06.
    raw = httpx.post(
        f"{world.url}/v1/messages",
        headers={"x-api-key": world.secret, "anthropic-version": "2023-06-01"},
        json={"model": "claude-test-4.6", "messages": [{"role": "user", "content": "hi"}]},
    )
    with pytest.raises(anthropic.APIStatusError) as refused:
        sdk.messages.create(
            model="claude-test-4.6", max_tokens=8192, messages=[{"role": "user", "content": "hi"}]
        )

    assert raw.status_code == 200, raw.text
    assert refused.value.status_code == 402  # an explicit 8,192 is held in full
    assert "spend limit" in refused.value.message


def _burst(world) -> list[int]:
    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        f"{world.openai_base}/chat/completions",
                        headers={"authorization": f"Bearer {world.secret}"},
                        json={"model": "test-gpt-5.5", "messages": _images(2)},
                    )
                    for _ in range(100)
                )
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(burst())
    world.drain()
    return statuses


def test_a_hundred_concurrent_image_requests_never_overdraw(world):
    _balance_set(world, 100_000_000)  # $0.10: two or so holds at a time

    statuses = _burst(world)

    assert set(statuses) <= {200, 402} and 200 in statuses and 402 in statuses
    assert RequestLog.objects.filter(status_code=200).count() == statuses.count(200)
    assert balance_get(organisation=world.organisation) >= 0
    assert balance_reconcile() == []


def test_the_media_walk_ignores_json_schemas_whose_property_is_called_type():
    from gateway.protocols.tokens import HOLD_IMAGE_TOKENS, hold_input_tokens

    body = {
        "tools": [{"parameters": {"properties": {"type": {"type": "string"}, "file": {}}}}],
        "messages": [{"role": "user", "content": [IMAGE]}],
    }
    raw = json.dumps(body).encode()

    assert hold_input_tokens(raw, body) == len(raw) // 3 + 1 + HOLD_IMAGE_TOKENS


def test_a_hundred_concurrent_image_requests_never_overspend_a_key_limit(world):
    from gateway.runtime import runtime

    world.key.spend_limit_total_nano = 50_000_000  # $0.05, with $100 of credit
    world.key.save()
    runtime.caches_clear()

    statuses = _burst(world)

    assert 200 in statuses and 402 in statuses
    spent = sum(RequestLog.objects.filter(api_key=world.key).values_list("cost_nano", flat=True))
    assert 0 < spent <= 50_000_000
    assert balance_reconcile() == []
