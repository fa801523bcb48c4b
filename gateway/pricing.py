"""Tokens -> money, exactly.

Prices are stored as Decimal USD per million tokens with at most 6 decimal places,
so one token costs a whole number of pico-dollars (1e-12 USD): price * 10^6. Server
tools the provider runs (web search, web fetch) are priced per 1,000 calls, also with
at most 6 decimals: one call is price * 10^9 pico-dollars. A request's cost is the
exact pico-dollar sum of each kind of token and each call at its own price, rounded
once (half up) to nano-dollars, the unit of the ledger.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from gateway.protocols.usage import Usage

PICO_PER_NANO = 1000
TIER_UNIT = 10_000  # a service-tier multiplier of 1, in parts per 10,000


def price_to_pico_per_token(usd_per_million: Decimal) -> int:
    pico = Decimal(usd_per_million) * 1_000_000
    if pico != pico.to_integral_value():
        raise ValueError(f"price {usd_per_million} has more than 6 decimal places")
    return int(pico)


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """Pico-dollars per token for each kind of token."""

    input: int
    output: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    web_search: int = 0  # pico-dollars per call
    web_fetch: int = 0
    # Above `long_above` prompt tokens, the whole request is priced at `long`.
    long_above: int = 0
    long: TokenPrices | None = None
    # Service tiers the provider reports (`priority`, `flex`) -> price multiplier in
    # parts per 10,000 (an exact integer: multipliers have at most 4 decimals).
    tiers: tuple[tuple[str, int], ...] = ()

    def for_prompt(self, prompt_tokens: int) -> TokenPrices:
        """The prices that apply to a request with this many prompt tokens."""
        if self.long is not None and prompt_tokens > self.long_above:
            return self.long
        return self

    @classmethod
    def from_usd_per_million(
        cls,
        *,
        input: Decimal,
        output: Decimal,
        cache_read: Decimal,
        cache_write_5m: Decimal,
        cache_write_1h: Decimal,
        web_search: Decimal = Decimal(0),
        web_fetch: Decimal = Decimal(0),
    ) -> TokenPrices:
        """Token prices in USD per million tokens; server-tool prices in USD per 1,000
        calls (so one call costs price * 10^9 pico-dollars, exact at 6 decimals)."""
        return cls(
            input=price_to_pico_per_token(input),
            output=price_to_pico_per_token(output),
            cache_read=price_to_pico_per_token(cache_read),
            cache_write_5m=price_to_pico_per_token(cache_write_5m),
            cache_write_1h=price_to_pico_per_token(cache_write_1h),
            web_search=price_to_pico_per_token(web_search) * 1000,
            web_fetch=price_to_pico_per_token(web_fetch) * 1000,
        )

    def tier_multiplier(self, service_tier: str) -> int:
        """Parts per 10,000 for this service tier (10,000 for any other)."""
        for name, multiplier in self.tiers:
            if name == service_tier:
                return multiplier
        return TIER_UNIT

    def cost_nano(self, usage: Usage) -> int:
        if self.long is not None and usage.prompt_tokens > self.long_above:
            long = dataclasses.replace(self.long, tiers=self.tiers)
            return long.cost_nano(usage)
        pico = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_5m_tokens * self.cache_write_5m
            + usage.cache_write_1h_tokens * self.cache_write_1h
            + usage.web_search_calls * self.web_search
            + usage.web_fetch_calls * self.web_fetch
        )
        multiplier = self.tier_multiplier(usage.service_tier) if self.tiers else TIER_UNIT
        if multiplier != TIER_UNIT:
            # pico * m / 10,000, rounded once, half up, to nano-dollars
            scale = PICO_PER_NANO * TIER_UNIT
            return (pico * multiplier + scale // 2) // scale
        return (pico + PICO_PER_NANO // 2) // PICO_PER_NANO

    def worst_case_nano(
        self, *, input_tokens: int, output_tokens: int, service_tier: str = ""
    ) -> int:
        """Most a request could cost: every input token at the dearest input rate
        (a 1h cache write is dearer than plain input) and every allowed output token."""
        if self.long is not None and input_tokens > self.long_above:
            return dataclasses.replace(self.long, tiers=self.tiers).worst_case_nano(
                input_tokens=input_tokens, output_tokens=output_tokens, service_tier=service_tier
            )
        dearest_input = max(self.input, self.cache_write_5m, self.cache_write_1h)
        pico = input_tokens * dearest_input + output_tokens * self.output
        multiplier = max(self.tier_multiplier(service_tier), TIER_UNIT)
        # round up: a hold must never fall short
        return -(-pico * multiplier // (PICO_PER_NANO * TIER_UNIT))
