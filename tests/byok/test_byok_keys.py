"""BYOK provider keys: encryption at rest and rotation, saving with verification
against a real HTTP upstream, and the change signal."""

import io
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from gateway.byok import (
    ProviderKeyError,
    ProviderKeyRefused,
    provider_key_delete,
    provider_key_save,
    provider_key_set_mode,
)
from gateway.encryption import (
    SecretDecryptionError,
    secret_decrypt,
    secret_encrypt,
    secrets_rotate,
)
from gateway.models import Protocol, Provider, ProviderKey, ProviderKeyMode
from gateway.signals import provider_keys_changed

SECRET = "sk-proj-CUSTOMER-OWN-KEY-0123456789abcdefWXYZ"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def openai(db, fake_upstream):
    return Provider.objects.create(
        slug="openai", name="OpenAI", protocol=Protocol.OPENAI, base_url=f"{fake_upstream.url}/v1"
    )


@pytest.fixture
def anthropic(db, fake_upstream):
    return Provider.objects.create(
        slug="anthropic",
        name="Anthropic",
        protocol=Protocol.ANTHROPIC,
        base_url=f"{fake_upstream.url}/v1",
    )


@pytest.fixture
def changes():
    seen = []

    def listener(sender, organisation_id, **kwargs):
        seen.append(organisation_id)

    provider_keys_changed.connect(listener)
    yield seen
    provider_keys_changed.disconnect(listener)


def _raw_rows() -> str:
    """Every stored column of the provider key table, read with plain SQL."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM gateway_providerkey")
        return repr(cursor.fetchall())


def test_encryption_round_trips_and_is_not_deterministic(settings):
    settings.TOLLGATE_ENCRYPTION_KEYS = [NEW_KEY]
    a, b = secret_encrypt(SECRET), secret_encrypt(SECRET)
    assert a != b and SECRET not in a
    assert secret_decrypt(a) == SECRET == secret_decrypt(b)


def test_without_configured_keys_a_key_is_derived_from_secret_key(settings):
    settings.TOLLGATE_ENCRYPTION_KEYS = []
    token = secret_encrypt(SECRET)
    assert secret_decrypt(token) == SECRET
    settings.SECRET_KEY = "another secret key entirely, 50 characters long.."
    with pytest.raises(SecretDecryptionError):
        secret_decrypt(token)


def test_a_token_from_a_removed_key_cannot_be_read(settings):
    settings.TOLLGATE_ENCRYPTION_KEYS = [OLD_KEY]
    token = secret_encrypt(SECRET)
    settings.TOLLGATE_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(SecretDecryptionError, match="rotate_secrets"):
        secret_decrypt(token)


def test_rotation_reencrypts_every_stored_secret_with_the_newest_key(
    settings, tenant, openai, changes, django_capture_on_commit_callbacks
):
    settings.TOLLGATE_ENCRYPTION_KEYS = [OLD_KEY]
    provider_key_save(
        organisation=tenant.organisation,
        provider=openai,
        secret=SECRET,
        mode=ProviderKeyMode.PREFER,
        created_by=tenant.owner,
        verify=False,
    )
    openai.api_key_encrypted = secret_encrypt("sk-managed-key-9999")
    openai.save()
    settings.TOLLGATE_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("rotate_secrets", stdout=out)
    assert "Re-encrypted 2 secret(s)." in out.getvalue()
    settings.TOLLGATE_ENCRYPTION_KEYS = [NEW_KEY]  # the old key can go now
    key = ProviderKey.objects.get()
    openai.refresh_from_db()
    assert secret_decrypt(key.secret_encrypted) == SECRET
    assert secret_decrypt(openai.api_key_encrypted) == "sk-managed-key-9999"
    assert changes == [tenant.organisation.pk]


def test_rotation_moves_secrets_off_the_derived_key(settings, tenant, openai):
    settings.TOLLGATE_ENCRYPTION_KEYS = []
    provider_key_save(
        organisation=tenant.organisation,
        provider=openai,
        secret=SECRET,
        mode=ProviderKeyMode.PREFER,
        created_by=tenant.owner,
        verify=False,
    )
    settings.TOLLGATE_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(SecretDecryptionError):
        secrets_rotate()
    assert secrets_rotate(from_derived_key=True) == 1
    assert secret_decrypt(ProviderKey.objects.get().secret_encrypted) == SECRET


def test_a_saved_key_is_never_stored_in_plaintext(settings, tenant, openai):
    settings.TOLLGATE_ENCRYPTION_KEYS = [NEW_KEY]
    key = provider_key_save(
        organisation=tenant.organisation,
        provider=openai,
        secret=SECRET,
        mode=ProviderKeyMode.ONLY,
        created_by=tenant.owner,
        verify=False,
    )
    raw = _raw_rows()
    assert SECRET not in raw
    assert SECRET[4:-4] not in raw
    assert key.last_four == "WXYZ"
    assert secret_decrypt(ProviderKey.objects.get().secret_encrypted) == SECRET


def test_verification_calls_the_provider_with_the_key(tenant, openai, anthropic, fake_upstream):
    saved = provider_key_save(
        organisation=tenant.organisation,
        provider=openai,
        secret=SECRET,
        mode=ProviderKeyMode.PREFER,
        created_by=tenant.owner,
        verify=True,
    )
    provider_key_save(
        organisation=tenant.organisation,
        provider=anthropic,
        secret="sk-ant-own-key-1234",
        mode=ProviderKeyMode.PREFER,
        created_by=tenant.owner,
        verify=True,
    )
    assert saved.last_verified_at is not None
    first, second = fake_upstream.app.requests
    assert (first["method"], first["path"]) == ("GET", "/v1/models")
    assert first["headers"]["authorization"] == f"Bearer {SECRET}"
    assert second["headers"]["x-api-key"] == "sk-ant-own-key-1234"
    assert second["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in second["headers"]


@pytest.mark.parametrize("provider_name", ["openai", "anthropic"])
def test_a_key_the_provider_refuses_is_not_saved_and_the_error_says_so(
    request, tenant, provider_name, caplog
):
    provider = request.getfixturevalue(provider_name)
    refused = "bad-key-the-provider-refuses-7777"
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderKeyRefused) as info:
        provider_key_save(
            organisation=tenant.organisation,
            provider=provider,
            secret=refused,
            mode=ProviderKeyMode.PREFER,
            created_by=tenant.owner,
            verify=True,
        )
    assert f"{provider.name} refused this key (HTTP 401)" in str(info.value)
    assert refused not in str(info.value) and "7777" not in str(info.value)
    assert refused not in caplog.text
    assert not ProviderKey.objects.exists()


def test_an_unreachable_provider_is_reported_as_unchecked(tenant, db):
    gone = Provider.objects.create(
        slug="gone", name="Gone", protocol=Protocol.OPENAI, base_url="http://127.0.0.1:9/v1"
    )
    with pytest.raises(ProviderKeyError, match="Could not reach Gone"):
        provider_key_save(
            organisation=tenant.organisation,
            provider=gone,
            secret=SECRET,
            mode=ProviderKeyMode.PREFER,
            created_by=tenant.owner,
            verify=True,
        )
    assert not ProviderKey.objects.exists()


@pytest.mark.parametrize(
    ("secret", "mode"), [("", "prefer"), ("two words", "prefer"), (SECRET, "sometimes")]
)
def test_it_refuses_what_cannot_be_a_key(tenant, openai, secret, mode):
    with pytest.raises(ProviderKeyError):
        provider_key_save(
            organisation=tenant.organisation,
            provider=openai,
            secret=secret,
            mode=mode,
            created_by=tenant.owner,
            verify=False,
        )


def test_replacing_changing_mode_and_deleting_announce_each_change(
    tenant, openai, changes, django_capture_on_commit_callbacks
):
    org = tenant.organisation
    with django_capture_on_commit_callbacks(execute=True):
        provider_key_save(
            organisation=org,
            provider=openai,
            secret=SECRET,
            mode="prefer",
            created_by=tenant.owner,
            verify=False,
        )
        key = provider_key_save(
            organisation=org,
            provider=openai,
            secret="sk-second-key-8888",
            mode="only",
            created_by=tenant.admin,
            verify=False,
        )
    assert ProviderKey.objects.count() == 1
    assert (key.last_four, key.mode, key.created_by) == ("8888", "only", tenant.admin)
    assert secret_decrypt(ProviderKey.objects.get().secret_encrypted) == "sk-second-key-8888"
    with django_capture_on_commit_callbacks(execute=True):
        provider_key_set_mode(provider_key=key, mode="prefer")
        assert provider_key_delete(organisation=org, provider=openai) is True
        assert provider_key_delete(organisation=org, provider=openai) is False
    assert not ProviderKey.objects.exists()
    assert changes == [org.pk] * 4


def test_nothing_is_announced_before_commit(
    tenant, openai, changes, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        provider_key_save(
            organisation=tenant.organisation,
            provider=openai,
            secret=SECRET,
            mode="prefer",
            created_by=tenant.owner,
            verify=False,
        )
    assert changes == []
