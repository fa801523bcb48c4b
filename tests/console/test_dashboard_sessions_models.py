"""Sessions (requests grouped by X-Tollgate-Session-Id, with summed cost, tokens,
count and duration; a session's own page) and the Models page (what the
organisation's groups may use, prices, ids to paste, base URLs)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from html import escape, unescape
from urllib.parse import urljoin
from uuid import uuid4

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Group, Organisation
from dashboard import views_sessions
from dashboard.views_models import price_per_million
from dashboard.views_sessions import duration_text
from gateway.models import Model, ModelAlias, RequestLog

pytestmark = pytest.mark.django_db


def log(organisation, *, session_id, seconds_ago=0, **extra) -> RequestLog:
    fields = {
        "client_protocol": "openai",
        "requested_model": "gpt-x",
        "resolved_model": "gpt-x",
        "provider": "fakeai",
        "status_code": 200,
        "outcome": "ok",
        **extra,
    }
    return RequestLog.objects.create(
        request_id=f"req_{uuid4().hex}",
        organisation=organisation,
        session_id=session_id,
        started_at=timezone.now() - timedelta(seconds=seconds_ago),
        **fields,
    )


@pytest.fixture
def sessions(tenant, tenant_factory):
    org = tenant.organisation
    log(
        org,
        session_id="task-1",
        seconds_ago=600,
        cost_nano=1_000_000,
        input_tokens=100,
        cache_read_tokens=50,
        cache_write_5m_tokens=5,
        output_tokens=20,
    )
    log(
        org,
        session_id="task-1",
        seconds_ago=75,
        cost_nano=2_000_000,
        input_tokens=10,
        output_tokens=2,
        outcome="error",
        status_code=500,
    )
    log(org, session_id="task/2 ü", seconds_ago=30, cost_nano=7)
    log(org, session_id="", cost_nano=99)  # no session
    log(org, session_id="ancient", seconds_ago=10 * 86400)
    log(tenant_factory("globex").organisation, session_id="task-1", cost_nano=5_000_000)


def test_it_lists_sessions_with_their_sums(client, tenant, sessions):
    client.force_login(tenant.member)
    html = client.get(reverse("dashboard:sessions", args=["acme"])).content.decode()

    assert html.index("task/2 ü") < html.index("task-1")  # most recently active first
    assert "ancient" not in html  # outside the default 7 days
    assert "$0.0030" in html  # task-1: globex's request is not summed in
    assert "165 / 22" in html  # tokens in (cache included) / out
    assert "8 min 45 s" in html
    assert "1 failed" in html
    wider = client.get(reverse("dashboard:sessions", args=["acme"]), {"window": "30d"})
    assert "ancient" in wider.content.decode()


def test_it_pages_sessions(client, tenant, monkeypatch):
    monkeypatch.setattr(views_sessions, "PAGE_SIZE", 2)
    for n in range(5):
        log(tenant.organisation, session_id=f"s{n}", seconds_ago=n)
    client.force_login(tenant.member)
    url = reverse("dashboard:sessions", args=["acme"])

    first = client.get(url)
    cursor = first.context["next_cursor"]
    second = client.get(url, {"before": cursor})
    third = client.get(url, {"before": second.context["next_cursor"]})

    pages = [[s["session_id"] for s in r.context["sessions"]] for r in (first, second, third)]
    assert pages == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    assert third.context["next_cursor"] == ""


def test_a_session_page_lists_its_requests_in_order(client, tenant, sessions):
    client.force_login(tenant.member)
    response = client.get(reverse("dashboard:session_detail", args=["acme", "task-1"]))

    assert response.status_code == 200
    session = response.context["session"]
    assert (session["requests"], session["errors"], session["cost_nano"]) == (2, 1, 3_000_000)
    assert (session["input_tokens"], session["output_tokens"]) == (165, 22)
    rows = response.context["rows"]
    assert [r.cost_nano for r in rows] == [1_000_000, 2_000_000]  # oldest first
    assert all(r.organisation_id == tenant.organisation.pk for r in rows)


def test_a_session_id_with_a_slash_and_unicode_has_a_page(client, tenant, sessions):
    client.force_login(tenant.member)
    url = reverse("dashboard:session_detail", args=["acme", "task/2 ü"])
    response = client.get(url)
    assert response.status_code == 200
    assert response.context["session"]["cost_nano"] == 7


def test_an_unknown_or_foreign_session_is_404(client, tenant, sessions):
    client.force_login(tenant.member)
    assert client.get(reverse("dashboard:session_detail", args=["acme", "nope"])).status_code == 404
    log(Organisation.objects.get(slug="globex"), session_id="globex-only")
    url = reverse("dashboard:session_detail", args=["acme", "globex-only"])
    assert client.get(url).status_code == 404


AWKWARD_IDS = ["a/../b", "x?y#z", "with space", "ünï/cödé", "..", "/", "100%2F", "~2F", "a|b"]


def _href(html: str, text: str) -> str:
    """The link of the anchor whose text contains `text`, as the browser would follow it
    (HTML entities undone, dot segments resolved against the page's URL)."""
    anchor = html.index(text)
    start = html.rindex('href="', 0, anchor) + len('href="')
    href = unescape(html[start : html.index('"', start)])
    return urljoin("http://testserver/o/acme/sessions/", href)


@pytest.mark.parametrize("session_id", AWKWARD_IDS)
def test_any_session_id_links_to_its_own_page(client, tenant, session_id):
    log(tenant.organisation, session_id=session_id, cost_nano=41)
    log(tenant.organisation, session_id="b", cost_nano=1)  # where a/../b must not lead
    client.force_login(tenant.member)
    listing = client.get(reverse("dashboard:sessions", args=["acme"])).content.decode()

    link = _href(listing, f"<code>{escape(session_id)}</code>")
    assert link.startswith("http://testserver/o/acme/sessions/")
    response = client.get(link)

    assert response.status_code == 200
    session = response.context["session"]
    assert (session["session_id"], session["cost_nano"]) == (session_id, 41)


@pytest.mark.parametrize("session_id", AWKWARD_IDS)
def test_another_organisations_member_gets_404_for_any_session_id(
    client, tenant, outsider, session_id
):
    log(tenant.organisation, session_id=session_id)
    client.force_login(outsider)  # owner of globex
    for org in ("acme", "globex"):
        url = reverse("dashboard:session_detail", args=[org, session_id])
        assert client.get(url).status_code == 404, url


@pytest.mark.parametrize("segment", ["task~2D1", "task~2d", "~", "~Z1", "~C3", "~FF"])
def test_only_the_one_spelling_of_a_session_id_resolves(client, tenant, sessions, segment):
    """Another spelling of task-1 ("-" escaped), bad hex, a cut escape, or bytes that
    are not UTF-8."""
    client.force_login(tenant.member)
    assert client.get(f"/o/acme/sessions/{segment}/").status_code == 404


def test_a_plain_session_id_keeps_a_readable_url():
    assert reverse("dashboard:session_detail", args=["acme", "task-1_B"]) == (
        "/o/acme/sessions/task-1_B/"
    )
    assert reverse("dashboard:session_detail", args=["acme", "a/../b ü"]) == (
        "/o/acme/sessions/a~2F~2E~2E~2Fb~20~C3~BC/"
    )


def test_durations_read_naturally():
    assert duration_text(4.25) == "4.2 s"
    assert duration_text(725) == "12 min 5 s"
    assert duration_text(3 * 3600 + 20 * 60 + 5) == "3 h 20 min"


@pytest.fixture
def catalog(tenant):
    default = Group.objects.get(slug="default")
    pro, _ = Group.objects.get_or_create(slug="pro", defaults={"name": "Pro"})
    sonnet = Model.objects.create(
        public_id="claude-sonnet-4.6",
        display_name="Claude Sonnet 4.6",
        context_window=200_000,
        max_output_tokens=64_000,
        price_input=Decimal("3"),
        price_output=Decimal("15"),
        price_cache_read=Decimal("0.3"),
        price_cache_write_5m=Decimal("3.75"),
        price_cache_write_1h=Decimal("6"),
    )
    sonnet.groups.set([default, pro])
    ModelAlias.objects.create(alias="claude-sonnet-4-6", model=sonnet)
    Model.objects.create(public_id="pro-only", display_name="Pro").groups.set([pro])
    Model.objects.create(public_id="disabled", display_name="Off", enabled=False).groups.set(
        [default]
    )
    Model.objects.create(public_id="ungrouped", display_name="Nobody")
    return sonnet


def test_the_models_page_lists_what_the_groups_allow(client, tenant, catalog, settings):
    settings.SITE_URL = "https://gw.example.com"
    client.force_login(tenant.member)
    response = client.get(reverse("dashboard:models", args=["acme"]))
    html = response.content.decode()

    assert [r["model"].public_id for r in response.context["rows"]] == ["claude-sonnet-4.6"]
    for text in (
        "200,000",
        "64,000",
        "$3.00",
        "$15.00",
        "$0.30",
        "$3.75",
        "$6.00",
        "claude-sonnet-4-6",
    ):
        assert text in html, text
    assert '<code id="base-openai">https://gw.example.com/v1</code>' in html
    assert '<code id="base-anthropic">https://gw.example.com</code>' in html
    # One row per client family: the AI-SDK agents want /v1 on their Anthropic base URL.
    assert '<code id="base-aisdk">https://gw.example.com/v1</code>' in html
    assert '<code id="base-codex">https://gw.example.com/v1</code>' in html
    assert "opencode" in html and "Claude Code" in html and "Roo Code" in html


def test_the_models_page_follows_the_organisations_groups(client, tenant, catalog):
    tenant.organisation.allowed_groups.add(Group.objects.get(slug="pro"))
    client.force_login(tenant.member)
    response = client.get(reverse("dashboard:models", args=["acme"]))
    rows = {r["model"].public_id: r["groups"] for r in response.context["rows"]}
    assert rows == {"claude-sonnet-4.6": ["default", "pro"], "pro-only": ["pro"]}


def test_prices_read_as_dollars_per_million():
    assert price_per_million(Decimal("3.000000")) == "$3.00"
    assert price_per_million(Decimal("0.125000")) == "$0.125"
    assert price_per_million(Decimal("1.562500")) == "$1.5625"
    assert price_per_million(Decimal("1200")) == "$1,200.00"
    assert price_per_million(Decimal("0")) == "$0.00"
