from django import template

from billing.money import format_usd

register = template.Library()


@register.filter
def usd(nano: int | None, places: int = 6) -> str:
    """Integer nano-dollars as '$0.001234'."""
    return format_usd(int(nano or 0), int(places))
