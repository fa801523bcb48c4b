"""The API keys page: list, create (secret shown once), revoke, and where the secret
must never end up (database, session, messages, logs, redirects)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, Group
from accounts.secrets import api_secret_hash
from accounts.services import api_key_create
from billing.money import usd_to_nano

pytestmark = pytest.mark.django_db

SECRET_RE = re.compile(r"sk-tg-[A-Za-z0-9]{40}")


def _create(client: Client, **data) -> tuple:
    form = {"name": "ci", "group": str(Group.objects.get(slug="default").pk), **data}
    response = client.post(reverse("dashboard:key_create", args=["acme"]), form)
    return response, SECRET_RE.findall(response.content.decode())


def _all_stored_text() -> list[str]:
    """Every value in every row of every table, as text (sessions decoded)."""
    values: list[str] = []
    for model in apps.get_models():
        for row in model.objects.values_list():
            values.extend(str(v) for v in row if v is not None)
    for session in Session.objects.all():
        values.append(str(session.get_decoded()))
    return values


def test_it_shows_the_secret_once_and_then_only_masked(client, tenant):
    client.force_login(tenant.admin)
    response, secrets = _create(client)
    assert response.status_code == 200
    assert len(set(secrets)) == 1
    secret = secrets[0]
    assert b"will not be shown again" in response.content
    assert "no-store" in response["Cache-Control"]

    key = ApiKey.objects.get()
    assert key.secret_hash == api_secret_hash(secret)
    assert key.created_by == tenant.admin

    listing = client.get(reverse("dashboard:keys", args=["acme"])).content.decode()
    assert secret not in listing
    assert f"{secret[:14]}…{secret[-4:]}" in listing
    assert SECRET_RE.search(listing) is None


def test_it_stores_no_plaintext_secret_anywhere(client, tenant, caplog):
    client.force_login(tenant.owner)
    with caplog.at_level(logging.DEBUG):
        response, secrets = _create(client, spend_limit_usd="12.50")
    secret = secrets[0]
    stored = _all_stored_text()
    assert stored, "the scan must see rows"
    assert not [v for v in stored if secret in v]
    assert not [v for v in stored if secret[len("sk-tg-") :] in v]
    assert secret not in caplog.text
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    assert all(secret not in str(m) for m in response.context["messages"])


def test_it_applies_group_expiry_and_spend_limit(client, tenant):
    pro = Group.objects.create(slug="pro", name="Pro")
    tenant.organisation.allowed_groups.add(pro)
    client.force_login(tenant.owner)
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    response, _ = _create(
        client, group=str(pro.pk), expires_on=tomorrow.isoformat(), spend_limit_usd="12.50"
    )
    assert response.status_code == 200
    key = ApiKey.objects.get()
    assert key.group == pro
    assert key.spend_limit_total_nano == usd_to_nano("12.50") == 12_500_000_000
    assert key.expires_at.date() == tomorrow + timedelta(days=1)
    assert key.expires_at.hour == 0


def test_it_rejects_a_group_the_organisation_may_not_use(client, tenant):
    enterprise = Group.objects.create(slug="enterprise", name="Enterprise")
    client.force_login(tenant.owner)
    response, secrets = _create(client, group=str(enterprise.pk))
    assert response.status_code == 400
    assert secrets == []
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize(
    "data",
    [
        {"name": ""},
        {"expires_on": "2001-01-01"},
        {"spend_limit_usd": "0"},
        {"spend_limit_usd": "-5"},
    ],
)
def test_it_rejects_invalid_key_input(client, tenant, data):
    client.force_login(tenant.owner)
    response, secrets = _create(client, **data)
    assert response.status_code == 400
    assert secrets == []
    assert ApiKey.objects.count() == 0


def test_it_lists_status_and_details(client, tenant):
    active = api_key_create(organisation=tenant.organisation, name="live", created_by=tenant.owner)
    revoked = api_key_create(organisation=tenant.organisation, name="old").api_key
    revoked.revoked_at = timezone.now()
    revoked.save()
    expired = api_key_create(organisation=tenant.organisation, name="gone").api_key
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    client.force_login(tenant.member)
    page = client.get(reverse("dashboard:keys", args=["acme"])).content.decode()
    assert "badge-active" in page and "badge-revoked" in page and "badge-expired" in page
    assert "owner@acme.test" in page
    assert active.api_key.masked in page
    assert "Create key" not in page  # members may look, not create
    assert "Revoke" not in page


def test_it_revokes_a_key_after_confirmation(client, tenant):
    key = api_key_create(organisation=tenant.organisation, name="ci").api_key
    client.force_login(tenant.admin)
    url = reverse("dashboard:key_revoke", args=["acme", key.pk])
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert key.masked in confirm.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None  # GET only asks

    response = client.post(url, follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.status == "revoked"
    assert response.redirect_chain[-1][0] == reverse("dashboard:keys", args=["acme"])
    assert "badge-revoked" in response.content.decode()


def test_it_enforces_csrf_on_key_forms(tenant):
    key = api_key_create(organisation=tenant.organisation, name="ci").api_key
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant.owner)
    create = reverse("dashboard:key_create", args=["acme"])
    revoke = reverse("dashboard:key_revoke", args=["acme", key.pk])
    group = str(tenant.organisation.default_group_id)
    assert client.post(create, {"name": "x", "group": group}).status_code == 403
    assert client.post(revoke).status_code == 403
    assert ApiKey.objects.count() == 1
    key.refresh_from_db()
    assert key.revoked_at is None

    client.get(reverse("dashboard:keys", args=["acme"]))
    token = client.cookies["csrftoken"].value
    ok = client.post(create, {"name": "x", "group": group, "csrfmiddlewaretoken": token})
    assert ok.status_code == 200
    assert ApiKey.objects.count() == 2


def test_it_sets_daily_and_monthly_limits(client, tenant):
    from accounts.models import ApiKey

    client.force_login(tenant.admin)
    response = client.post(
        f"/o/{tenant.organisation.slug}/keys/new/",
        {
            "name": "capped",
            "group": tenant.organisation.default_group_id,
            "spend_limit_usd": "50",
            "daily_limit_usd": "2.50",
            "monthly_limit_usd": "20",
        },
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(name="capped")
    assert (
        key.spend_limit_total_nano,
        key.spend_limit_daily_nano,
        key.spend_limit_monthly_nano,
    ) == (50 * 10**9, 2_500_000_000, 20 * 10**9)
    assert "$2.50 a day" in response.content.decode()
