"""Operators see every organisation's requests; nobody else sees the pages exist."""

from __future__ import annotations

import pytest
from django.utils import timezone

from gateway.models import RequestLog
from testkit import make_tenant


def log(org, request_id: str, **extra) -> RequestLog:
    return RequestLog.objects.create(
        request_id=request_id, organisation=org, client_protocol="openai",
        requested_model="m", resolved_model="m", provider="p", status_code=200,
        outcome="ok", started_at=timezone.now(), cost_nano=1000,
        attempts=[{"provider": "p", "upstream_model": "m", "status": 200, "latency_ms": 3,
                   "started_at": timezone.now().timestamp()}], **extra)


@pytest.fixture
def two_orgs(db):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    log(acme.organisation, "req_acme")
    log(globex.organisation, "req_globex")
    return acme, globex


def test_staff_see_every_organisations_requests(client, two_orgs, admin_user):
    client.force_login(admin_user)
    page = client.get("/operator/requests/").content.decode()
    assert "/operator/requests/req_acme/" in page
    assert "/operator/requests/req_globex/" in page
    only = client.get("/operator/requests/?org=globex").content.decode()
    assert "/operator/requests/req_globex/" in only
    assert "/operator/requests/req_acme/" not in only
    detail = client.get("/operator/requests/req_acme/")
    assert detail.status_code == 200 and "Acme" in detail.content.decode()


@pytest.mark.parametrize("url", ["/operator/requests/", "/operator/requests/req_acme/"])
def test_members_get_404_and_anonymous_visitors_log_in(client, two_orgs, url):
    acme, _ = two_orgs
    client.force_login(acme.owner)
    assert client.get(url).status_code == 404
    client.logout()
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["location"]
