"""The Provider keys page: status per provider, add/replace/mode/delete for admins and
owners, view-only for members, and the key never rendered back."""

import logging

import pytest
from django.urls import reverse

from gateway.byok import provider_key_save
from gateway.models import Protocol, Provider, ProviderKey

pytestmark = pytest.mark.django_db

SECRET = "sk-proj-CONSOLE-SECRET-abcdefghijklmnop-QRST"


@pytest.fixture
def openai(fake_upstream):
    return Provider.objects.create(
        slug="openai", name="OpenAI", protocol=Protocol.OPENAI, base_url=f"{fake_upstream.url}/v1"
    )


@pytest.fixture
def saved(tenant, openai):
    return provider_key_save(
        organisation=tenant.organisation,
        provider=openai,
        secret=SECRET,
        mode="prefer",
        created_by=tenant.owner,
        verify=False,
    )


def _list(org="acme"):
    return reverse("dashboard:provider_keys", args=[org])


def _save(org="acme", provider="openai"):
    return reverse("dashboard:provider_key_save", args=[org, provider])


def test_members_see_key_status_but_no_forms(client, tenant, saved):
    client.force_login(tenant.member)
    page = client.get(_list()).content.decode()
    assert "OpenAI" in page and "…QRST" in page and "Prefer mine" in page
    assert 'name="secret"' not in page and "Delete key" not in page
    assert SECRET not in page


def test_an_admin_adds_a_checked_key_and_sees_only_its_last_four(client, tenant, openai):
    client.force_login(tenant.admin)
    response = client.post(_save(), {"secret": SECRET, "mode": "only", "verify": "on"}, follow=True)
    page = response.content.decode()
    assert "OpenAI key …QRST checked and saved." in page
    assert SECRET not in page
    key = ProviderKey.objects.get()
    assert (key.mode, key.created_by, key.last_verified_at is not None) == (
        "only",
        tenant.admin,
        True,
    )


def test_a_refused_key_is_reported_and_not_echoed_back(client, tenant, openai, caplog):
    client.force_login(tenant.owner)
    refused = "bad-console-key-5555"
    with caplog.at_level(logging.DEBUG):
        response = client.post(_save(), {"secret": refused, "mode": "prefer", "verify": "on"})
    page = response.content.decode()
    assert refused not in caplog.text
    assert response.status_code == 400
    assert "OpenAI refused this key (HTTP 401)" in page
    assert refused not in page
    assert not ProviderKey.objects.exists()


def test_a_key_can_be_saved_without_checking(client, tenant, openai):
    client.force_login(tenant.admin)
    response = client.post(
        _save(), {"secret": "bad-but-unchecked-1", "mode": "prefer"}, follow=True
    )
    assert "saved without checking" in response.content.decode()
    assert ProviderKey.objects.get().last_verified_at is None


def test_admins_change_the_mode_and_delete_the_key(client, tenant, saved):
    client.force_login(tenant.admin)
    client.post(reverse("dashboard:provider_key_mode", args=["acme", "openai"]), {"mode": "only"})
    assert ProviderKey.objects.get().mode == "only"
    client.post(reverse("dashboard:provider_key_delete", args=["acme", "openai"]))
    assert not ProviderKey.objects.exists()


def test_the_page_never_contains_the_ciphertext(client, tenant, saved):
    client.force_login(tenant.owner)
    page = client.get(_list()).content.decode()
    assert ProviderKey.objects.get().secret_encrypted not in page


def _write_urls(org):
    return [
        (
            "post",
            reverse("dashboard:provider_key_save", args=[org, "openai"]),
            {"secret": "sk-intruder-0000", "mode": "prefer"},
        ),
        ("post", reverse("dashboard:provider_key_mode", args=[org, "openai"]), {"mode": "only"}),
        ("post", reverse("dashboard:provider_key_delete", args=[org, "openai"]), {}),
    ]


def test_members_cannot_change_keys(client, tenant, saved):
    client.force_login(tenant.member)
    for _, url, data in _write_urls("acme"):
        assert client.post(url, data).status_code == 404, url
    key = ProviderKey.objects.get()
    assert (key.last_four, key.mode) == ("QRST", "prefer")


def test_outsiders_get_404_on_every_provider_keys_url(client, tenant, outsider, saved):
    client.force_login(outsider)
    assert client.get(_list()).status_code == 404
    for _, url, data in _write_urls("acme"):
        assert client.post(url, data).status_code == 404, url
    key = ProviderKey.objects.get()
    assert (key.last_four, key.mode) == ("QRST", "prefer")


def test_anonymous_visitors_are_sent_to_log_in(client, tenant, saved):
    urls = [_list()] + [url for _, url, _ in _write_urls("acme")]
    for url in urls:
        response = client.post(url) if url != _list() else client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
    assert ProviderKey.objects.count() == 1


def test_the_nav_links_to_provider_keys(client, tenant):
    client.force_login(tenant.member)
    page = client.get(reverse("dashboard:overview", args=["acme"])).content.decode()
    assert f'href="{_list()}"' in page
