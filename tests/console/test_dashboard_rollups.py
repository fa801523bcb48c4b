"""Daily roll-ups: computed from the request log per organisation, key, model and day;
recomputing is idempotent and picks up late rows; the Celery tasks and the embedded
beat (the `make run` default without Redis) run them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from django.db.models import RestrictedError

from accounts.services import api_key_create
from config.beat import EmbeddedBeat
from gateway.models import DailyRollup, RequestLog
from gateway.rollups import CATCH_UP_DAYS, rollup_day_compute, rollup_days_due
from gateway.tasks import rollup_day, rollup_recent

pytestmark = pytest.mark.django_db

DAY = date(2025, 3, 11)


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def log(
    organisation,
    *,
    started_at,
    api_key=None,
    model="gpt-x",
    cost_nano=0,
    status_code=200,
    outcome="ok",
    byok=False,
    **extra,
) -> RequestLog:
    return RequestLog.objects.create(
        request_id=f"req_{uuid4().hex}",
        organisation=organisation,
        api_key=api_key,
        client_protocol="openai",
        requested_model=model,
        resolved_model=model,
        provider="fakeai",
        status_code=status_code,
        outcome=outcome,
        started_at=started_at,
        cost_nano=cost_nano,
        byok=byok,
        **extra,
    )


def rollups(**filters) -> list[tuple]:
    return sorted(
        DailyRollup.objects.filter(**filters).values_list(
            "organisation__slug",
            "api_key__name",
            "model",
            "day",
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
            "cost_nano",
            "byok_requests",
            "byok_cost_nano",
        ),
        key=repr,
    )


@pytest.fixture
def keys(tenant):
    org = tenant.organisation
    return (
        api_key_create(organisation=org, name="laptop").api_key,
        api_key_create(organisation=org, name="ci").api_key,
    )


def test_it_sums_a_day_per_organisation_key_and_model(tenant, tenant_factory, keys):
    org, (laptop, ci) = tenant.organisation, keys
    other = tenant_factory("globex").organisation
    log(
        org,
        started_at=at(DAY, 0, 0),
        api_key=laptop,
        cost_nano=100,
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=7,
        cache_write_5m_tokens=3,
        cache_write_1h_tokens=2,
        reasoning_tokens=1,
    )
    log(
        org,
        started_at=at(DAY, 23, 59),
        api_key=laptop,
        cost_nano=50,
        byok=True,
        input_tokens=1,
        output_tokens=1,
    )
    log(org, started_at=at(DAY), api_key=laptop, status_code=502, outcome="error")
    log(org, started_at=at(DAY), api_key=laptop, status_code=499, outcome="cancelled", cost_nano=7)
    log(org, started_at=at(DAY), api_key=ci, model="claude-x", cost_nano=1000)
    log(org, started_at=at(DAY), api_key=None, model="", status_code=404, outcome="error")
    log(other, started_at=at(DAY), cost_nano=5)
    # the neighbouring days are not part of it
    log(org, started_at=at(DAY, 0) - timedelta(microseconds=1), api_key=laptop, cost_nano=9)
    log(org, started_at=at(DAY + timedelta(days=1), 0), api_key=laptop, cost_nano=9)

    assert rollup_day_compute(day=DAY) == 4

    assert rollups() == sorted(
        [
            ("acme", "laptop", "gpt-x", DAY, 4, 1, 11, 6, 7, 3, 2, 1, 157, 1, 50),
            ("acme", "ci", "claude-x", DAY, 1, 0, 0, 0, 0, 0, 0, 0, 1000, 0, 0),
            ("acme", None, "", DAY, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            ("globex", None, "gpt-x", DAY, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0),
        ],
        key=repr,
    )


def test_it_is_idempotent_and_picks_up_late_rows(tenant, keys):
    org, (laptop, _) = tenant.organisation, keys
    log(org, started_at=at(DAY), api_key=laptop, cost_nano=100)
    rollup_day_compute(day=DAY)
    first = rollups()
    rollup_day_compute(day=DAY)
    assert rollups() == first
    assert DailyRollup.objects.count() == 1

    # a usage batch flushed after the day was rolled up
    log(
        org,
        started_at=at(DAY, 23, 58),
        api_key=laptop,
        cost_nano=25,
        outcome="error",
        status_code=500,
    )
    log(org, started_at=at(DAY, 8), api_key=None, cost_nano=3)
    rollup_day_compute(day=DAY)

    assert rollups() == sorted(
        [
            ("acme", "laptop", "gpt-x", DAY, 2, 1, 0, 0, 0, 0, 0, 0, 125, 0, 0),
            ("acme", None, "gpt-x", DAY, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0),
        ],
        key=repr,
    )
    rollup_day_compute(day=DAY)
    assert DailyRollup.objects.count() == 2


def test_it_drops_roll_ups_whose_rows_are_gone(tenant, keys):
    row = log(tenant.organisation, started_at=at(DAY), api_key=keys[0], cost_nano=1)
    rollup_day_compute(day=DAY)
    row.delete()
    assert rollup_day_compute(day=DAY) == 0
    assert not DailyRollup.objects.exists()


def test_it_recomputes_one_organisation_without_touching_others(tenant, tenant_factory):
    org, other = tenant.organisation, tenant_factory("globex").organisation
    log(org, started_at=at(DAY), cost_nano=1)
    log(other, started_at=at(DAY), cost_nano=2)
    rollup_day_compute(day=DAY)
    log(org, started_at=at(DAY), cost_nano=10)
    log(other, started_at=at(DAY), cost_nano=20)

    rollup_day_compute(day=DAY, organisation_id=org.pk)

    costs = dict(DailyRollup.objects.values_list("organisation__slug", "cost_nano"))
    assert costs == {"acme": 11, "globex": 2}


def test_it_refuses_to_delete_a_key_with_spend_history(tenant, keys):
    log(tenant.organisation, started_at=at(DAY), api_key=keys[0], cost_nano=1)
    rollup_day_compute(day=DAY)
    with pytest.raises(RestrictedError):
        keys[0].delete()
    tenant.organisation.delete()  # the organisation's deletion takes both with it
    assert not DailyRollup.objects.exists()


def test_the_day_task_takes_an_iso_date(tenant):
    log(tenant.organisation, started_at=at(DAY), cost_nano=4)
    assert rollup_day.apply(args=["2025-03-11"]).get() == 1
    assert rollup_day.apply(args=["2025-03-11"], kwargs={"organisation_id": 999}).get() == 0
    assert DailyRollup.objects.get().cost_nano == 4


def test_the_recent_task_counts_late_rows_from_yesterday(tenant):
    today = DAY + timedelta(days=1)
    log(tenant.organisation, started_at=at(DAY, 10), cost_nano=1)
    rollup_recent.apply(kwargs={"today": today.isoformat()})
    assert DailyRollup.objects.get(day=DAY).cost_nano == 1

    log(tenant.organisation, started_at=at(DAY, 23, 59), cost_nano=2)  # arrives after midnight
    log(tenant.organisation, started_at=at(today, 0, 1), cost_nano=4)
    written = rollup_recent.apply(kwargs={"today": today.isoformat()}).get()

    assert written == {DAY.isoformat(): 1, today.isoformat(): 1}
    assert DailyRollup.objects.get(day=DAY).cost_nano == 3
    assert DailyRollup.objects.get(day=today).cost_nano == 4


def test_it_catches_up_on_days_no_worker_computed(tenant):
    today = DAY
    assert rollup_days_due(today=today) == [today - timedelta(days=1), today]
    # an existing log and no roll-ups yet: from its oldest day, at most CATCH_UP_DAYS back
    log(tenant.organisation, started_at=at(today - timedelta(days=3)), cost_nano=1)
    log(tenant.organisation, started_at=at(today - timedelta(days=90)), cost_nano=1)
    assert rollup_days_due(today=today)[0] == today - timedelta(days=3)

    rollup_day_compute(day=today - timedelta(days=3))
    # the beat stopped for a few days: every day since the newest roll-up
    later = today + timedelta(days=4)
    due = rollup_days_due(today=later)
    assert due[0] == today - timedelta(days=3) and due[-1] == later and len(due) == 8
    assert len(rollup_days_due(today=today + timedelta(days=200))) == CATCH_UP_DAYS + 1


def test_the_embedded_beat_runs_due_entries_and_then_waits(tenant):
    log(tenant.organisation, started_at=datetime.now(UTC), cost_nano=5)
    beat = EmbeddedBeat(
        {
            "rollups": {"task": "gateway.rollup_recent", "schedule": timedelta(minutes=10)},
            "broken": {
                "task": "gateway.rollup_day",
                "schedule": timedelta(minutes=10),
                "args": ("not a date",),
            },
        }
    )

    assert beat.tick() == ["rollups", "broken"]  # a failing task does not stop the rest
    assert DailyRollup.objects.get().cost_nano == 5
    assert beat.tick() == []  # not due again for ten minutes


def test_the_beat_schedule_runs_the_roll_ups():
    from config.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "gateway.rollup_recent" in tasks
    assert EmbeddedBeat().entries == app.conf.beat_schedule
