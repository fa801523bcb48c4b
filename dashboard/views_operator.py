"""Operators' console: the spend overview across every organisation. Staff only;
anyone else gets a 404, so the page's existence is not revealed."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Organisation
from dashboard.views_requests import (
    PAGE_SIZE,
    WINDOWS,
    attempts_timeline,
    cursor_parse,
    filters_parse,
)
from gateway.models import RequestLog
from gateway.reports import (
    STATUS_CLASSES,
    balance_total_get,
    provider_slugs,
    request_log_page,
    request_logs_filtered,
    spend_overview_get,
)


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise Http404("No such page")


@login_required
def operator_overview(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    report = spend_overview_get(organisation_ids=None)
    return render(request, "dashboard/operator/overview.html", {
        "report": report, "chart": report.chart_data(), "balance_nano": balance_total_get(),
        "operator": True,
    })


@login_required
def operator_requests(request: HttpRequest) -> HttpResponse:
    """Every organisation's request log, with the organisations' own filters."""
    _staff_only(request)
    raw, filters = filters_parse(request.GET)
    org_slug = request.GET.get("org", "").strip()
    organisation_id = None
    if org_slug:
        organisation = Organisation.objects.filter(slug=org_slug).first()
        organisation_id = organisation.pk if organisation else -1
    rows = request_logs_filtered(organisation_id=organisation_id, filters=filters)
    before = request.GET.get("before", "")
    page, cursor = request_log_page(rows=rows, before=cursor_parse(before), size=PAGE_SIZE)
    query = {k: v for k, v in {**raw, "org": org_slug}.items() if v}
    return render(request, "dashboard/operator/requests.html", {
        "rows": page, "filters": raw, "org_slug": org_slug, "windows": list(WINDOWS),
        "classes": list(STATUS_CLASSES), "providers": provider_slugs(), "query": query,
        "next_cursor": f"{cursor[0].isoformat()}|{cursor[1]}" if cursor else "",
        "paged": bool(before), "operator": True,
    })


@login_required
def operator_request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    _staff_only(request)
    row = RequestLog.objects.select_related("api_key", "organisation").filter(
        request_id=request_id).first()
    if row is None:
        raise Http404("No such request")
    return render(request, "dashboard/operator/request_detail.html", {
        "row": row, "timeline": attempts_timeline(row), "operator": True,
    })
