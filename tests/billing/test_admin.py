"""Operator admin: billing records are read-only, credit is adjusted through the
service, and provider keys show metadata only."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import User
from billing.models import EntryKind, LedgerEntry, StripeEvent, TopUp
from billing.selectors import balance_get
from billing.services import ledger_post
from gateway.byok import provider_key_save
from gateway.models import Protocol, Provider

pytestmark = pytest.mark.django_db

SECRET = "sk-proj-ADMIN-NEVER-SEES-THIS-0123456789-LMNO"


@pytest.fixture
def operator(client):
    user = User.objects.create_superuser(email="ops@tollgate.test", password="x" * 20)
    client.force_login(user)
    return user


@pytest.fixture
def entry(tenant):
    return ledger_post(
        organisation=tenant.organisation,
        kind=EntryKind.TRIAL,
        amount_nano=3_000_000_000,
        idempotency_key="trial:org:x",
    )


def test_ledger_entries_are_listed_but_cannot_be_added_changed_or_deleted(client, operator, entry):
    changelist = client.get(reverse("admin:billing_ledgerentry_changelist"))
    assert changelist.status_code == 200 and "$3.000000" in changelist.content.decode()
    detail = client.get(reverse("admin:billing_ledgerentry_change", args=[entry.pk]))
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert (
        client.post(
            reverse("admin:billing_ledgerentry_change", args=[entry.pk]), {"amount_nano": "1"}
        ).status_code
        == 403
    )
    assert client.get(reverse("admin:billing_ledgerentry_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:billing_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    entry.refresh_from_db()
    assert entry.amount_nano == 3_000_000_000


def test_stripe_events_and_top_ups_are_read_only(client, operator, tenant):
    topup = TopUp.objects.create(
        organisation=tenant.organisation, amount_cents=1000, fee_percent=Decimal("5"), fee_cents=50
    )
    event = StripeEvent.objects.create(stripe_id="evt_1", type="checkout.session.completed")
    for name, obj in [("topup", topup), ("stripeevent", event)]:
        assert client.get(reverse(f"admin:billing_{name}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:billing_{name}_add")).status_code == 403
        assert (
            client.post(
                reverse(f"admin:billing_{name}_delete", args=[obj.pk]), {"post": "yes"}
            ).status_code
            == 403
        )


def test_organisation_credit_shows_the_balance(client, operator, tenant, entry):
    page = client.get(reverse("admin:billing_organisationcredit_changelist")).content.decode()
    assert "acme" in page and "$3.0000" in page and "Adjust credit" in page


def test_adjusting_credit_posts_one_adjustment_per_form(client, operator, tenant):
    url = reverse("admin:billing_organisationcredit_adjust", args=[tenant.organisation.pk])
    form = client.get(url).content.decode()
    token = re.search(r'name="token" value="([0-9a-f-]+)"', form)[1]
    data = {"amount_usd": "-1.25", "memo": "refund outside Stripe", "token": token}
    assert client.post(url, data).status_code == 302
    assert client.post(url, data).status_code == 302  # a double submit
    [adjustment] = LedgerEntry.objects.filter(kind=EntryKind.ADJUSTMENT)
    assert adjustment.amount_nano == -1_250_000_000
    assert adjustment.created_by == operator
    assert adjustment.memo == "refund outside Stripe"
    assert balance_get(organisation=tenant.organisation) == -1_250_000_000


def test_an_adjustment_needs_a_memo(client, operator, tenant):
    url = reverse("admin:billing_organisationcredit_adjust", args=[tenant.organisation.pk])
    response = client.post(
        url, {"amount_usd": "5", "memo": " ", "token": "8a3c7c55-4a43-4e4b-9a44-1d6f1f3e2f10"}
    )
    assert response.status_code == 200
    assert not LedgerEntry.objects.exists()


def test_staff_without_permission_cannot_adjust(client, tenant):
    staff = User.objects.create_user(email="staff@tollgate.test", password="x" * 20, is_staff=True)
    client.force_login(staff)
    url = reverse("admin:billing_organisationcredit_adjust", args=[tenant.organisation.pk])
    assert (
        client.post(
            url, {"amount_usd": "5", "memo": "x", "token": "8a3c7c55-4a43-4e4b-9a44-1d6f1f3e2f10"}
        ).status_code
        == 403
    )
    assert not LedgerEntry.objects.exists()


@pytest.mark.urls("tests.billing.admin_urls")
def test_the_provider_key_admin_shows_metadata_never_the_key(client, operator, tenant):
    provider = Provider.objects.create(
        slug="openai",
        name="OpenAI",
        protocol=Protocol.OPENAI,
        base_url="https://api.openai.test/v1",
    )
    key = provider_key_save(
        organisation=tenant.organisation,
        provider=provider,
        secret=SECRET,
        mode="only",
        created_by=tenant.owner,
        verify=False,
    )
    pages = [
        client.get("/admin/gateway/providerkey/"),
        client.get(f"/admin/gateway/providerkey/{key.pk}/change/"),
    ]
    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert "…LMNO" in html
        assert SECRET not in html and key.secret_encrypted not in html
    assert client.get("/admin/gateway/providerkey/add/").status_code == 403
