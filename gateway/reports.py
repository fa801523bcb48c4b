"""Reads behind the console's usage pages: the spend overview (one organisation's, or
every organisation's for operators), sessions, the filtered request log, and the
models an organisation may use.

Complete days are read from the daily roll-ups; only today is summed from the raw
request log. Each reader issues a fixed number of queries, however many rows there are.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import (
    BigIntegerField,
    Count,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from accounts.models import ApiKey, Organisation
from billing.models import CreditBalance
from gateway.models import DailyRollup, Model, Provider, RequestLog, RequestOutcome
from gateway.rollups import day_bounds, utc_today

CHART_DAYS = 30
CHART_MODELS = 6  # series in the stacked chart; the rest are summed as "Other"
OTHER = "Other"


@dataclass
class Spend:
    """Spend of one thing (a key, a model, an organisation) over the chart window."""

    cost_nano: int = 0
    requests: int = 0
    errors: int = 0
    byok_requests: int = 0


@dataclass
class ChartSeries:
    label: str
    values: list[int]  # nano-USD per day, oldest first


@dataclass
class SpendOverview:
    today: date
    days: list[date]
    series: list[ChartSeries]
    daily_totals: list[int]
    spend_today_nano: int
    spend_week_nano: int
    spend_month_nano: int
    requests: int  # over the chart window, today included
    errors: int
    byok_requests: int
    top_keys: list[tuple[ApiKey | None, Spend]] = field(default_factory=list)
    top_models: list[tuple[str, Spend]] = field(default_factory=list)
    top_organisations: list[tuple[Organisation, Spend]] = field(default_factory=list)

    @property
    def error_rate_percent(self) -> Decimal | None:
        if not self.requests:
            return None
        return (Decimal(self.errors) * 100 / self.requests).quantize(Decimal("0.1"))

    @property
    def byok_share_percent(self) -> Decimal | None:
        """Share of requests served with the organisation's own provider keys."""
        if not self.requests:
            return None
        return (Decimal(self.byok_requests) * 100 / self.requests).quantize(Decimal("0.1"))

    @property
    def total_nano(self) -> int:
        return sum(self.daily_totals)

    def chart_data(self) -> dict:
        """What static/js/charts.js draws: ISO days and, per model, nano-USD a day."""
        return {
            "days": [d.isoformat() for d in self.days],
            "series": [{"label": s.label, "values": s.values} for s in self.series],
        }

    def daily_rows(self) -> list[tuple[date, int]]:
        """(day, spend) newest first, for the table beside the chart."""
        return list(reversed(list(zip(self.days, self.daily_totals, strict=True))))


def spend_overview_get(
    *, organisation_ids: list[int] | None, now: datetime | None = None, top: int = 5
) -> SpendOverview:
    """Spend over the last CHART_DAYS days (today included) for the given
    organisations, or for all of them when `organisation_ids` is None."""
    today = utc_today(now)
    chart_start = today - timedelta(days=CHART_DAYS - 1)
    week_start = today - timedelta(days=today.weekday())  # ISO weeks begin on Monday
    month_start = today.replace(day=1)
    since = min(chart_start, week_start, month_start)

    rollups = DailyRollup.objects.filter(day__gte=since, day__lt=today)
    live = RequestLog.objects.filter(started_at__gte=day_bounds(today)[0])
    if organisation_ids is not None:
        rollups = rollups.filter(organisation_id__in=organisation_ids)
        live = live.filter(organisation_id__in=organisation_ids)

    by_day_model = (
        rollups.order_by()
        .values("day", "model")
        .annotate(
            cost=Sum("cost_nano"), n=Sum("requests"), err=Sum("errors"), byok=Sum("byok_requests")
        )
    )
    by_key = (
        rollups.filter(day__gte=chart_start)
        .order_by()
        .values("organisation_id", "api_key_id")
        .annotate(
            cost=Sum("cost_nano"), n=Sum("requests"), err=Sum("errors"), byok=Sum("byok_requests")
        )
    )
    today_rows = (
        live.order_by()
        .values("organisation_id", "api_key_id", "resolved_model")
        .annotate(
            cost=Sum("cost_nano"),
            n=Count("id"),
            err=Count("id", filter=Q(outcome=RequestOutcome.ERROR)),
            byok=Count("id", filter=Q(byok=True)),
        )
    )

    day_model: dict[tuple[date, str], Spend] = defaultdict(Spend)
    for r in by_day_model:
        _add(day_model[(r["day"], r["model"])], r)
    keys: dict[int | None, Spend] = defaultdict(Spend)
    orgs: dict[int, Spend] = defaultdict(Spend)
    for r in by_key:
        _add(keys[r["api_key_id"]], r)
        _add(orgs[r["organisation_id"]], r)
    for r in today_rows:
        _add(day_model[(today, r["resolved_model"])], r)
        _add(keys[r["api_key_id"]], r)
        _add(orgs[r["organisation_id"]], r)

    days = [chart_start + timedelta(days=n) for n in range(CHART_DAYS)]
    models: dict[str, Spend] = defaultdict(Spend)
    per_day: dict[date, int] = defaultdict(int)
    for (day, model), spend in day_model.items():
        per_day[day] += spend.cost_nano
        if day >= chart_start:
            _add_spend(models[model], spend)
    ranked_models = sorted(models.items(), key=lambda kv: (-kv[1].cost_nano, kv[0]))
    shown = [m for m, _ in ranked_models[:CHART_MODELS]]
    series = [
        ChartSeries(
            label=m or "(no model)",
            values=[day_model[(d, m)].cost_nano if (d, m) in day_model else 0 for d in days],
        )
        for m in shown
    ]
    if len(ranked_models) > CHART_MODELS:
        rest = {m for m, _ in ranked_models[CHART_MODELS:]}
        series.append(
            ChartSeries(
                label=OTHER,
                values=[
                    sum(s.cost_nano for (d2, m), s in day_model.items() if d2 == d and m in rest)
                    for d in days
                ],
            )
        )
    window = [s for _, s in ranked_models]
    overview = SpendOverview(
        today=today,
        days=days,
        series=series,
        daily_totals=[per_day[d] for d in days],
        spend_today_nano=per_day[today],
        spend_week_nano=sum(v for d, v in per_day.items() if d >= week_start),
        spend_month_nano=sum(v for d, v in per_day.items() if d >= month_start),
        requests=sum(s.requests for s in window),
        errors=sum(s.errors for s in window),
        byok_requests=sum(s.byok_requests for s in window),
        top_models=[(m or "(no model)", s) for m, s in ranked_models[:top]],
    )
    top_keys = sorted(keys.items(), key=lambda kv: (-kv[1].cost_nano, kv[0] or 0))[:top]
    key_objs = ApiKey.objects.select_related("organisation").in_bulk(
        [k for k, _ in top_keys if k is not None]
    )
    overview.top_keys = [(key_objs.get(k) if k else None, s) for k, s in top_keys]
    if organisation_ids is None:
        top_orgs = sorted(orgs.items(), key=lambda kv: (-kv[1].cost_nano, kv[0]))[:top]
        org_objs = Organisation.objects.in_bulk([o for o, _ in top_orgs])
        overview.top_organisations = [(org_objs[o], s) for o, s in top_orgs if o in org_objs]
    return overview


def _add(spend: Spend, row: dict) -> None:
    spend.cost_nano += row["cost"] or 0
    spend.requests += row["n"] or 0
    spend.errors += row["err"] or 0
    spend.byok_requests += row["byok"] or 0


def _add_spend(spend: Spend, other: Spend) -> None:
    spend.cost_nano += other.cost_nano
    spend.requests += other.requests
    spend.errors += other.errors
    spend.byok_requests += other.byok_requests


def balance_total_get() -> int:
    """Every organisation's credit balance summed, in nano-USD (operators' overview)."""
    return CreditBalance.objects.aggregate(total=Sum("balance_nano"))["total"] or 0


# --- The request log, filtered --------------------------------------------------

STATUS_CLASSES = {"2xx": (200, 300), "4xx": (400, 500), "5xx": (500, 600)}


@dataclass(frozen=True)
class RequestFilters:
    api_key_id: int | None = None
    model: str = ""  # matches the requested or the resolved model
    outcome: str = ""  # a RequestOutcome value
    status_class: str = ""  # a STATUS_CLASSES key
    provider: str = ""
    byok: bool | None = None
    session_id: str = ""
    since: datetime | None = None


def request_logs_filtered(
    *, organisation_id: int | None, filters: RequestFilters
) -> QuerySet[RequestLog]:
    """An organisation's request log narrowed by `filters`, newest first. None means
    every organisation's: for operators' views only."""
    rows = RequestLog.objects.all()
    if organisation_id is not None:
        rows = rows.filter(organisation_id=organisation_id)
    if filters.api_key_id is not None:
        rows = rows.filter(api_key_id=filters.api_key_id)
    if filters.model:
        rows = rows.filter(Q(resolved_model=filters.model) | Q(requested_model=filters.model))
    if filters.outcome:
        rows = rows.filter(outcome=filters.outcome)
    if filters.status_class in STATUS_CLASSES:
        low, high = STATUS_CLASSES[filters.status_class]
        rows = rows.filter(status_code__gte=low, status_code__lt=high)
    if filters.provider:
        rows = rows.filter(provider=filters.provider)
    if filters.byok is not None:
        rows = rows.filter(byok=filters.byok)
    if filters.session_id:
        rows = rows.filter(session_id=filters.session_id)
    if filters.since is not None:
        rows = rows.filter(started_at__gte=filters.since)
    return rows.select_related("api_key", "organisation").order_by("-started_at", "-pk")


def request_log_page(
    *, rows: QuerySet[RequestLog], before: tuple[datetime, int] | None, size: int
) -> tuple[list[RequestLog], tuple[datetime, int] | None]:
    """One page of `rows` (newest first) older than the cursor `before` (started_at,
    pk), and the cursor of the next page, or None. Keyset pagination: a page deep in
    millions of rows costs the same as the first."""
    if before is not None:
        when, pk = before
        # The plain `started_at <= when` bounds the index scan; the OR breaks ties.
        rows = rows.filter(started_at__lte=when).filter(
            Q(started_at__lt=when) | Q(started_at=when, pk__lt=pk)
        )
    page = list(rows[: size + 1])
    if len(page) <= size:
        return page, None
    page = page[:size]
    return page, (page[-1].started_at, page[-1].pk)


def provider_slugs() -> list[str]:
    """The catalog's provider slugs (what the request log's `provider` holds)."""
    return list(Provider.objects.order_by("slug").values_list("slug", flat=True))


# --- Sessions -------------------------------------------------------------------


def _session_sums() -> dict:
    return {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(outcome=RequestOutcome.ERROR)),
        "cost": Sum("cost_nano"),
        "tokens_in": Sum(
            F("input_tokens")
            + F("cache_read_tokens")
            + F("cache_write_5m_tokens")
            + F("cache_write_1h_tokens")
        ),
        "tokens_out": Sum("output_tokens"),
        "first_at": Min("started_at"),
        "last_at": Max("started_at"),
    }


def sessions_for(
    *,
    organisation_id: int,
    since: datetime | None,
    before: tuple[datetime, str] | None,
    size: int,
) -> tuple[list[dict], tuple[datetime, str] | None]:
    """An organisation's sessions (requests sharing an X-Tollgate-Session-Id), most
    recently active first, one page after the cursor `before` (last_at, session_id).
    Each is a dict: session_id, requests, errors, cost_nano, input_tokens (cache
    included), output_tokens, first_at, last_at, duration."""
    rows = RequestLog.objects.filter(organisation_id=organisation_id).exclude(session_id="")
    if since is not None:
        rows = rows.filter(started_at__gte=since)
    sessions = rows.order_by().values("session_id").annotate(**_session_sums())
    if before is not None:
        when, session_id = before
        sessions = sessions.filter(Q(last_at__lt=when) | Q(last_at=when, session_id__lt=session_id))
    page = list(sessions.order_by("-last_at", "-session_id")[: size + 1])
    for s in page:
        _session_finish(s)
    if len(page) <= size:
        return page, None
    page = page[:size]
    return page, (page[-1]["last_at"], page[-1]["session_id"])


def session_get(*, organisation_id: int, session_id: str) -> dict | None:
    """One session's totals (as in `sessions_for`), or None if it has no requests."""
    rows = RequestLog.objects.filter(organisation_id=organisation_id, session_id=session_id)
    summary = rows.aggregate(**_session_sums())
    if not session_id or not summary["requests"]:
        return None
    summary["session_id"] = session_id
    return _session_finish(summary)


def session_requests(*, organisation_id: int, session_id: str) -> QuerySet[RequestLog]:
    """A session's requests in the order they were made."""
    return (
        RequestLog.objects.filter(organisation_id=organisation_id, session_id=session_id)
        .select_related("api_key")
        .order_by("started_at", "pk")
    )


def _session_finish(s: dict) -> dict:
    s["cost_nano"] = s.pop("cost") or 0
    s["input_tokens"] = s.pop("tokens_in") or 0
    s["output_tokens"] = s.pop("tokens_out") or 0
    s["duration"] = s["last_at"] - s["first_at"]
    return s


# --- Models ---------------------------------------------------------------------


def models_for_organisation(*, organisation: Organisation) -> list[tuple[Model, list[str]]]:
    """The enabled models the organisation's keys may use, each with the slugs of the
    organisation's groups that grant it."""
    allowed = {g.pk: g.slug for g in organisation.allowed_groups.all()}
    models = (
        Model.objects.filter(enabled=True, groups__in=list(allowed))
        .distinct()
        .prefetch_related("aliases", "groups")
        .order_by("public_id")
    )
    return [(m, sorted(allowed[g.pk] for g in m.groups.all() if g.pk in allowed)) for m in models]


# --- Organisations, for the operators' admin ---------------------------------------


def organisations_with_spend(
    *, organisations: QuerySet[Organisation], now: datetime | None = None
) -> QuerySet[Organisation]:
    """`organisations` annotated with balance_nano, spend_today_nano and
    spend_month_nano (complete days from the roll-ups, today from the log), as
    subqueries so a list of any length costs one query."""
    today = utc_today(now)
    month_rolled = (
        DailyRollup.objects.filter(
            organisation=OuterRef("pk"), day__gte=today.replace(day=1), day__lt=today
        )
        .order_by()
        .values("organisation")
        .annotate(total=Sum("cost_nano"))
        .values("total")
    )
    live = (
        RequestLog.objects.filter(organisation=OuterRef("pk"), started_at__gte=day_bounds(today)[0])
        .order_by()
        .values("organisation")
        .annotate(total=Sum("cost_nano"))
        .values("total")
    )
    zero = Value(0, output_field=BigIntegerField())
    return organisations.annotate(
        balance_nano=Coalesce("credit__balance_nano", zero),
        spend_today_nano=Coalesce(Subquery(live, output_field=BigIntegerField()), zero),
    ).annotate(
        spend_month_nano=F("spend_today_nano")
        + Coalesce(Subquery(month_rolled, output_field=BigIntegerField()), zero),
    )
