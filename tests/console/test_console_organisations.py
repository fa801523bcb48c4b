"""Creating another organisation and switching between them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Membership, Organisation, Role

pytestmark = pytest.mark.django_db


def test_user_creates_another_organisation_and_can_switch(client, tenant):
    client.force_login(tenant.member)
    assert client.get(reverse("dashboard:organisation_new")).status_code == 200
    response = client.post(reverse("dashboard:organisation_new"), {"name": "Side Project"})
    assert response["Location"] == reverse("dashboard:overview", args=["side-project"])
    org = Organisation.objects.get(slug="side-project")
    assert Membership.objects.get(organisation=org).user == tenant.member
    assert Membership.objects.get(organisation=org).role == Role.OWNER
    assert org.default_group.slug == "default"

    page = client.get(reverse("dashboard:keys", args=["side-project"])).content.decode()
    # the switcher lists both organisations
    assert reverse("dashboard:overview", args=["acme"]) in page
    assert reverse("dashboard:overview", args=["side-project"]) in page
    # owner of the new one, still only a member of acme
    assert "Create key" in page
    assert "Create key" not in client.get(reverse("dashboard:keys", args=["acme"])).content.decode()


def test_it_rejects_a_taken_slug(client, tenant):
    client.force_login(tenant.member)
    response = client.post(reverse("dashboard:organisation_new"), {"name": "X", "slug": "acme"})
    assert response.status_code == 400
    assert b"taken" in response.content
    assert Organisation.objects.count() == 1
