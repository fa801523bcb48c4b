"""Operators' console: the spend overview across every organisation. Staff only;
anyone else gets a 404, so the page's existence is not revealed."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from gateway.reports import balance_total_get, spend_overview_get


@login_required
def operator_overview(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise Http404("No such page")
    report = spend_overview_get(organisation_ids=None)
    return render(request, "dashboard/operator/overview.html", {
        "report": report, "chart": report.chart_data(), "balance_nano": balance_total_get(),
        "operator": True,
    })
