"""Console: sessions, i.e. requests grouped by the X-Tollgate-Session-Id header a client
sends (one agent task), with their summed cost and tokens; and one session's requests.

A session id is free text from a client, so its place in a URL is escaped by
`SessionIdConverter`: `/`, `..`, `?`, `#` or a space in it cannot change the path."""

from __future__ import annotations

import string
from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.http import AuthenticatedHttpRequest
from accounts.models import Organisation
from dashboard.access import membership_for
from gateway.reports import session_get, session_requests, sessions_for

PAGE_SIZE = 50
SESSION_REQUESTS_SHOWN = 500
# Grouping scans every request in the window, so the default window is bounded.
WINDOWS = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_WINDOW = "7d"


_URL_KEPT = frozenset(string.ascii_letters + string.digits + "-_")


class SessionIdConverter:
    """`<session_id:...>` in a URL: a session id as one path segment of letters, digits,
    `-`, `_` and `~XX` escapes (each other UTF-8 byte in hex), so "task-1" stays
    readable and "a/../b" is "a~2F~2E~2E~2Fb". No `%` escapes on purpose: browsers
    resolve `%2E%2E` as `..`, and proxies may decode `%2F` into a `/`. Only the one
    canonical spelling of an id resolves; any other is a 404."""

    regex = "[A-Za-z0-9_~-]+"

    def to_url(self, value: str) -> str:
        return "".join(
            ch if ch in _URL_KEPT else "".join(f"~{byte:02X}" for byte in ch.encode())
            for ch in value
        )

    def to_python(self, value: str) -> str:
        first, *escaped = value.split("~")
        raw = bytearray(first.encode())
        for part in escaped:
            if len(part) < 2:
                raise ValueError("an escape needs two hex digits")
            raw += bytes.fromhex(part[:2]) + part[2:].encode()
        session_id = raw.decode()  # UnicodeDecodeError is a ValueError: no match
        if self.to_url(session_id) != value:
            raise ValueError("not the canonical spelling of this session id")
        return session_id


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


def window_parse(params: QueryDict) -> str:
    """The window asked for, or the default one for anything else."""
    window = params.get("window", DEFAULT_WINDOW)
    return window if window in WINDOWS else DEFAULT_WINDOW


def durations_add(sessions: list[dict]) -> None:
    for s in sessions:
        s["duration_text"] = duration_text(s["duration"].total_seconds())


@login_required
def session_list(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org)
    window = window_parse(request.GET)
    before = request.GET.get("before", "")
    sessions, cursor = sessions_for(
        organisation_id=membership.organisation.pk,
        since=timezone.now() - WINDOWS[window],
        before=_cursor_parse(before),
        size=PAGE_SIZE,
    )
    durations_add(sessions)
    return render(
        request,
        "dashboard/sessions/list.html",
        {
            "membership": membership,
            "sessions": sessions,
            "window": window,
            "windows": list(WINDOWS),
            "paged": bool(before),
            "next_cursor": f"{cursor[0].isoformat()}|{cursor[1]}" if cursor else "",
        },
    )


@login_required
def session_detail(request: AuthenticatedHttpRequest, org: str, session_id: str) -> HttpResponse:
    membership = membership_for(request, org)
    context = session_page_context(organisation=membership.organisation, session_id=session_id)
    return render(request, "dashboard/sessions/detail.html", {**context, "membership": membership})


def session_page_context(*, organisation: Organisation, session_id: str) -> dict:
    """What a session's page shows (its totals and first requests), for its own
    organisation's members and for operators alike. 404 if the organisation has no
    such session, so another organisation's ids reveal nothing."""
    session = session_get(organisation_id=organisation.pk, session_id=session_id)
    if session is None:
        raise Http404("No such session")
    durations_add([session])
    rows = list(
        session_requests(organisation_id=organisation.pk, session_id=session_id)[
            :SESSION_REQUESTS_SHOWN
        ]
    )
    return {
        "organisation": organisation,
        "session": session,
        "rows": rows,
        "truncated": session["requests"] > len(rows),
    }
