"""Operators see every organisation's requests; nobody else sees the pages exist."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard import views_sessions
from gateway.models import RequestLog
from testkit.tenants import make_tenant


def log(org, request_id: str, **extra) -> RequestLog:
    fields = {"started_at": timezone.now(), "cost_nano": 1000, **extra}
    return RequestLog.objects.create(
        request_id=request_id,
        organisation=org,
        client_protocol="openai",
        requested_model="m",
        resolved_model="m",
        provider="p",
        status_code=200,
        outcome="ok",
        attempts=[
            {
                "provider": "p",
                "upstream_model": "m",
                "status": 200,
                "latency_ms": 3,
                "started_at": timezone.now().timestamp(),
            }
        ],
        **fields,
    )


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


# --- Sessions across organisations -----------------------------------------------


@pytest.fixture
def two_orgs_sessions(two_orgs):
    acme, globex = two_orgs
    log(acme.organisation, "req_acme_s1", session_id="task-1", cost_nano=3000)
    log(acme.organisation, "req_acme_s2", session_id="a/../b")
    log(globex.organisation, "req_globex_s1", session_id="task-1", cost_nano=5000)
    return acme, globex


def test_staff_see_every_organisations_sessions(client, two_orgs_sessions, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("dashboard:operator_sessions"))

    listed = {
        (s["organisation"].slug, s["session_id"]): s["cost_nano"]
        for s in response.context["sessions"]
    }
    assert listed == {
        ("acme", "task-1"): 3000,
        ("acme", "a/../b"): 1000,
        ("globex", "task-1"): 5000,
    }
    page = response.content.decode()
    for org, session_id in listed:
        assert reverse("dashboard:operator_session_detail", args=[org, session_id]) in page
    assert "Globex" in page and "Acme" in page
    only = client.get(reverse("dashboard:operator_sessions"), {"org": "globex"})
    assert [(s["organisation"].slug, s["session_id"]) for s in only.context["sessions"]] == [
        ("globex", "task-1")
    ]
    nobody = client.get(reverse("dashboard:operator_sessions"), {"org": "no-such-org"})
    assert nobody.context["sessions"] == []


def test_staff_open_any_organisations_session(client, two_orgs_sessions, admin_user):
    client.force_login(admin_user)
    url = reverse("dashboard:operator_session_detail", args=["globex", "task-1"])
    response = client.get(url)

    assert response.status_code == 200
    assert response.context["session"]["cost_nano"] == 5000  # acme's task-1 is not in it
    assert [r.request_id for r in response.context["rows"]] == ["req_globex_s1"]
    html = response.content.decode()
    assert "/operator/requests/req_globex_s1/" in html and "Globex" in html
    awkward = reverse("dashboard:operator_session_detail", args=["acme", "a/../b"])
    assert client.get(awkward).context["session"]["session_id"] == "a/../b"
    missing = reverse("dashboard:operator_session_detail", args=["globex", "a/../b"])
    assert client.get(missing).status_code == 404
    assert (
        client.get(
            reverse("dashboard:operator_session_detail", args=["nope", "task-1"])
        ).status_code
        == 404
    )


def test_the_operators_request_log_links_to_the_session(client, two_orgs_sessions, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("dashboard:operator_requests")).content.decode()
    assert reverse("dashboard:operator_session_detail", args=["acme", "a/../b"]) in page


def test_the_operators_request_detail_links_to_its_session(client, two_orgs_sessions, admin_user):
    client.force_login(admin_user)
    url = reverse("dashboard:operator_request_detail", args=["req_globex_s1"])
    page = client.get(url).content.decode()
    assert reverse("dashboard:operator_session_detail", args=["globex", "task-1"]) in page


def test_sessions_across_organisations_page_without_gaps_or_repeats(
    client, two_orgs, admin_user, monkeypatch
):
    """Sessions that were last active at the same instant, in both organisations, with
    the same ids: the pages still hold each exactly once."""
    monkeypatch.setattr(views_sessions, "PAGE_SIZE", 2)
    at = timezone.now()
    expected = set()
    for tenant in two_orgs:
        for n, session_id in enumerate(["s|1", "s2", "s3"]):
            log(
                tenant.organisation,
                f"req_{tenant.organisation.slug}_{n}",
                session_id=session_id,
                started_at=at,
            )
            expected.add((tenant.organisation.slug, session_id))
    client.force_login(admin_user)
    seen, params = [], {}
    while True:
        response = client.get(reverse("dashboard:operator_sessions"), params)
        seen += [(s["organisation"].slug, s["session_id"]) for s in response.context["sessions"]]
        if not response.context["next_cursor"]:
            break
        params = {"before": response.context["next_cursor"]}
    assert len(seen) == len(expected) == 6 and set(seen) == expected


@pytest.mark.parametrize(
    "name, args",
    [
        ("dashboard:operator_sessions", []),
        ("dashboard:operator_session_detail", ["acme", "task-1"]),
    ],
)
def test_members_get_404_on_operator_sessions_and_anonymous_visitors_log_in(
    client, two_orgs_sessions, name, args
):
    acme, _ = two_orgs_sessions
    url = reverse(name, args=args)
    client.force_login(acme.owner)
    assert client.get(url).status_code == 404
    client.logout()
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["location"]
