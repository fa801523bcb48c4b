"""Key rate limits in the console: owners and admins set them, members and other
organisations get 404, and the list shows each key's limits."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import ApiKey, Group
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_key(tenant) -> ApiKey:
    return api_key_create(organisation=tenant.organisation, name="ci").api_key


def _url() -> str:
    return reverse("dashboard:keys", args=["acme"])


def _save(client, api_key, **limits):
    form = {"key_id": str(api_key.pk), "rpm_limit": "", "tpm_limit": "", "concurrency_limit": ""}
    form.update({k: str(v) for k, v in limits.items()})
    return client.post(_url(), form)


def test_an_owner_sets_a_keys_limits_and_the_list_shows_them(client, tenant, api_key):
    client.force_login(tenant.owner)
    form = client.get(_url(), {"limits": api_key.pk})
    assert form.status_code == 200
    assert b"Requests per minute" in form.content and b"Concurrent requests" in form.content

    response = _save(client, api_key, rpm_limit=60, tpm_limit=100000, concurrency_limit=4)
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert (api_key.rpm_limit, api_key.tpm_limit, api_key.concurrency_limit) == (60, 100000, 4)
    listing = client.get(_url()).content.decode()
    assert "60 RPM" in listing and "100000 TPM" in listing and "4 concurrent" in listing
    assert f"?limits={api_key.pk}" in listing

    _save(client, api_key, rpm_limit=0)  # 0: no limit; blank: the group default
    api_key.refresh_from_db()
    assert (api_key.rpm_limit, api_key.tpm_limit, api_key.concurrency_limit) == (0, None, None)


def test_an_admin_may_too_and_bad_values_are_refused(client, tenant, api_key):
    client.force_login(tenant.admin)
    assert _save(client, api_key, rpm_limit=-1).status_code == 400
    assert _save(client, api_key, concurrency_limit="many").status_code == 400
    api_key.refresh_from_db()
    assert api_key.rpm_limit is None and api_key.concurrency_limit is None
    assert _save(client, api_key, concurrency_limit=2).status_code == 302


def test_group_defaults_show_as_such(client, tenant, api_key):
    Group.objects.filter(slug="default").update(rpm_limit=30, org_tpm_limit=5000)
    client.force_login(tenant.member)
    listing = client.get(_url()).content.decode()
    assert "30 RPM (group default)" in listing
    assert "5000 TPM (group default)" in listing  # the organisation's
    assert "?limits=" not in listing  # members cannot edit


def test_a_member_cannot_see_or_change_limits(client, tenant, api_key):
    client.force_login(tenant.member)
    assert client.get(_url(), {"limits": api_key.pk}).status_code == 404
    assert _save(client, api_key, rpm_limit=1000).status_code == 404
    api_key.refresh_from_db()
    assert api_key.rpm_limit is None


def test_another_organisation_gets_404(client, tenant, api_key, tenant_factory):
    other = tenant_factory("globex")
    client.force_login(other.owner)
    assert client.get(_url(), {"limits": api_key.pk}).status_code == 404
    assert _save(client, api_key, rpm_limit=1).status_code == 404
    # Nor through its own organisation's page.
    own = reverse("dashboard:keys", args=["globex"])
    assert client.get(own, {"limits": api_key.pk}).status_code == 404
    response = client.post(own, {"key_id": str(api_key.pk), "rpm_limit": "1"})
    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.rpm_limit is None


def test_a_revoked_key_has_no_limits_form(client, tenant, api_key):
    from accounts.services import api_key_revoke

    api_key_revoke(api_key=api_key, revoked_by=tenant.owner)
    client.force_login(tenant.owner)
    assert client.get(_url(), {"limits": api_key.pk}).status_code == 404
    assert client.get(_url(), {"limits": "x"}).status_code == 404


def test_operators_set_limits_in_the_admin(client, tenant, api_key):
    from accounts.models import User

    operator = User.objects.create_superuser(email="ops@tollgate.test", password="x" * 20)
    client.force_login(operator)
    change = reverse("admin:accounts_apikey_change", args=[api_key.pk])
    page = client.get(change)
    assert page.status_code == 200 and b'name="rpm_limit"' in page.content
    assert b'name="name"' not in page.content  # everything else stays read-only
    response = client.post(
        change, {"rpm_limit": "10", "tpm_limit": "", "concurrency_limit": "3", "name": "x"}
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert (api_key.rpm_limit, api_key.concurrency_limit, api_key.name) == (10, 3, "ci")

    for name, pk in (("organisation", tenant.organisation.pk), ("group", api_key.group_id)):
        page = client.get(reverse(f"admin:accounts_{name}_change", args=[pk]))
        assert page.status_code == 200 and b'name="rpm_limit"' in page.content
    group_page = client.get(reverse("admin:accounts_group_change", args=[api_key.group_id]))
    assert b'name="org_concurrency_limit"' in group_page.content
