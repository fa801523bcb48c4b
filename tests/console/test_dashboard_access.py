"""Tenancy of the usage pages: a member of another organisation gets 404 (also when
using their own organisation's URL with this organisation's objects), an anonymous
visitor is sent to log in, and the operators' overview is for staff only."""

from __future__ import annotations

from uuid import uuid4

import pytest
from django.urls import reverse
from django.utils import timezone

from gateway.models import RequestLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(tenant):
    return RequestLog.objects.create(
        request_id=f"req_{uuid4().hex}",
        organisation=tenant.organisation,
        session_id="task-1",
        client_protocol="openai",
        requested_model="gpt-x",
        resolved_model="gpt-x",
        provider="fakeai",
        status_code=200,
        outcome="ok",
        started_at=timezone.now(),
        cost_nano=123,
    )


def _urls(org: str, row: RequestLog) -> list[str]:
    return [
        reverse("dashboard:overview", args=[org]),
        reverse("dashboard:requests", args=[org]),
        reverse("dashboard:request_export", args=[org]),
        reverse("dashboard:request_detail", args=[org, row.request_id]),
        reverse("dashboard:sessions", args=[org]),
        reverse("dashboard:session_detail", args=[org, row.session_id]),
        reverse("dashboard:models", args=[org]),
    ]


def test_members_reach_every_page(client, tenant, logged):
    client.force_login(tenant.member)
    for url in _urls("acme", logged):
        assert client.get(url).status_code == 200, url


def test_it_gives_outsiders_404_on_every_url(client, tenant, outsider, logged):
    client.force_login(outsider)
    for url in _urls("acme", logged):
        assert client.get(url).status_code == 404, url


def test_it_does_not_reach_another_orgs_rows_through_own_org(client, tenant, outsider, logged):
    client.force_login(outsider)  # owner of globex
    detail = reverse("dashboard:request_detail", args=["globex", logged.request_id])
    session = reverse("dashboard:session_detail", args=["globex", logged.session_id])
    assert client.get(detail).status_code == 404
    assert client.get(session).status_code == 404
    export = client.get(reverse("dashboard:request_export", args=["globex"]))
    assert logged.request_id.encode() not in b"".join(export.streaming_content)
    listing = client.get(reverse("dashboard:sessions", args=["globex"]))
    assert b"task-1" not in listing.content


def test_it_sends_anonymous_visitors_to_login(client, tenant, logged):
    for url in [*_urls("acme", logged), reverse("dashboard:operator")]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login")), url


def test_the_operator_overview_is_for_staff_only(client, tenant, user_factory):
    url = reverse("dashboard:operator")
    client.force_login(tenant.owner)
    assert client.get(url).status_code == 404
    staff = user_factory("ops@tollgate.test")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    assert client.get(url).status_code == 200
