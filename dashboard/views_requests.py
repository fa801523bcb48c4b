"""Console: the request log of an organisation (filters, keyset pages, CSV export of
the filtered rows) and one request's detail."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.http import AuthenticatedHttpRequest
from billing.money import nano_to_usd_str
from dashboard.access import membership_for
from gateway.models import RequestLog, RequestOutcome
from gateway.reports import (
    STATUS_CLASSES,
    RequestFilters,
    provider_slugs,
    request_log_page,
    request_logs_filtered,
)
from gateway.selectors import request_log_get

PAGE_SIZE = 50
WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
STATUSES = tuple(RequestOutcome.values)
FILTER_PARAMS = ("key", "model", "status", "class", "provider", "byok", "window", "session")


def filters_parse(params: QueryDict) -> tuple[dict[str, str], RequestFilters]:
    """The filter form's values as typed (to redisplay them) and as a RequestFilters;
    values that make no sense are ignored rather than refused."""
    raw = {name: params.get(name, "").strip() for name in FILTER_PARAMS}
    window = WINDOWS.get(raw["window"])
    filters = RequestFilters(
        api_key_id=int(raw["key"]) if raw["key"].isdigit() else None,
        model=raw["model"],
        outcome=raw["status"] if raw["status"] in STATUSES else "",
        status_class=raw["class"] if raw["class"] in STATUS_CLASSES else "",
        provider=raw["provider"],
        byok={"yes": True, "no": False}.get(raw["byok"]),
        session_id=raw["session"],
        since=timezone.now() - window if window else None,
    )
    return raw, filters


def cursor_parse(raw: str) -> tuple[datetime, int] | None:
    when_raw, _, pk_raw = raw.partition("|")
    when = parse_datetime(when_raw) if when_raw else None
    if when is None or not pk_raw.isdigit():
        return None
    return when, int(pk_raw)


@login_required
def request_list(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org)
    organisation = membership.organisation
    raw, filters = filters_parse(request.GET)
    rows = request_logs_filtered(organisation_id=organisation.pk, filters=filters)
    before = request.GET.get("before", "")
    page, cursor = request_log_page(rows=rows, before=cursor_parse(before), size=PAGE_SIZE)
    next_cursor = f"{cursor[0].isoformat()}|{cursor[1]}" if cursor else ""
    keys = organisation.api_keys.order_by("name").only("id", "name", "prefix", "last_four")
    query = {k: v for k, v in raw.items() if v}
    return render(
        request,
        "dashboard/requests/list.html",
        {
            "membership": membership,
            "rows": page,
            "filters": raw,
            "keys": keys,
            "windows": list(WINDOWS),
            "statuses": STATUSES,
            "classes": list(STATUS_CLASSES),
            "providers": provider_slugs(),
            "next_cursor": next_cursor,
            "query": query,
            "paged": bool(before),
        },
    )


# --- CSV export -----------------------------------------------------------------

CSV_COLUMNS = (
    "request_id",
    "started_at",
    "api_key",
    "api_key_name",
    "session_id",
    "client_protocol",
    "requested_model",
    "resolved_model",
    "provider",
    "upstream_model",
    "stream",
    "status_code",
    "outcome",
    "error_type",
    "latency_ms",
    "ttfb_ms",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "byok",
    "cost_usd",
    "cost_nano",
)
EXPORT_CHUNK = 2000


class _Echo:
    """A file-like object whose write() returns the line, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> object:
    # Session ids and model names come from clients: a cell starting with = + - @
    # would run as a formula when the file is opened in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_row(r: RequestLog) -> list[object]:
    key = r.api_key
    return [
        _cell(v)
        for v in (
            r.request_id,
            r.started_at.isoformat(),
            key.masked if key else "",
            key.name if key else "",
            r.session_id,
            r.client_protocol,
            r.requested_model,
            r.resolved_model,
            r.provider,
            r.upstream_model,
            int(r.stream),
            r.status_code,
            r.outcome,
            r.error_type,
            r.latency_ms,
            "" if r.ttfb_ms is None else r.ttfb_ms,
            r.input_tokens,
            r.cache_read_tokens,
            r.cache_write_5m_tokens,
            r.cache_write_1h_tokens,
            r.output_tokens,
            r.reasoning_tokens,
            int(r.usage_estimated),
            int(r.byok),
            nano_to_usd_str(r.cost_nano),
            r.cost_nano,
        )
    ]


def _csv_lines(rows: Iterable[RequestLog]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for r in rows:
        yield writer.writerow(_csv_row(r))


async def _csv_lines_async(rows: QuerySet[RequestLog]) -> AsyncIterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    async for r in rows.aiterator(chunk_size=EXPORT_CHUNK):
        yield writer.writerow(_csv_row(r))


@login_required
def request_export(request: AuthenticatedHttpRequest, org: str) -> StreamingHttpResponse:
    """Every row matching the list's filters (not just one page), newest first, as CSV,
    streamed so an export of millions of rows never sits in memory."""
    membership = membership_for(request, org)
    _, filters = filters_parse(request.GET)
    rows = request_logs_filtered(organisation_id=membership.organisation.pk, filters=filters)
    # Under ASGI a synchronous iterator would be read whole into a list before the
    # first byte is sent, so the server gets an async one (fetching in chunks).
    if isinstance(request, ASGIRequest):
        content: Iterator[str] | AsyncIterator[str] = _csv_lines_async(rows)
    else:
        content = _csv_lines(rows.iterator(chunk_size=EXPORT_CHUNK))
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="tollgate-{membership.organisation.slug}-requests-{stamp}.csv"'
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
def request_detail(request: AuthenticatedHttpRequest, org: str, request_id: str) -> HttpResponse:
    membership = membership_for(request, org)
    row = request_log_get(request_id=request_id, organisation_ids=[membership.organisation.pk])
    if row is None:
        raise Http404("No such request")
    return render(
        request,
        "dashboard/requests/detail.html",
        {
            "membership": membership,
            "row": row,
            "timeline": attempts_timeline(row),
        },
    )


def attempts_timeline(row) -> list[dict]:
    """The attempts as bars on one time axis: when each started after the request
    did, how long it took, and which one served."""
    start = row.started_at.timestamp()
    total = max(row.latency_ms, 1)
    for a in row.attempts:
        total = max(
            total, int((a.get("started_at", start) - start) * 1000) + a.get("latency_ms", 0), 1
        )
    bars = []
    for a in sorted(row.attempts, key=lambda a: a.get("started_at", start)):
        offset = max(int((a.get("started_at", start) - start) * 1000), 0)
        served = 200 <= a.get("status", 0) < 300 and row.outcome == "ok" and not a.get("note")
        bars.append(
            {
                **a,
                "offset_ms": offset,
                "served": served,
                "left": round(offset * 100 / total, 2),
                "width": max(round(a.get("latency_ms", 0) * 100 / total, 2), 0.5),
            }
        )
    return bars
