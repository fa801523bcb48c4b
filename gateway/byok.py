"""BYOK provider keys: saving (encrypted, optionally checked against the provider),
deleting, changing the mode, and listing an organisation's key status.

The plaintext key exists only in the arguments of `provider_key_save` and in the one
verification request; it is never logged, stored or put in an error message (some
providers echo part of a refused key in their error body, so that body is not shown).
Every change sends `gateway.signals.provider_keys_changed` after commit so the hot
path's cache of keys refreshes.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx2
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organisation, User
from gateway.encryption import secret_encrypt
from gateway.models import Protocol, Provider, ProviderKey, ProviderKeyMode
from gateway.signals import provider_keys_changed

VERIFY_TIMEOUT_SECONDS = 10.0
ANTHROPIC_VERSION = "2023-06-01"
SECRET_MAX_LENGTH = 1000


class ProviderKeyError(ValueError):
    """A key that cannot be saved as given; the message says what to do."""


class ProviderKeyRefused(ProviderKeyError):
    """The provider answered 401 or 403 to the key."""


def _send_changed(organisation_id: int) -> None:
    transaction.on_commit(
        lambda: provider_keys_changed.send(sender=ProviderKey, organisation_id=organisation_id),
        robust=True,  # a failing cache refresh must not undo a saved key
    )


def _headers_for(provider: Provider, secret: str) -> dict[str, str]:
    headers = {
        str(k): str(v)
        for k, v in (provider.extra_headers or {}).items()
        if str(k).lower() not in {"authorization", "x-api-key"}
    }
    if provider.protocol == Protocol.ANTHROPIC:
        headers["x-api-key"] = secret
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    else:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def provider_key_verify(*, provider: Provider, secret: str) -> None:
    """One cheap authenticated call (GET {base_url}/models). Raises ProviderKeyRefused
    on 401/403, ProviderKeyError if the provider could not be asked."""
    url = f"{provider.base_url.rstrip('/')}/models"
    try:
        response = httpx2.get(
            url, headers=_headers_for(provider, secret), timeout=VERIFY_TIMEOUT_SECONDS
        )
    except httpx2.HTTPError as exc:
        raise ProviderKeyError(
            f"Could not reach {provider.name} to check the key ({type(exc).__name__}). "
            "Try again, or save it without checking."
        ) from None
    if response.status_code in (401, 403):
        raise ProviderKeyRefused(
            f"{provider.name} refused this key (HTTP {response.status_code}). Check that "
            "you copied the whole key, that it is active, and that it belongs to "
            f"{provider.name}."
        )
    if not response.is_success:
        raise ProviderKeyError(
            f"{provider.name} answered HTTP {response.status_code} when the key was "
            "checked, so it could not be verified. Try again, or save it without checking."
        )


def provider_key_save(
    *,
    organisation: Organisation,
    provider: Provider,
    secret: str,
    mode: ProviderKeyMode | str,
    created_by: User | None,
    verify: bool,
) -> ProviderKey:
    """Add or replace the organisation's key for `provider`, encrypted at rest. With
    `verify`, the key is first checked against the provider and not saved if refused."""
    secret = secret.strip()
    if not secret:
        raise ProviderKeyError("Paste the key from your provider account.")
    if len(secret) > SECRET_MAX_LENGTH or any(c.isspace() for c in secret):
        raise ProviderKeyError("That does not look like an API key: it has spaces or is too long.")
    if mode not in ProviderKeyMode.values:
        raise ProviderKeyError("Choose how the key is used: prefer mine, or mine only.")
    if not provider.enabled:
        raise ProviderKeyError(f"{provider.name} is not available.")
    verified_at = None
    if verify:
        provider_key_verify(provider=provider, secret=secret)
        verified_at = timezone.now()
    with transaction.atomic():
        key, _ = ProviderKey.objects.update_or_create(
            organisation=organisation,
            provider=provider,
            defaults={
                "secret_encrypted": secret_encrypt(secret),
                "last_four": secret[-4:],
                "mode": str(mode),
                "created_by": created_by,
                "last_verified_at": verified_at,
            },
        )
        _send_changed(organisation.pk)
    return key


def provider_key_set_mode(*, provider_key: ProviderKey, mode: ProviderKeyMode | str) -> ProviderKey:
    if mode not in ProviderKeyMode.values:
        raise ProviderKeyError("Choose how the key is used: prefer mine, or mine only.")
    with transaction.atomic():
        provider_key.mode = str(mode)
        provider_key.save(update_fields=["mode", "updated_at"])
        _send_changed(provider_key.organisation_id)
    return provider_key


def provider_key_delete(*, organisation: Organisation, provider: Provider) -> bool:
    """Remove the organisation's key for `provider`; False if there was none."""
    with transaction.atomic():
        deleted, _ = ProviderKey.objects.filter(
            organisation=organisation, provider=provider
        ).delete()
        if deleted:
            _send_changed(organisation.pk)
    return bool(deleted)


@dataclass(frozen=True)
class ProviderKeyStatus:
    provider: Provider
    key: ProviderKey | None  # metadata only: last four, mode, verified time


def provider_key_statuses(*, organisation: Organisation) -> list[ProviderKeyStatus]:
    """Every enabled provider (and any disabled one the organisation still has a key
    for, so it can be deleted) with the organisation's key for it, if any."""
    keys = {
        k.provider_id: k
        for k in ProviderKey.objects.filter(organisation=organisation)
        .defer("secret_encrypted")
        .select_related("created_by")
    }
    return [
        ProviderKeyStatus(provider=p, key=keys.get(p.pk))
        for p in Provider.objects.filter(Q(enabled=True) | Q(pk__in=list(keys))).order_by("name")
    ]
