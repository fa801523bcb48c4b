"""The operator admin: staff only, API keys shown as metadata only, revocation via the
service, Django's permission groups out of the way."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group as AuthGroup
from django.urls import reverse

from accounts.models import ApiKey, User
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, db):
    operator = User.objects.create_superuser(email="ops@tollgate.test", password="x" * 20)
    client.force_login(operator)
    return client


@pytest.fixture
def created(tenant):
    return api_key_create(organisation=tenant.organisation, name="ci", created_by=tenant.owner)


def test_admin_is_staff_only(client, tenant):
    client.force_login(tenant.owner)
    response = client.get(reverse("admin:accounts_apikey_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_never_shows_a_secret_or_its_hash(staff_client, created):
    key = created.api_key
    pages = [
        reverse("admin:accounts_apikey_changelist"),
        reverse("admin:accounts_apikey_change", args=[key.pk]),
        reverse("admin:accounts_organisation_change", args=[key.organisation_id]),
        reverse("admin:accounts_apikey_history", args=[key.pk]),
    ]
    for url in pages:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert created.secret not in body, url
        assert key.secret_hash not in body, url
    assert key.masked in staff_client.get(pages[0]).content.decode()
    assert staff_client.get(reverse("admin:accounts_apikey_add")).status_code == 403


def test_admin_cannot_edit_or_delete_keys(staff_client, created):
    key = created.api_key
    url = reverse("admin:accounts_apikey_change", args=[key.pk])
    staff_client.post(url, {"name": "renamed"})
    delete = reverse("admin:accounts_apikey_delete", args=[key.pk])
    assert staff_client.get(delete).status_code == 403
    key.refresh_from_db()
    assert key.name == "ci"


def test_admin_action_revokes_selected_keys(staff_client, created, tenant):
    other = api_key_create(organisation=tenant.organisation, name="keep").api_key
    response = staff_client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [created.api_key.pk]},
        follow=True,
    )
    assert b"Revoked 1 key" in response.content
    assert ApiKey.objects.get(pk=created.api_key.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=other.pk).revoked_at is None
    listing = staff_client.get(reverse("admin:accounts_apikey_changelist"), {"status": "revoked"})
    assert created.api_key.masked in listing.content.decode()
    assert other.masked not in listing.content.decode()


def test_admin_pages_for_accounts_models_render(staff_client, tenant):
    for name in ("user", "organisation", "group", "invitation", "membership"):
        try:
            url = reverse(f"admin:accounts_{name}_changelist")
        except Exception:
            assert name == "membership"  # edited inline on organisations and users
            continue
        assert staff_client.get(url).status_code == 200, name
    assert staff_client.get(reverse("admin:accounts_user_add")).status_code == 200
    assert (
        staff_client.get(reverse("admin:accounts_user_change", args=[tenant.owner.pk])).status_code
        == 200
    )


def test_admin_creates_a_user_by_email(staff_client):
    response = staff_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "new@tollgate.test",
            "usable_password": "true",
            "password1": "long enough passphrase 1",
            "password2": "long enough passphrase 1",
        },
    )
    assert response.status_code == 302
    assert User.objects.get(email="new@tollgate.test").check_password("long enough passphrase 1")


def test_django_permission_groups_are_not_in_the_admin():
    assert not admin.site.is_registered(AuthGroup)
