"""Console: sessions, i.e. requests grouped by the X-Tollgate-Session-Id header a client
sends (one agent task), with their summed cost and tokens; and one session's requests."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dashboard.access import membership_for
from gateway.reports import session_get, session_requests, sessions_for

PAGE_SIZE = 50
SESSION_REQUESTS_SHOWN = 500
# Grouping scans every request in the window, so the default window is bounded.
WINDOWS = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_WINDOW = "7d"


def duration_text(seconds: float) -> str:
    """A session's length for people: "4.2 s", "12 min 5 s", "3 h 20 min"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _cursor_parse(raw: str) -> tuple[datetime, str] | None:
    when_raw, sep, session_id = raw.partition("|")
    when = parse_datetime(when_raw) if when_raw else None
    if when is None or not sep:
        return None
    return when, session_id


@login_required
def session_list(request: HttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org)
    window = request.GET.get("window", DEFAULT_WINDOW)
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    before = request.GET.get("before", "")
    sessions, cursor = sessions_for(
        organisation_id=membership.organisation.pk,
        since=timezone.now() - WINDOWS[window],
        before=_cursor_parse(before),
        size=PAGE_SIZE,
    )
    for s in sessions:
        s["duration_text"] = duration_text(s["duration"].total_seconds())
    return render(request, "dashboard/sessions/list.html", {
        "membership": membership, "sessions": sessions, "window": window,
        "windows": list(WINDOWS), "paged": bool(before),
        "next_cursor": f"{cursor[0].isoformat()}|{cursor[1]}" if cursor else "",
    })


@login_required
def session_detail(request: HttpRequest, org: str, session_id: str) -> HttpResponse:
    membership = membership_for(request, org)
    organisation_id = membership.organisation.pk
    session = session_get(organisation_id=organisation_id, session_id=session_id)
    if session is None:
        raise Http404("No such session")
    session["duration_text"] = duration_text(session["duration"].total_seconds())
    rows = list(session_requests(
        organisation_id=organisation_id, session_id=session_id
    )[:SESSION_REQUESTS_SHOWN])
    return render(request, "dashboard/sessions/detail.html", {
        "membership": membership, "session": session, "rows": rows,
        "truncated": session["requests"] > len(rows),
    })
