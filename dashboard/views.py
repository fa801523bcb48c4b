"""Console entry points: the home redirect, an organisation's overview, and creating
another organisation."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render

from accounts.http import AuthenticatedHttpRequest
from accounts.services import OrganisationError, organisation_create
from billing.selectors import balance_get
from dashboard.access import membership_for
from dashboard.forms import OrganisationCreateForm
from gateway.reports import spend_overview_get


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Send the user to their most recently joined organisation's overview."""
    membership = (
        request.user.memberships.select_related("organisation").order_by("-created_at").first()
    )
    if membership is None:
        return render(request, "dashboard/no_organisation.html")
    return redirect("dashboard:overview", org=membership.organisation.slug)


@login_required
def overview(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    """Balance, spend today / this week / this month, daily spend by model over 30
    days, top keys and models, error rate (complete days from the roll-ups)."""
    membership = membership_for(request, org)
    organisation = membership.organisation
    report = spend_overview_get(organisation_ids=[organisation.pk])
    return render(
        request,
        "dashboard/overview.html",
        {
            "membership": membership,
            "report": report,
            "chart": report.chart_data(),
            "balance_nano": balance_get(organisation=organisation),
        },
    )


@login_required
def organisation_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = OrganisationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organisation = organisation_create(
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                owner=request.user,
            )
        except OrganisationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Created {organisation.name}. You are its owner.")
            return redirect("dashboard:overview", org=organisation.slug)
    return render(
        request,
        "dashboard/organisations/new.html",
        {"form": form},
        status=400 if form.is_bound else 200,
    )
