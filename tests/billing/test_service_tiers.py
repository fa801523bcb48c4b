"""Service tiers: when the provider reports that a request was served on its priority
or flex tier, every price is multiplied by the model's multiplier for that tier."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import openai
import pytest

from gateway.models import RequestLog
from gateway.pricing import TokenPrices
from gateway.protocols.usage import Usage
from gateway.runtime import runtime

PRICES = dataclasses.replace(
    TokenPrices.from_usd_per_million(
        input=Decimal("1.25"),
        output=Decimal("10"),
        cache_read=Decimal("0.125"),
        cache_write_5m=Decimal("0"),
        cache_write_1h=Decimal("0"),
    ),
    tiers=(("priority", 17_500), ("flex", 5_000)),  # 1.75x and 0.5x
)
USAGE = dict(input_tokens=1_000, output_tokens=333)


@pytest.mark.parametrize(
    ("tier", "nano"),
    [
        ("", 4_580_000),  # 1,000 x $1.25 + 333 x $10 per million = $0.00458
        ("default", 4_580_000),
        ("priority", 8_015_000),  # x 1.75
        ("flex", 2_290_000),  # x 0.5
    ],
)
def test_the_reported_tier_multiplies_every_price(tier, nano):
    assert PRICES.cost_nano(Usage(**USAGE, service_tier=tier)) == nano


def test_a_hold_for_a_priority_request_uses_the_priority_multiplier():
    standard = PRICES.worst_case_nano(input_tokens=1_000, output_tokens=1_000)
    priority = PRICES.worst_case_nano(
        input_tokens=1_000, output_tokens=1_000, service_tier="priority"
    )
    flex = PRICES.worst_case_nano(input_tokens=1_000, output_tokens=1_000, service_tier="flex")

    assert priority == standard * 175 // 100
    assert flex == standard  # a hold never assumes less than the standard price


@pytest.mark.django_db(transaction=True)
def test_an_openai_answer_served_on_priority_is_billed_at_the_priority_multiplier(world):
    world.gpt.priority_multiplier = Decimal("2")
    world.gpt.save()
    runtime.caches_clear()
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764806400,
        "model": "gpt-5.5",
        "service_tier": "priority",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
    }
    world.fake.script(
        "gpt-5.5",
        [
            {
                "replay": {
                    "status": 200,
                    "headers": {"content-type": "application/json"},
                    "body": json.dumps(answer),
                }
            }
        ],
    )
    sdk = openai.OpenAI(base_url=world.openai_base, api_key=world.secret, max_retries=0)

    completion = sdk.chat.completions.create(
        model="test-gpt-5.5", messages=[{"role": "user", "content": "hi"}], service_tier="priority"
    )

    assert completion.service_tier == "priority"
    world.drain()
    # (1,000 x $1.25 + 100 x $10) per million = $0.00225, times 2
    row = RequestLog.objects.get()
    assert (row.cost_nano, row.service_tier) == (4_500_000, "priority")
