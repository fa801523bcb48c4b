"""Server tools the provider runs are billed per call on top of tokens: Anthropic's
`usage.server_tool_use.web_search_requests` at the model's price per 1,000 searches,
kept in the usage the client sees, logged and shown."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from gateway.models import RequestLog
from gateway.runtime import runtime

pytestmark = pytest.mark.django_db(transaction=True)

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}


@pytest.fixture
def priced(world):
    world.claude.price_web_search = Decimal("10")  # $10 per 1,000 searches
    world.claude.save()
    runtime.caches_clear()
    return world.claude


@pytest.mark.parametrize("stream", [False, True])
def test_a_web_search_is_billed_on_top_of_tokens(
    world, priced, stream, upstream_replay, anthropic_counts, vendor_cost
):
    sdk = anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)
    request = {
        "model": "claude-test-4.6",
        "max_tokens": 200,
        "tools": [WEB_SEARCH],
        "messages": [{"role": "user", "content": "search the web for tollgate"}],
    }
    if stream:
        with sdk.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = sdk.messages.create(**request)

    assert [b.type for b in message.content] == [
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    assert message.usage.server_tool_use.web_search_requests == 1
    [usage] = upstream_replay()
    counts = anthropic_counts(usage)
    assert counts["web_searches"] == 1
    expected = vendor_cost(counts, priced)
    search_nano = 10_000_000  # $0.01
    assert expected > search_nano
    world.drain()
    row = RequestLog.objects.get()
    assert (row.web_search_calls, row.cost_nano) == (1, expected)
    if not stream:  # (the SDK's stream accumulator keeps only the fields it knows)
        assert round(message.usage.model_extra["cost"] * 1e9) == expected


def test_no_search_no_charge(world, priced, upstream_replay, anthropic_counts, vendor_cost):
    sdk = anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0)

    sdk.messages.create(
        model="claude-test-4.6",
        max_tokens=200,
        tools=[WEB_SEARCH],
        messages=[{"role": "user", "content": "just answer"}],
    )

    [usage] = upstream_replay()
    world.drain()
    row = RequestLog.objects.get()
    assert row.web_search_calls == 0
    assert row.cost_nano == vendor_cost(anthropic_counts(usage), priced)
