"""Daily roll-ups: the request log summed per organisation, API key, resolved model and
UTC day into `DailyRollup` rows.

A day is always recomputed whole from the log (delete and insert in one transaction),
so running it twice changes nothing and running it again after late rows arrive
(a usage batch flushed after midnight, a replayed queue) picks them up. Celery runs
`rollup_recent` on a beat schedule (gateway.tasks); it also catches up on days missed
while no worker ran, up to `CATCH_UP_DAYS` back.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from accounts.models import Organisation
from gateway.models import DailyRollup, RequestLog, RequestOutcome

log = logging.getLogger(__name__)

# How far back `rollup_recent` goes to fill days no worker computed (a stopped beat, a
# fresh install of an existing log). Dashboards show at most a month.
CATCH_UP_DAYS = 35

_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day, as aware datetimes."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def utc_today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def request_log_sums() -> dict:
    """The aggregate expressions a roll-up holds, for `.annotate()` / `.aggregate()`
    over request log rows (so today's live numbers are summed exactly like a day's)."""
    # Named apart from the log's own fields (an annotation may not shadow a field).
    return {
        "n_requests": Count("id"),
        "n_errors": Count("id", filter=Q(outcome=RequestOutcome.ERROR)),
        **{f"sum_{f}": Sum(f) for f in _TOKEN_FIELDS},
        "sum_cost_nano": Sum("cost_nano"),
        "n_byok_requests": Count("id", filter=Q(byok=True)),
        "sum_byok_cost_nano": Sum("cost_nano", filter=Q(byok=True)),
    }


def rollup_day_compute(*, day: date, organisation_id: int | None = None) -> int:
    """Recompute the roll-ups of one UTC day (for one organisation, or all) from the
    request log. Idempotent. Returns the number of roll-up rows written."""
    start, end = day_bounds(day)
    logs = RequestLog.objects.filter(started_at__gte=start, started_at__lt=end)
    if organisation_id is not None:
        logs = logs.filter(organisation_id=organisation_id)
    grouped = (
        logs.order_by()
        .values("organisation_id", "api_key_id", "resolved_model")
        .annotate(**request_log_sums())
    )
    now = timezone.now()
    rollups = [
        DailyRollup(
            organisation_id=g["organisation_id"],
            api_key_id=g["api_key_id"],
            model=g["resolved_model"],
            day=day,
            computed_at=now,
            requests=g["n_requests"],
            errors=g["n_errors"],
            byok_requests=g["n_byok_requests"],
            cost_nano=g["sum_cost_nano"] or 0,
            byok_cost_nano=g["sum_byok_cost_nano"] or 0,
            **{f: g[f"sum_{f}"] or 0 for f in _TOKEN_FIELDS},
        )
        for g in grouped
    ]
    stale = DailyRollup.objects.filter(day=day)
    if organisation_id is not None:
        stale = stale.filter(organisation_id=organisation_id)
    with transaction.atomic():
        # Two overlapping runs for the same organisations would otherwise both delete
        # the old rows and then both insert: lock the organisations first (in id order,
        # so two runs cannot deadlock) and the second run waits, then replaces.
        org_ids = sorted(
            {r.organisation_id for r in rollups}
            | set(stale.values_list("organisation_id", flat=True).distinct())
        )
        list(
            Organisation.objects.select_for_update()
            .filter(pk__in=org_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        stale.delete()
        DailyRollup.objects.bulk_create(rollups, batch_size=500)
    return len(rollups)


def rollup_days_due(*, today: date) -> list[date]:
    """The days `rollup_recent` recomputes: yesterday and today always (late rows land
    in them), plus every day since the newest roll-up, so days missed while no worker
    ran are filled in; at most CATCH_UP_DAYS back."""
    oldest = today - timedelta(days=CATCH_UP_DAYS)
    newest = DailyRollup.objects.aggregate(day=Max("day"))["day"]
    first = today - timedelta(days=1)
    if newest is None:
        # Nothing rolled up yet: begin with the oldest logged day still in range.
        logged = (
            RequestLog.objects.filter(started_at__gte=day_bounds(oldest)[0])
            .order_by("started_at")
            .values_list("started_at", flat=True)
            .first()
        )
        if logged is not None:
            first = min(first, utc_today(logged))
    else:
        first = min(first, newest)
    first = max(first, oldest)
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]


def rollup_recent_compute(*, today: date) -> dict[str, int]:
    """Recompute every day `rollup_days_due` names; returns rows written per day."""
    written = {}
    for day in rollup_days_due(today=today):
        written[day.isoformat()] = rollup_day_compute(day=day)
    log.info("daily roll-ups recomputed: %s", written)
    return written
