"""Console entry points."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dashboard.access import membership_for


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to their most recently joined organisation's overview."""
    membership = request.user.memberships.select_related("organisation").order_by(
        "-created_at"
    ).first()
    if membership is None:
        return render(request, "dashboard/no_organisation.html")
    return redirect("dashboard:overview", org=membership.organisation.slug)


@login_required
def overview(request: HttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org)
    return render(request, "dashboard/overview.html", {"membership": membership})
