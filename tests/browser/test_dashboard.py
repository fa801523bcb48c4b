"""The usage pages in Chromium: the overview draws its stacked chart beside the
numbers, a session page lists its requests, and a request's detail shows its fallback
chain. A failing test leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings as django_settings
from django.test import Client

from accounts.services import api_key_create
from billing.models import EntryKind
from billing.services import ledger_post
from gateway.models import RequestLog
from gateway.rollups import rollup_recent_compute, utc_today

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"
STATIC_DIR = Path(django_settings.BASE_DIR) / "static"
SESSION = "agent-task-42"

pytestmark = pytest.mark.browser


def _serve_static_from_source(route) -> None:
    # The test server has no collected static files (collectstatic is a deploy step),
    # so serve them from the source tree: the page then runs its real JavaScript.
    relative = urlparse(route.request.url).path.removeprefix("/static/")
    source = (STATIC_DIR / relative).resolve()
    if source.is_file() and STATIC_DIR.resolve() in source.parents:
        route.fulfill(path=str(source))
    else:
        route.continue_()


def _row(org, key, n: int, *, started_at: datetime, model: str, cost_nano: int, **extra):
    fields = {
        "client_protocol": "openai",
        "requested_model": model,
        "resolved_model": model,
        "provider": "fakeai",
        "upstream_model": model,
        "status_code": 200,
        "outcome": "ok",
        "input_tokens": 1000,
        "output_tokens": 200,
        "latency_ms": 900,
        **extra,
    }
    return RequestLog(
        request_id=f"req_browser{n:04d}",
        organisation=org,
        api_key=key,
        started_at=started_at,
        cost_nano=cost_nano,
        **fields,
    )


@pytest.fixture
def usage(live_url, tenant_factory):
    """An organisation with two weeks of spend on two models (rolled up, as the beat
    would) and an agent session of three requests today, one after a fallback."""
    tenant = tenant_factory("acme")
    org = tenant.organisation
    ledger_post(
        organisation=org,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=20_000_000_000,
        idempotency_key="test:credit",
    )
    key = api_key_create(organisation=org, name="roo-laptop").api_key
    today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = [
        _row(
            org,
            key,
            n,
            started_at=today - timedelta(days=n // 2, hours=1),
            model="claude-sonnet-4.6" if n % 2 else "gpt-5.5",
            cost_nano=10_000_000 * (n + 1),
        )
        for n in range(2, 28)
    ]
    start = today - timedelta(minutes=30)
    rows += [
        _row(
            org,
            key,
            100,
            started_at=start,
            model="claude-sonnet-4.6",
            cost_nano=12_000_000,
            session_id=SESSION,
            provider="fakeai",
            attempts=[
                {
                    "provider": "fakeanthropic",
                    "upstream_model": "claude-sonnet-4-6",
                    "status": 529,
                    "latency_ms": 120,
                    "error": "overloaded_error",
                },
                {
                    "provider": "fakeai",
                    "upstream_model": "claude-sonnet-4.6",
                    "status": 200,
                    "latency_ms": 870,
                    "error": "",
                },
            ],
        ),
        _row(
            org,
            key,
            101,
            started_at=start + timedelta(minutes=2),
            model="claude-sonnet-4.6",
            cost_nano=8_000_000,
            session_id=SESSION,
        ),
        _row(
            org,
            key,
            102,
            started_at=start + timedelta(minutes=7),
            model="claude-sonnet-4.6",
            cost_nano=5_000_000,
            session_id=SESSION,
        ),
    ]
    RequestLog.objects.bulk_create(rows)
    rollup_recent_compute(today=utc_today())
    client = Client()
    client.force_login(tenant.member)
    return {"url": live_url, "session_cookie": client.cookies["sessionid"].value}


def test_overview_session_and_request_detail(usage):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: run `make chromium` (Debian's chromium package)")
    from playwright.sync_api import expect, sync_playwright

    url = usage["url"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": usage["session_cookie"], "url": url}])
        page = context.new_page()
        page.route(f"{url}/static/**", _serve_static_from_source)
        step = "overview"
        try:
            # the overview: a stacked bar chart per model, the numbers beside it
            page.goto(f"{url}/o/acme/")
            expect(page.get_by_role("heading", name="Acme")).to_be_visible()
            chart = page.locator("canvas#spend-chart")
            expect(chart).to_have_attribute("data-chart-ready", "2")
            labels = page.evaluate(
                "Chart.getChart(document.getElementById('spend-chart')).data.datasets"
                ".map(d => d.label).sort()"
            )
            assert labels == ["claude-sonnet-4.6", "gpt-5.5"]
            box = chart.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 200
            expect(page.locator("[data-stat=balance]")).to_have_text("$20.0000")
            expect(page.locator("[data-stat=today]")).to_have_text(re.compile(r"^\$0\.\d{4}$"))
            expect(page.locator("table.top-keys")).to_contain_text("roo-laptop")
            expect(page.locator("table.top-models")).to_contain_text("claude-sonnet-4.6")

            # a session: its sums, and its requests in order
            step = "session"
            page.get_by_role("navigation").get_by_role("link", name="Sessions").click()
            row = page.get_by_role("row", name=re.compile(SESSION))
            expect(row).to_contain_text("7 min 0 s")
            expect(row).to_contain_text("$0.0250")
            row.get_by_role("link", name=SESSION).click()
            heading = page.get_by_role("heading", name=re.compile(f"Session {SESSION}"))
            expect(heading).to_be_visible()
            expect(page.locator("[data-stat=requests]")).to_have_text("3")
            expect(page.locator("[data-stat=cost]")).to_have_text("$0.025000")
            requests = page.locator("table.session-requests tbody tr")
            expect(requests).to_have_count(3)

            # the first request's detail: the fallback chain it took
            step = "request"
            requests.first.get_by_role("link").click()
            expect(page.get_by_role("heading", name="Request req_browser0100")).to_be_visible()
            attempts = page.locator("ol.timeline li")
            expect(attempts).to_have_count(2)
            expect(attempts.nth(0)).to_contain_text("HTTP 529")
            expect(attempts.nth(1)).to_contain_text("served")
            expect(page.get_by_role("link", name=SESSION)).to_be_visible()
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"test_dashboard-{step}.png"), full_page=True)
            raise
        finally:
            context.close()
            browser.close()
