"""Tenancy of every console URL the accounts pages add: a member of another
organisation gets 404, an anonymous visitor is sent to log in, and a member below the
role a write needs gets 404 as well (so a page's existence is not revealed)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import ApiKey, Membership, Organisation
from accounts.services import api_key_create, invitation_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(tenant):
    key = api_key_create(organisation=tenant.organisation, name="ci").api_key
    invitation = invitation_create(
        organisation=tenant.organisation,
        email="new@example.test",
        role="member",
        invited_by=tenant.owner,
        accept_url_for=lambda t: f"http://testserver/i/{t}/",
    ).invitation
    member = Membership.objects.get(user=tenant.member, organisation=tenant.organisation)
    return {"key": key, "invitation": invitation, "member": member}


def _urls(org: str, objects: dict) -> list[tuple[str, str]]:
    key, inv, member = objects["key"].pk, objects["invitation"].pk, objects["member"].pk
    return [
        ("get", reverse("dashboard:keys", args=[org])),
        ("post", reverse("dashboard:key_create", args=[org])),
        ("get", reverse("dashboard:key_revoke", args=[org, key])),
        ("post", reverse("dashboard:key_revoke", args=[org, key])),
        ("get", reverse("dashboard:members", args=[org])),
        ("post", reverse("dashboard:member_invite", args=[org])),
        ("post", reverse("dashboard:member_role", args=[org, member])),
        ("post", reverse("dashboard:member_remove", args=[org, member])),
        ("post", reverse("dashboard:invitation_cancel", args=[org, inv])),
    ]


POST_DATA = {"name": "x", "email": "someone@example.test", "role": "owner"}


def test_it_gives_outsiders_404_on_every_url(client, tenant, outsider, objects):
    client.force_login(outsider)
    for method, url in _urls("acme", objects):
        response = getattr(client, method)(url, POST_DATA)
        assert response.status_code == 404, (method, url)
    # nothing changed on the way
    assert ApiKey.objects.filter(organisation=tenant.organisation).count() == 1
    assert ApiKey.objects.get(pk=objects["key"].pk).revoked_at is None
    assert Membership.objects.filter(organisation=tenant.organisation).count() == 3


def test_it_does_not_reach_another_orgs_objects_through_own_org(client, tenant, outsider):
    """An owner of globex using globex's URL with acme's object ids gets 404."""
    key = api_key_create(organisation=tenant.organisation, name="acme-key").api_key
    member = Membership.objects.get(user=tenant.member)
    client.force_login(outsider)
    assert client.get(reverse("dashboard:key_revoke", args=["globex", key.pk])).status_code == 404
    assert client.post(reverse("dashboard:key_revoke", args=["globex", key.pk])).status_code == 404
    response = client.post(reverse("dashboard:member_remove", args=["globex", member.pk]))
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert Membership.objects.filter(pk=member.pk).exists()


def test_it_sends_anonymous_visitors_to_login(client, tenant, objects):
    urls = [
        *_urls("acme", objects),
        ("get", reverse("dashboard:organisation_new")),
        ("post", reverse("dashboard:organisation_new")),
        ("get", reverse("dashboard:invitation", args=["some-token"])),
        ("post", reverse("dashboard:invitation", args=["some-token"])),
    ]
    for method, url in urls:
        response = getattr(client, method)(url, POST_DATA)
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith(reverse("account_login")), (method, url)
    assert Organisation.objects.count() == 1


def test_it_hides_key_writes_from_members(client, tenant, objects):
    client.force_login(tenant.member)
    org = "acme"
    assert client.get(reverse("dashboard:keys", args=[org])).status_code == 200
    assert client.post(reverse("dashboard:key_create", args=[org]), POST_DATA).status_code == 404
    revoke = reverse("dashboard:key_revoke", args=[org, objects["key"].pk])
    assert client.get(revoke).status_code == 404
    assert client.post(revoke).status_code == 404
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 0


def test_it_hides_member_writes_from_admins(client, tenant, objects):
    client.force_login(tenant.admin)
    org = "acme"
    assert client.get(reverse("dashboard:members", args=[org])).status_code == 200
    member = objects["member"].pk
    for url in (
        reverse("dashboard:member_invite", args=[org]),
        reverse("dashboard:member_role", args=[org, member]),
        reverse("dashboard:member_remove", args=[org, member]),
        reverse("dashboard:invitation_cancel", args=[org, objects["invitation"].pk]),
    ):
        assert client.post(url, POST_DATA).status_code == 404, url
    objects["member"].refresh_from_db()
    assert objects["member"].role == "member"
