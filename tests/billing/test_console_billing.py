"""The billing page, the top-up flow up to Stripe, and the return page."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import EntryKind, TopUp, TopUpStatus
from billing.services import ledger_post
from tests.billing.conftest import deliver, stripe_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fees(settings):
    settings.TOLLGATE_LAUNCH_WINDOW_END = ""
    settings.TOLLGATE_TOPUP_FEE_PERCENT = Decimal("5")
    settings.TOLLGATE_TOPUP_MIN_USD = Decimal("10")
    settings.SITE_URL = "https://tollgate.test"


@pytest.fixture
def topup(tenant):
    return TopUp.objects.create(
        organisation=tenant.organisation,
        created_by=tenant.admin,
        amount_cents=2000,
        fee_percent=Decimal("5"),
        fee_cents=100,
        stripe_session_id="cs_test_page",
    )


def _billing(org="acme"):
    return reverse("dashboard:billing", args=[org])


def _topup_url(org="acme"):
    return reverse("dashboard:billing_topup", args=[org])


def test_billing_is_for_owners_and_admins_only(client, tenant, fake_stripe):
    ledger_post(
        organisation=tenant.organisation,
        kind=EntryKind.TRIAL,
        amount_nano=3_000_000_000,
        idempotency_key="t",
        memo="Trial credit",
    )
    client.force_login(tenant.member)
    assert client.get(_billing()).status_code == 404
    assert client.get(reverse("dashboard:billing_topup", args=["acme"])).status_code == 404
    overview = client.get(reverse("dashboard:overview", args=["acme"])).content.decode()
    assert f'href="{_billing()}"' not in overview
    for user in (tenant.admin, tenant.owner):
        client.force_login(user)
        page = client.get(_billing()).content.decode()
        assert "$3.0000" in page and "Trial credit" in page


def test_admins_see_the_fee_and_a_top_up_form(client, tenant, fake_stripe):
    client.force_login(tenant.admin)
    page = client.get(_billing()).content.decode()
    assert 'name="amount"' in page
    assert "<strong>5%</strong>" in page
    assert "Minimum $10.00" in page


def test_launch_pricing_is_announced_with_its_end_date(client, tenant, fake_stripe, settings):
    settings.TOLLGATE_LAUNCH_WINDOW_END = "2999-12-31"
    settings.TOLLGATE_TOPUP_LAUNCH_FEE_PERCENT = Decimal("3")
    client.force_login(tenant.admin)
    page = client.get(_billing()).content.decode()
    assert "Launch pricing: 3% instead of 5% until 2999-12-31" in page


def test_ledger_history_is_paginated(client, tenant):
    for i in range(30):
        ledger_post(
            organisation=tenant.organisation,
            kind=EntryKind.ADJUSTMENT,
            amount_nano=1,
            idempotency_key=f"p{i}",
            memo=f"entry-{i:02d}",
        )
    client.force_login(tenant.admin)
    first = client.get(_billing()).content.decode()
    second = client.get(_billing() + "?page=2").content.decode()
    assert "entry-29" in first and "entry-05" in first and "entry-04" not in first
    assert "entry-04" in second and "entry-00" in second and "Page 2 of 2" in second


def test_the_quote_shows_fee_and_credit_before_paying(client, tenant, fake_stripe):
    client.force_login(tenant.admin)
    response = client.get(_topup_url(), {"amount": "25"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "$25.00" in page and "$1.25" in page and "$23.75" in page
    assert fake_stripe.requests == []  # looking at a quote calls nobody


def test_an_amount_below_the_minimum_is_refused_on_the_page(client, tenant, fake_stripe):
    client.force_login(tenant.admin)
    response = client.get(_topup_url(), {"amount": "5"})
    assert response.status_code == 400
    assert "The minimum top-up is $10.00." in response.content.decode()


def test_paying_redirects_to_stripe_checkout_and_credits_nothing_yet(client, tenant, fake_stripe):
    client.force_login(tenant.admin)
    response = client.post(_topup_url(), {"amount": "25"})
    topup = TopUp.objects.get()
    assert response.status_code == 302
    assert response["Location"] == fake_stripe.sessions[topup.stripe_session_id]["url"]
    params = fake_stripe.requests[0]["params"]
    assert params["success_url"] == (
        "https://tollgate.test/o/acme/billing/topup/return/?session_id={CHECKOUT_SESSION_ID}"
    )
    assert params["cancel_url"] == "https://tollgate.test/o/acme/billing/?topup=cancelled"
    assert tenant.organisation.ledger_entries.count() == 0


def test_the_return_page_only_shows_that_payment_is_processing(client, tenant, topup):
    client.force_login(tenant.admin)
    back = client.get(
        reverse("dashboard:billing_topup_return", args=["acme"]), {"session_id": "cs_test_page"}
    )
    assert back.status_code == 302
    page = client.get(back["Location"]).content.decode()
    assert "Payment processing" in page
    assert 'http-equiv="refresh"' in page
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PENDING
    assert tenant.organisation.ledger_entries.count() == 0


def test_the_return_page_shows_the_credit_once_the_webhook_has_paid(client, tenant, fake_stripe):
    client.force_login(tenant.admin)
    client.post(_topup_url(), {"amount": "20"})
    topup = TopUp.objects.get()
    deliver(
        client,
        stripe_event("checkout.session.completed", fake_stripe.complete(topup.stripe_session_id)),
    )
    page = client.get(reverse("dashboard:billing_topup_status", args=["acme", topup.public_id]))
    assert "$19.00 credit was added" in page.content.decode()


def test_a_cancelled_checkout_says_nothing_was_charged(client, tenant):
    client.force_login(tenant.admin)
    page = client.get(_billing() + "?topup=cancelled").content.decode()
    assert "nothing was charged" in page


def test_without_stripe_the_page_says_top_ups_are_unavailable(client, tenant, settings):
    settings.STRIPE_SECRET_KEY = ""
    client.force_login(tenant.owner)
    page = client.get(_billing()).content.decode()
    assert "Top-ups are not available on this server yet" in page
    response = client.post(_topup_url(), {"amount": "25"})
    assert response.status_code == 400
    assert "not available" in response.content.decode()


def test_members_cannot_top_up(client, tenant, fake_stripe):
    client.force_login(tenant.member)
    assert client.get(_topup_url(), {"amount": "25"}).status_code == 404
    assert client.post(_topup_url(), {"amount": "25"}).status_code == 404
    assert not TopUp.objects.exists()
    assert fake_stripe.requests == []


def _console_urls(org, topup):
    return [
        ("get", reverse("dashboard:billing", args=[org])),
        ("get", reverse("dashboard:billing_topup", args=[org]) + "?amount=25"),
        ("post", reverse("dashboard:billing_topup", args=[org])),
        ("get", reverse("dashboard:billing_topup_return", args=[org]) + "?session_id=cs_test_page"),
        ("get", reverse("dashboard:billing_topup_status", args=[org, topup.public_id])),
    ]


def test_outsiders_get_404_on_every_billing_url(client, tenant, outsider, topup, fake_stripe):
    client.force_login(outsider)
    for method, url in _console_urls("acme", topup):
        response = getattr(client, method)(url, {"amount": "25"} if method == "post" else None)
        assert response.status_code == 404, url
    assert not TopUp.objects.exclude(pk=topup.pk).exists()


def test_another_organisations_top_up_is_not_found_under_your_own(client, tenant, outsider, topup):
    client.force_login(outsider)
    url = reverse("dashboard:billing_topup_status", args=["globex", topup.public_id])
    assert client.get(url).status_code == 404
    back = reverse("dashboard:billing_topup_return", args=["globex"])
    assert client.get(back, {"session_id": "cs_test_page"}).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, tenant, topup):
    for method, url in _console_urls("acme", topup):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url


def test_the_nav_links_to_billing(client, tenant):
    client.force_login(tenant.admin)
    page = client.get(reverse("dashboard:overview", args=["acme"])).content.decode()
    assert f'href="{_billing()}"' in page
