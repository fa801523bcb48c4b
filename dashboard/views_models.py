"""Console: the models an organisation's keys may use (by the organisation's groups),
with prices per million tokens, context window and the exact id to paste into a
client, plus the base URLs that connect a tool to the gateway."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedHttpRequest
from dashboard.access import membership_for
from gateway.reports import models_for_organisation


def price_per_million(price: Decimal) -> str:
    """USD per million tokens for people: at least cents, no trailing zeros past them
    ("$3.00", "$0.125", "$1.5625")."""
    value = price.normalize()
    if value.as_tuple().exponent > -2:  # type: ignore[operator]
        value = value.quantize(Decimal("0.01"))
    return f"${value:,f}"


@login_required
def model_list(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org)
    rows = [
        {
            "model": model,
            "groups": groups,
            "aliases": sorted(a.alias for a in model.aliases.all()),
            "context_window": f"{model.context_window:,}",
            "max_output_tokens": f"{model.max_output_tokens:,}",
            "prices": {
                name: price_per_million(getattr(model, f"price_{name}"))
                for name in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
            },
        }
        for model, groups in models_for_organisation(organisation=membership.organisation)
    ]
    return render(
        request,
        "dashboard/models/list.html",
        {
            "membership": membership,
            "rows": rows,
            "groups": [g.slug for g in membership.organisation.allowed_groups.all()],
            "openai_base": f"{settings.SITE_URL}/v1",
            "anthropic_base": settings.SITE_URL,
        },
    )
