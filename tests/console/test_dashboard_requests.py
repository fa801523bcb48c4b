"""The Requests page: filters (key, model, provider, BYOK, status class, outcome,
session, window), keyset pagination, and the streamed CSV export of the filtered rows
(only the organisation's own)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import unquote
from uuid import uuid4

import httpx
import pytest
from django.test import AsyncRequestFactory, Client
from django.urls import reverse
from django.utils import timezone

from accounts.services import api_key_create
from dashboard import views_requests
from gateway.models import RequestLog

pytestmark = pytest.mark.django_db

ROW_RE = re.compile(r"/requests/(req_[0-9a-f]+)/")


def log(
    organisation,
    *,
    request_id=None,
    minutes_ago=0,
    api_key=None,
    model="gpt-x",
    provider="fakeai",
    status_code=200,
    outcome="ok",
    byok=False,
    session_id="",
    cost_nano=0,
    **extra,
) -> RequestLog:
    return RequestLog.objects.create(
        request_id=request_id or f"req_{uuid4().hex}",
        organisation=organisation,
        api_key=api_key,
        client_protocol="openai",
        requested_model=model,
        resolved_model=model,
        provider=provider,
        status_code=status_code,
        outcome=outcome,
        byok=byok,
        session_id=session_id,
        cost_nano=cost_nano,
        started_at=timezone.now() - timedelta(minutes=minutes_ago),
        **extra,
    )


@pytest.fixture
def rows(tenant, tenant_factory):
    org = tenant.organisation
    laptop = api_key_create(organisation=org, name="laptop").api_key
    ci = api_key_create(organisation=org, name="ci").api_key
    other = tenant_factory("globex").organisation
    return {
        "ok": log(
            org,
            request_id="req_0a",
            api_key=laptop,
            session_id="task-1",
            cost_nano=1_234_567,
            input_tokens=10,
            output_tokens=3,
            minutes_ago=1,
        ),
        "byok": log(
            org,
            request_id="req_0b",
            api_key=ci,
            provider="fakeanthropic",
            model="claude-x",
            byok=True,
            session_id="task-1",
            minutes_ago=2,
        ),
        "throttled": log(
            org,
            request_id="req_0c",
            api_key=laptop,
            status_code=429,
            outcome="error",
            minutes_ago=3,
        ),
        "upstream": log(
            org,
            request_id="req_0d",
            api_key=ci,
            status_code=502,
            outcome="error",
            provider="fakeanthropic",
            minutes_ago=4,
        ),
        "old": log(org, request_id="req_0e", api_key=laptop, minutes_ago=60 * 30),
        "globex": log(other, request_id="req_0f", session_id="task-1"),
        "laptop": laptop,
        "ci": ci,
    }


def _listed(client: Client, **params) -> list[str]:
    response = client.get(reverse("dashboard:requests", args=["acme"]), params)
    assert response.status_code == 200
    return list(dict.fromkeys(ROW_RE.findall(response.content.decode())))


FILTER_CASES = [
    ({}, ["req_0a", "req_0b", "req_0c", "req_0d", "req_0e"]),
    ({"provider": "fakeanthropic"}, ["req_0b", "req_0d"]),
    ({"byok": "yes"}, ["req_0b"]),
    ({"byok": "no"}, ["req_0a", "req_0c", "req_0d", "req_0e"]),
    ({"class": "2xx"}, ["req_0a", "req_0b", "req_0e"]),
    ({"class": "4xx"}, ["req_0c"]),
    ({"class": "5xx"}, ["req_0d"]),
    ({"status": "error"}, ["req_0c", "req_0d"]),
    ({"session": "task-1"}, ["req_0a", "req_0b"]),
    ({"model": "claude-x"}, ["req_0b"]),
    ({"window": "24h"}, ["req_0a", "req_0b", "req_0c", "req_0d"]),
    ({"class": "5xx", "provider": "fakeai"}, []),
    ({"class": "nonsense", "byok": "maybe"}, ["req_0a", "req_0b", "req_0c", "req_0d", "req_0e"]),
]


def test_it_filters_by_each_field_and_their_combination(client, tenant, rows):
    # One test over every case: the fixture (two tenants, six users) is the slow part.
    client.force_login(tenant.member)
    for params, expected in FILTER_CASES:
        assert _listed(client, **params) == expected, params


def test_it_filters_by_key(client, tenant, rows):
    client.force_login(tenant.member)
    assert _listed(client, key=str(rows["ci"].pk)) == ["req_0b", "req_0d"]


def test_it_pages_by_keyset_without_skipping_equal_times(client, tenant, monkeypatch):
    monkeypatch.setattr(views_requests, "PAGE_SIZE", 2)
    org = tenant.organisation
    same = timezone.now()
    for n in range(5):
        log(org, request_id=f"req_1{n}")
    # five rows in the same microsecond: only the id orders them
    RequestLog.objects.filter(organisation=org).update(started_at=same)
    client.force_login(tenant.member)
    url = reverse("dashboard:requests", args=["acme"])

    seen, params = [], {}
    for _ in range(5):
        response = client.get(url, params)
        seen += list(dict.fromkeys(ROW_RE.findall(response.content.decode())))
        cursor = re.search(r'before=([^"&]+)"', response.content.decode())
        if not cursor:
            break
        params = {"before": unquote(cursor.group(1))}

    assert seen == ["req_14", "req_13", "req_12", "req_11", "req_10"]


def _export(client: Client, **params) -> list[dict]:
    response = client.get(reverse("dashboard:request_export", args=["acme"]), params)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="tollgate-acme-')
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_it_exports_the_filtered_rows_as_csv(client, tenant, rows):
    client.force_login(tenant.member)

    exported = _export(client, session="task-1")

    assert [r["request_id"] for r in exported] == ["req_0a", "req_0b"]  # not globex's
    first = exported[0]
    assert first["api_key_name"] == "laptop"
    assert first["api_key"] == rows["laptop"].masked
    assert first["cost_usd"] == "0.001234567" and first["cost_nano"] == "1234567"
    assert (first["input_tokens"], first["output_tokens"]) == ("10", "3")
    assert exported[1]["byok"] == "1" and exported[1]["provider"] == "fakeanthropic"
    assert rows["laptop"].secret_hash not in str(exported)
    assert len(_export(client)) == 5  # every page, not just the first
    assert [r["request_id"] for r in _export(client, **{"class": "5xx"})] == ["req_0d"]


def test_the_export_defuses_spreadsheet_formulas(client, tenant):
    log(tenant.organisation, session_id='=HYPERLINK("http://evil")', model="@SUM(A1)")
    client.force_login(tenant.member)
    row = _export(client)[0]
    assert row["session_id"] == '\'=HYPERLINK("http://evil")'
    assert row["requested_model"] == "'@SUM(A1)"


def test_the_export_streams_through_the_asgi_server(live_url, tenant_factory):
    """Under ASGI the rows are fetched in chunks by an async iterator, not listed first."""
    tenant = tenant_factory("acme")
    for n in range(5):
        log(tenant.organisation, request_id=f"req_2{n}", minutes_ago=n)
    log(tenant_factory("globex").organisation, request_id="req_29")
    client = Client()
    client.force_login(tenant.member)
    cookies = {"sessionid": client.cookies["sessionid"].value}

    with httpx.stream(
        "GET", f"{live_url}/o/acme/requests/export.csv", cookies=cookies, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        body = response.read().decode()

    ids = [r["request_id"] for r in csv.DictReader(io.StringIO(body))]
    assert ids == ["req_20", "req_21", "req_22", "req_23", "req_24"]


def test_the_export_gives_asgi_servers_an_async_iterator(tenant):
    request = AsyncRequestFactory().get("/o/acme/requests/export.csv")
    request.user = tenant.member
    response = views_requests.request_export(request, "acme")
    assert response.is_async  # a sync iterator would be read whole before sending


def test_the_detail_links_to_its_session(client, tenant, rows):
    client.force_login(tenant.member)
    response = client.get(reverse("dashboard:request_detail", args=["acme", "req_0a"]))
    assert response.status_code == 200
    assert reverse("dashboard:session_detail", args=["acme", "task-1"]).encode() in (
        response.content
    )
