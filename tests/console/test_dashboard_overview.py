"""The overview (an organisation's, and the operators' across all of them) and the
admin's money columns: spend today / this week / this month from roll-ups plus
today's log, the 30-day chart stacked by model, top keys and models, error rate, and
a query count that stays flat as the log grows."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from billing.models import EntryKind
from billing.money import format_usd
from billing.services import ledger_post
from gateway.models import RequestLog
from gateway.reports import CHART_MODELS, OTHER, spend_overview_get
from gateway.rollups import rollup_day_compute, rollup_recent_compute, utc_today

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)  # a Wednesday
TODAY = NOW.date()


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def log(
    organisation,
    *,
    started_at,
    api_key=None,
    model="gpt-x",
    cost_nano=0,
    outcome="ok",
    status_code=200,
    **extra,
) -> RequestLog:
    return RequestLog(
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
        **extra,
    )


@pytest.fixture
def history(tenant, tenant_factory):
    """Spend on days chosen to fall inside and outside each period; complete days
    rolled up, today only in the log."""
    org = tenant.organisation
    k1 = api_key_create(organisation=org, name="laptop").api_key
    k2 = api_key_create(organisation=org, name="ci").api_key
    other = tenant_factory("globex").organisation
    rows = [
        log(org, started_at=at(TODAY, 10), api_key=k1, model="a", cost_nano=1_000),
        log(org, started_at=at(date(2025, 3, 11)), api_key=k1, model="a", cost_nano=2_000),
        log(
            org,
            started_at=at(date(2025, 3, 10)),
            api_key=k2,
            model="b",
            cost_nano=4_000,
            outcome="error",
            status_code=502,
        ),  # Monday: this week
        log(
            org, started_at=at(date(2025, 3, 9)), api_key=k2, model="b", cost_nano=8_000, byok=True
        ),
        log(org, started_at=at(date(2025, 3, 1), 0), api_key=k1, model="a", cost_nano=16_000),
        log(org, started_at=at(date(2025, 2, 28)), api_key=k1, model="a", cost_nano=32_000),
        log(org, started_at=at(date(2025, 2, 10)), api_key=k1, model="a", cost_nano=64_000),
        log(other, started_at=at(date(2025, 3, 11)), model="a", cost_nano=128_000),
        log(other, started_at=at(TODAY, 9), model="c", cost_nano=256_000),
    ]
    RequestLog.objects.bulk_create(rows)
    rollup_recent_compute(today=TODAY)
    return {"org": org, "other": other, "laptop": k1, "ci": k2}


def test_it_sums_periods_from_roll_ups_and_todays_log(history):
    report = spend_overview_get(organisation_ids=[history["org"].pk], now=NOW)

    assert report.spend_today_nano == 1_000
    assert report.spend_week_nano == 7_000  # since Monday 10 March
    assert report.spend_month_nano == 31_000
    assert report.total_nano == 63_000  # 30 days: 11 Feb to 12 March
    assert (report.requests, report.errors) == (6, 1)
    assert str(report.error_rate_percent) == "16.7"
    assert report.byok_requests == 1
    assert [(m, s.cost_nano) for m, s in report.top_models] == [("a", 51_000), ("b", 12_000)]
    assert [(k.name, s.cost_nano) for k, s in report.top_keys] == [
        ("laptop", 51_000),
        ("ci", 12_000),
    ]
    assert report.top_organisations == []

    chart = report.chart_data()
    assert chart["days"][0] == "2025-02-11" and chart["days"][-1] == "2025-03-12"
    series = {s["label"]: s["values"] for s in chart["series"]}
    assert series["a"][-1] == 1_000 and series["a"][-2] == 2_000
    assert series["b"][-3] == 4_000
    assert sum(series["a"]) + sum(series["b"]) == 63_000


def test_complete_days_come_from_the_roll_ups(history):
    """A late row for yesterday counts once the day is recomputed (by the beat)."""
    org = history["org"]
    log(org, started_at=at(date(2025, 3, 11), 23), model="a", cost_nano=500).save()
    assert spend_overview_get(organisation_ids=[org.pk], now=NOW).spend_week_nano == 7_000
    rollup_day_compute(day=date(2025, 3, 11))
    assert spend_overview_get(organisation_ids=[org.pk], now=NOW).spend_week_nano == 7_500


def test_all_organisations_for_operators(history):
    report = spend_overview_get(organisation_ids=None, now=NOW)

    assert report.spend_today_nano == 257_000
    assert report.total_nano == 63_000 + 384_000
    assert [(o.slug, s.cost_nano) for o, s in report.top_organisations] == [
        ("globex", 384_000),
        ("acme", 63_000),
    ]
    assert report.top_keys[0][0] is None  # globex's rows have no key
    assert report.top_keys[0][1].cost_nano == 384_000


def test_it_stacks_the_smaller_models_as_other(tenant):
    org = tenant.organisation
    RequestLog.objects.bulk_create(
        [
            log(org, started_at=at(TODAY, 1), model=f"m{n}", cost_nano=100 + n)
            for n in range(CHART_MODELS + 2)
        ]
    )
    chart = spend_overview_get(organisation_ids=[org.pk], now=NOW).chart_data()
    labels = [s["label"] for s in chart["series"]]
    assert labels[:2] == [f"m{CHART_MODELS + 1}", f"m{CHART_MODELS}"]
    assert labels[-1] == OTHER and len(labels) == CHART_MODELS + 1
    assert chart["series"][-1]["values"][-1] == 100 + 101


def test_the_page_shows_the_picture_and_the_numbers(client, tenant):
    org = tenant.organisation
    key = api_key_create(organisation=org, name="laptop").api_key
    ledger_post(
        organisation=org,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=12_345_600_000,
        idempotency_key="test:credit",
    )
    RequestLog.objects.bulk_create(
        [
            log(org, started_at=timezone.now(), api_key=key, model="claude-x", cost_nano=2_500_000),
            log(
                org,
                started_at=timezone.now(),
                api_key=key,
                model="claude-x",
                outcome="error",
                status_code=500,
                byok=True,
            ),
        ]
    )
    client.force_login(tenant.member)

    response = client.get(reverse("dashboard:overview", args=["acme"]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "$12.3456" in html  # balance
    assert html.count("$0.0025") >= 3  # today, week, month
    assert html.count("50.0%") == 2  # error rate, BYOK share
    assert 'id="spend-chart"' in html and "vendor/chartjs/chart.umd.min.js" in html
    data = json.loads(re.search(r'id="spend-chart-data"[^>]*>(.*?)</script>', html).group(1))
    assert data["series"] == [{"label": "claude-x", "values": [0] * 29 + [2_500_000]}]
    assert "laptop" in html


def test_a_new_organisation_sees_an_empty_state(client, tenant):
    client.force_login(tenant.owner)
    html = client.get(reverse("dashboard:overview", args=["acme"])).content.decode()
    assert "No usage in the last 30 days" in html
    assert 'id="spend-chart"' not in html


def _grow(org, keys: list[ApiKey], count: int, offset: int) -> None:
    now = timezone.now()
    RequestLog.objects.bulk_create(
        [
            log(
                org,
                started_at=now - timedelta(hours=(n * 7) % (40 * 24)),
                api_key=keys[n % len(keys)],
                model=f"model-{n % 9}",
                cost_nano=1000 + n,
                outcome="error" if n % 13 == 0 else "ok",
                session_id=f"s{n % 17}",
            )
            for n in range(offset, offset + count)
        ]
    )
    rollup_recent_compute(today=utc_today())
    for back in range(2, 41):  # the days before yesterday, as the beat would have
        rollup_day_compute(day=utc_today() - timedelta(days=back))


def _queries(client, url: str) -> int:
    client.get(url)  # warm per-process caches (content types, templates)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_query_count_stays_flat_as_rows_grow(client, tenant, user_factory):
    org = tenant.organisation
    keys = [api_key_create(organisation=org, name=f"k{n}").api_key for n in range(3)]
    staff = user_factory("ops@tollgate.test")
    staff.is_staff = True
    staff.save()
    overview = reverse("dashboard:overview", args=["acme"])
    operator = reverse("dashboard:operator")

    _grow(org, keys, 10, 0)
    client.force_login(tenant.member)
    small = _queries(client, overview)
    client.force_login(staff)
    small_operator = _queries(client, operator)

    keys += [api_key_create(organisation=org, name=f"k{n}").api_key for n in range(3, 12)]
    _grow(org, keys, 990, 10)
    assert RequestLog.objects.count() == 1000
    client.force_login(tenant.member)
    large = _queries(client, overview)
    client.force_login(staff)
    large_operator = _queries(client, operator)

    assert large == small and large_operator == small_operator
    assert large <= 10 and large_operator <= 10, (large, large_operator)


def test_operators_see_every_organisation(client, tenant, tenant_factory, user_factory):
    other = tenant_factory("globex").organisation
    RequestLog.objects.bulk_create(
        [
            log(tenant.organisation, started_at=timezone.now(), cost_nano=7_000_000),
            log(other, started_at=timezone.now(), cost_nano=3_000_000),
        ]
    )
    staff = user_factory("ops@tollgate.test")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    html = client.get(reverse("dashboard:operator")).content.decode()
    assert "All organisations" in html
    assert "Customer balances" in html
    assert "$0.0100" in html  # today, both organisations
    assert html.index("Acme") < html.index("Globex")  # top organisations, by spend


def test_the_admin_lists_balance_and_spend(client, tenant, user_factory):
    org = tenant.organisation
    ledger_post(
        organisation=org,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=5_000_000_000,
        idempotency_key="test:credit",
    )
    today = utc_today()
    RequestLog.objects.bulk_create(
        [
            log(org, started_at=timezone.now(), cost_nano=1_500_000),
            log(org, started_at=at(today - timedelta(days=1)), cost_nano=250_000),
            log(org, started_at=at(today.replace(day=1) - timedelta(days=1)), cost_nano=9_999_999),
        ]
    )
    rollup_day_compute(day=today - timedelta(days=1))
    rollup_day_compute(day=today.replace(day=1) - timedelta(days=1))
    admin = user_factory("root@tollgate.test")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)

    html = client.get(reverse("admin:accounts_organisation_changelist")).content.decode()

    assert "$5.0000" in html
    assert "$0.0015" in html
    # this month: today, plus yesterday when yesterday is in this month
    month = 1_500_000 + (250_000 if today.day > 1 else 0)
    assert format_usd(month, 4) in html
    change = client.get(reverse("admin:accounts_organisation_change", args=[org.pk]))
    assert change.status_code == 200 and b"$5.0000" in change.content
