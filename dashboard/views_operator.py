"""Operators' console: the spend overview, the request log and the sessions across
every organisation. Staff only; anyone else gets a 404, so the pages' existence is not
revealed."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.http import AuthenticatedHttpRequest
from accounts.models import Organisation
from dashboard import views_sessions
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
    _session_finish,
    _session_sums,
    balance_total_get,
    provider_slugs,
    request_log_page,
    request_logs_filtered,
    spend_overview_get,
)


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise Http404("No such page")


def _organisation_id_for(slug: str) -> int | None:
    """The organisation filter: None for all, -1 (matches nothing) for an unknown slug."""
    if not slug:
        return None
    organisation = Organisation.objects.filter(slug=slug).first()
    return organisation.pk if organisation else -1


@login_required
def operator_overview(request: AuthenticatedHttpRequest) -> HttpResponse:
    _staff_only(request)
    report = spend_overview_get(organisation_ids=None)
    return render(
        request,
        "dashboard/operator/overview.html",
        {
            "report": report,
            "chart": report.chart_data(),
            "balance_nano": balance_total_get(),
            "operator": True,
        },
    )


@login_required
def operator_requests(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Every organisation's request log, with the organisations' own filters."""
    _staff_only(request)
    raw, filters = filters_parse(request.GET)
    org_slug = request.GET.get("org", "").strip()
    organisation_id = _organisation_id_for(org_slug)
    rows = request_logs_filtered(organisation_id=organisation_id, filters=filters)
    before = request.GET.get("before", "")
    page, cursor = request_log_page(rows=rows, before=cursor_parse(before), size=PAGE_SIZE)
    query = {k: v for k, v in {**raw, "org": org_slug}.items() if v}
    return render(
        request,
        "dashboard/operator/requests.html",
        {
            "rows": page,
            "filters": raw,
            "org_slug": org_slug,
            "windows": list(WINDOWS),
            "classes": list(STATUS_CLASSES),
            "providers": provider_slugs(),
            "query": query,
            "next_cursor": f"{cursor[0].isoformat()}|{cursor[1]}" if cursor else "",
            "paged": bool(before),
            "operator": True,
        },
    )


@login_required
def operator_request_detail(request: AuthenticatedHttpRequest, request_id: str) -> HttpResponse:
    _staff_only(request)
    row = (
        RequestLog.objects.select_related("api_key", "organisation")
        .filter(request_id=request_id)
        .first()
    )
    if row is None:
        raise Http404("No such request")
    return render(
        request,
        "dashboard/operator/request_detail.html",
        {
            "row": row,
            "timeline": attempts_timeline(row),
            "operator": True,
        },
    )


@login_required
def operator_sessions(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Every organisation's sessions, most recently active first, with the windows and
    pages of an organisation's own Sessions page."""
    _staff_only(request)
    window = views_sessions.window_parse(request.GET)
    org_slug = request.GET.get("org", "").strip()
    before = request.GET.get("before", "")
    sessions, cursor = _sessions_across(
        organisation_id=_organisation_id_for(org_slug),
        since=timezone.now() - views_sessions.WINDOWS[window],
        before=_session_cursor_parse(before),
        size=views_sessions.PAGE_SIZE,
    )
    views_sessions.durations_add(sessions)
    query = {k: v for k, v in {"window": window, "org": org_slug}.items() if v}
    return render(
        request,
        "dashboard/operator/sessions.html",
        {
            "sessions": sessions,
            "window": window,
            "windows": list(views_sessions.WINDOWS),
            "org_slug": org_slug,
            "query": query,
            "paged": bool(before),
            "next_cursor": "|".join([cursor[0].isoformat(), str(cursor[1]), cursor[2]])
            if cursor
            else "",
            "operator": True,
        },
    )


@login_required
def operator_session_detail(
    request: AuthenticatedHttpRequest, organisation: str, session_id: str
) -> HttpResponse:
    """One organisation's session as its members see it. The URL's keyword is not
    `org`, so the console does not show that organisation's menu to a staff member
    who happens to belong to it."""
    _staff_only(request)
    found = get_object_or_404(Organisation, slug=organisation)
    context = views_sessions.session_page_context(organisation=found, session_id=session_id)
    return render(
        request,
        "dashboard/operator/session_detail.html",
        {
            **context,
            "operator": True,
        },
    )


SessionCursor = tuple[datetime, int, str]  # last_at, organisation id, session id


def _session_cursor_parse(raw: str) -> SessionCursor | None:
    when_raw, _, rest = raw.partition("|")
    org_raw, sep, session_id = rest.partition("|")
    when = parse_datetime(when_raw) if when_raw else None
    if when is None or not org_raw.isdigit() or not sep:
        return None
    return when, int(org_raw), session_id


def _sessions_across(
    *, organisation_id: int | None, since: datetime, before: SessionCursor | None, size: int
) -> tuple[list[dict], SessionCursor | None]:
    """gateway.reports.sessions_for over every organisation (or one): a session is an
    organisation and an id, as two organisations may send the same id. Each dict also
    has its `organisation`. Kept with its only caller until gateway.reports takes an
    all-organisations mode; it shares that module's sums so the two pages agree."""
    rows = RequestLog.objects.exclude(session_id="").filter(started_at__gte=since)
    if organisation_id is not None:
        rows = rows.filter(organisation_id=organisation_id)
    sessions = rows.order_by().values("organisation_id", "session_id").annotate(**_session_sums())
    if before is not None:
        when, org_id, session_id = before
        sessions = sessions.filter(
            Q(last_at__lt=when)
            | Q(last_at=when, organisation_id__lt=org_id)
            | Q(last_at=when, organisation_id=org_id, session_id__lt=session_id)
        )
    page = list(sessions.order_by("-last_at", "-organisation_id", "-session_id")[: size + 1])
    organisations = Organisation.objects.in_bulk({s["organisation_id"] for s in page})
    for s in page:
        _session_finish(s)
        s["organisation"] = organisations[s["organisation_id"]]
    if len(page) <= size:
        return page, None
    page = page[:size]
    last = page[-1]
    return page, (last["last_at"], last["organisation_id"], last["session_id"])
