"""Console billing pages: balance, ledger history, top-ups through Stripe Checkout.

Members see the balance, history and top-up states; admins and owners top up. The
success page Stripe redirects to only shows the top-up's current state: credit comes
from Stripe's signed webhook (billing.stripe_events), never from this redirect.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from accounts.http import AuthenticatedHttpRequest
from accounts.models import Membership, Role
from billing.models import TopUpStatus
from billing.money import format_usd
from billing.selectors import (
    balance_get,
    ledger_entries_for,
    topup_for_session,
    topup_get,
    topups_for,
)
from billing.stripe_client import stripe_enabled
from billing.topups import (
    TopUpError,
    launch_window_end,
    topup_amount_parse,
    topup_checkout_create,
    topup_fee_percent,
    topup_quote,
)
from dashboard.access import membership_for

LEDGER_PAGE_SIZE = 25


class TopUpForm(forms.Form):
    amount = forms.CharField(
        label="Amount (USD)",
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )

    def clean_amount(self):
        try:
            quote = topup_quote(amount_usd=topup_amount_parse(self.cleaned_data["amount"]))
        except TopUpError as exc:
            raise forms.ValidationError(str(exc)) from None
        self.quote = quote
        return quote.amount_usd


def _render_billing(
    request: HttpRequest, membership: Membership, form: TopUpForm | None, status: int = 200
) -> HttpResponse:
    organisation = membership.organisation
    page = Paginator(ledger_entries_for(organisation=organisation), LEDGER_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    percent, launch = topup_fee_percent()
    if form is None:
        form = TopUpForm(initial={"amount": f"{settings.TOLLGATE_TOPUP_MIN_USD:f}"})
    return render(
        request,
        "dashboard/billing.html",
        {
            "membership": membership,
            "balance": format_usd(balance_get(organisation=organisation), places=4),
            "page": page,
            "entries": [(e, format_usd(e.amount_nano, places=6)) for e in page.object_list],
            "topups": list(topups_for(organisation=organisation)[:10]),
            "form": form,
            "stripe_enabled": stripe_enabled(),
            "fee_percent": percent.normalize(),
            "standard_fee_percent": settings.TOLLGATE_TOPUP_FEE_PERCENT.normalize(),
            "launch_pricing": launch,
            "launch_window_end": launch_window_end(),
            "minimum_usd": settings.TOLLGATE_TOPUP_MIN_USD,
        },
        status=status,
    )


@login_required
@require_GET
def billing(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.ADMIN)
    if request.GET.get("topup") == "cancelled":
        messages.info(request, "Top-up cancelled: nothing was charged.")
    return _render_billing(request, membership, None)


@login_required
@require_http_methods(["GET", "POST"])
def billing_topup(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    """GET ?amount=: the quote (fee and credit) to confirm. POST: off to Stripe."""
    membership = membership_for(request, org, minimum=Role.ADMIN)
    organisation = membership.organisation
    form = TopUpForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        return _render_billing(request, membership, form, status=400)
    if request.method == "GET":
        return render(
            request,
            "dashboard/billing_topup.html",
            {"membership": membership, "quote": form.quote, "stripe_enabled": stripe_enabled()},
        )
    slug = organisation.slug
    billing_url = settings.SITE_URL + reverse("dashboard:billing", args=[slug])
    return_url = settings.SITE_URL + reverse("dashboard:billing_topup_return", args=[slug])
    try:
        started = topup_checkout_create(
            organisation=organisation,
            amount_usd=form.cleaned_data["amount"],
            created_by=request.user,
            # Stripe fills in {CHECKOUT_SESSION_ID} when it redirects back.
            success_url=return_url + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=billing_url + "?topup=cancelled",
        )
    except TopUpError as exc:
        form.add_error(None, str(exc))
        return _render_billing(request, membership, form, status=400)
    return redirect(started.checkout_url, permanent=False)


@login_required
@require_GET
def billing_topup_return(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    """Where Stripe sends the payer back: shows that top-up's state, nothing more."""
    membership = membership_for(request, org, minimum=Role.ADMIN)
    found = topup_for_session(
        organisation=membership.organisation, session_id=request.GET.get("session_id", "")
    )
    if found is None:
        raise Http404("No such top-up")
    return redirect("dashboard:billing_topup_status", org=org, topup=found.public_id)


@login_required
@require_GET
def billing_topup_status(request: AuthenticatedHttpRequest, org: str, topup: str) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.ADMIN)
    found = topup_get(organisation=membership.organisation, public_id=topup)
    if found is None:
        raise Http404("No such top-up")
    waiting = found.status in (TopUpStatus.PENDING, TopUpStatus.PROCESSING)
    return render(
        request,
        "dashboard/billing_topup_status.html",
        {
            "membership": membership,
            "topup": found,
            "waiting": waiting,
            "amount": f"${found.amount_usd:,}",
            "balance": format_usd(balance_get(organisation=membership.organisation), places=4),
        },
    )
