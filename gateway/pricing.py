"""Tokens -> money, exactly.

Prices are stored as Decimal USD per million tokens with at most 6 decimal places,
so one token costs a whole number of pico-dollars (1e-12 USD): price * 10^6. Server
tools the provider runs (web search, web fetch) are priced per 1,000 calls, also with
at most 6 decimals: one call is price * 10^9 pico-dollars. A request's cost is the
exact pico-dollar sum of each kind of token and each call at its own price, rounded
once (half up) to nano-dollars, the unit of the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.protocols.usage import Usage

PICO_PER_NANO = 1000


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

    def cost_nano(self, usage: Usage) -> int:
        if self.long is not None and usage.prompt_tokens > self.long_above:
            return self.long.cost_nano(usage)
        pico = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_5m_tokens * self.cache_write_5m
            + usage.cache_write_1h_tokens * self.cache_write_1h
            + usage.web_search_calls * self.web_search
            + usage.web_fetch_calls * self.web_fetch
        )
        return (pico + PICO_PER_NANO // 2) // PICO_PER_NANO

    def worst_case_nano(self, *, input_tokens: int, output_tokens: int) -> int:
        """Most a request could cost: every input token at the dearest input rate
        (a 1h cache write is dearer than plain input) and every allowed output token."""
        if self.long is not None and input_tokens > self.long_above:
            return self.long.worst_case_nano(input_tokens=input_tokens, output_tokens=output_tokens)
        dearest_input = max(self.input, self.cache_write_5m, self.cache_write_1h)
        pico = input_tokens * dearest_input + output_tokens * self.output
        return -(-pico // PICO_PER_NANO)  # round up: a hold must never fall short
