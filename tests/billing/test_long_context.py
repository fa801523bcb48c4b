"""Long-context tiers: above a model's threshold the whole request is priced at the
tier's prices (gateway.pricing.TokenPrices.long)."""

from __future__ import annotations

from decimal import Decimal

from gateway.pricing import TokenPrices
from gateway.protocols.usage import Usage

BASE = TokenPrices.from_usd_per_million(
    input=Decimal("1"),
    output=Decimal("5"),
    cache_read=Decimal("0.1"),
    cache_write_5m=Decimal("1.25"),
    cache_write_1h=Decimal("2"),
)
LONG = TokenPrices.from_usd_per_million(
    input=Decimal("5"),
    output=Decimal("25"),
    cache_read=Decimal("0.5"),
    cache_write_5m=Decimal("6.25"),
    cache_write_1h=Decimal("10"),
)


def tiered() -> TokenPrices:
    import dataclasses

    return dataclasses.replace(BASE, long_above=100_000, long=LONG)


def test_below_or_at_the_threshold_the_base_prices_apply():
    usage = Usage(input_tokens=90_000, cache_read_tokens=10_000, output_tokens=1_000)

    # 90,000 x $1 + 10,000 x $0.10 + 1,000 x $5 per million = $0.096
    assert tiered().cost_nano(usage) == 96_000_000


def test_above_it_every_token_of_the_request_is_priced_at_the_tier():
    # 100,001 prompt tokens counting the cache read: the whole request is long.
    usage = Usage(input_tokens=90_001, cache_read_tokens=10_000, output_tokens=1_000)

    # 90,001 x $5 + 10,000 x $0.50 + 1,000 x $25 per million
    assert tiered().cost_nano(usage) == 480_005 * 1000


def test_the_hold_uses_the_tier_above_the_threshold():
    prices = tiered()

    assert prices.worst_case_nano(input_tokens=100_000, output_tokens=0) == 200_000_000
    assert prices.worst_case_nano(input_tokens=200_000, output_tokens=0) == 2_000_000_000
