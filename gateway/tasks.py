"""Celery entry points for the gateway; each parses its arguments and calls a service.

Scheduled in config/celery.py (`gateway-rollup-recent`). With Redis, run a worker with
an embedded beat: `celery -A config worker -B` (or a separate `celery -A config beat`).
Without Redis, `manage.py serve` runs the same schedule in-process (config/beat.py).
"""

from __future__ import annotations

from datetime import date

from celery import shared_task

from gateway.rollups import rollup_day_compute, rollup_recent_compute, utc_today


@shared_task(name="gateway.rollup_day")
def rollup_day(day: str, organisation_id: int | None = None) -> int:
    """Recompute one UTC day (ISO date, e.g. "2025-01-31"); returns rows written."""
    return rollup_day_compute(day=date.fromisoformat(day), organisation_id=organisation_id)


@shared_task(name="gateway.rollup_recent")
def rollup_recent(today: str | None = None) -> dict[str, int]:
    """Recompute yesterday and today (and any missed days) so late rows are counted.
    `today` (ISO date) defaults to the current UTC date."""
    return rollup_recent_compute(today=date.fromisoformat(today) if today else utc_today())
