"""Conversions between integer nano-dollars and USD for display and input."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

NANO_PER_USD = 1_000_000_000


def usd_to_nano(usd: Decimal | str | int) -> int:
    value = Decimal(str(usd)) * NANO_PER_USD
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def nano_to_usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_USD


def format_usd(nano: int, places: int = 6) -> str:
    """`1234567` -> '$0.001235' (places after the point, half-up)."""
    quant = Decimal(1).scaleb(-places)
    value = nano_to_usd(nano).quantize(quant, rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{places}f}"


def nano_to_usd_str(nano: int) -> str:
    """Exact decimal string for APIs and headers: 1234567 -> '0.001234567'."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO_PER_USD)
    return f"{sign}{whole}.{frac:09d}"


class CentsAmounts:
    """Display helpers for anything with `amount_cents` and `fee_cents` (a top-up and
    its quote): exact Decimals of dollars with cents."""

    amount_cents: int
    fee_cents: int

    @property
    def credit_cents(self) -> int:
        return self.amount_cents - self.fee_cents

    @property
    def amount_usd(self) -> Decimal:
        return Decimal(self.amount_cents).scaleb(-2)

    @property
    def fee_usd(self) -> Decimal:
        return Decimal(self.fee_cents).scaleb(-2)

    @property
    def credit_usd(self) -> Decimal:
        return Decimal(self.credit_cents).scaleb(-2)
