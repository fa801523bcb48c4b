"""Console: the request log of an organisation, and one request's detail."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dashboard.access import membership_for
from gateway.selectors import request_log_get, request_logs_for

PAGE_SIZE = 50
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}
STATUSES = ("ok", "error", "cancelled")


@login_required
def request_list(request: HttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org)
    organisation = membership.organisation
    rows = request_logs_for(organisation_ids=[organisation.pk])
    filters = {
        "key": request.GET.get("key", ""),
        "model": request.GET.get("model", "").strip(),
        "status": request.GET.get("status", ""),
        "window": request.GET.get("window", ""),
        "session": request.GET.get("session", "").strip(),
    }
    if filters["key"].isdigit():
        rows = rows.filter(api_key_id=int(filters["key"]))
    if filters["model"]:
        rows = rows.filter(resolved_model=filters["model"]) | rows.filter(
            requested_model=filters["model"]
        )
    if filters["status"] in STATUSES:
        rows = rows.filter(outcome=filters["status"])
    if filters["window"] in WINDOWS:
        rows = rows.filter(started_at__gte=timezone.now() - WINDOWS[filters["window"]])
    if filters["session"]:
        rows = rows.filter(session_id=filters["session"])
    # Keyset pagination: "older than this row", fast however many rows there are.
    before = request.GET.get("before", "")
    cursor = _cursor_parse(before)
    if cursor is not None:
        when, pk = cursor
        rows = rows.filter(started_at__lt=when) | rows.filter(started_at=when, pk__lt=pk)
    page = list(rows.order_by("-started_at", "-pk")[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    next_cursor = f"{page[-1].started_at.isoformat()}|{page[-1].pk}" if more and page else ""
    keys = organisation.api_keys.order_by("name").only("id", "name", "prefix", "last_four")
    query = {k: v for k, v in filters.items() if v}
    return render(request, "dashboard/requests/list.html", {
        "membership": membership, "rows": page, "filters": filters, "keys": keys,
        "windows": list(WINDOWS), "statuses": STATUSES, "next_cursor": next_cursor,
        "query": query, "paged": bool(before),
    })


def _cursor_parse(raw: str) -> tuple[datetime, int] | None:
    when_raw, _, pk_raw = raw.partition("|")
    when = parse_datetime(when_raw) if when_raw else None
    if when is None or not pk_raw.isdigit():
        return None
    return when, int(pk_raw)


@login_required
def request_detail(request: HttpRequest, org: str, request_id: str) -> HttpResponse:
    membership = membership_for(request, org)
    row = request_log_get(request_id=request_id, organisation_ids=[membership.organisation.pk])
    if row is None:
        raise Http404("No such request")
    return render(request, "dashboard/requests/detail.html", {
        "membership": membership, "row": row,
    })
