"""Writes for accounts: organisations, memberships, API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiKey, Group, Organisation
from accounts.secrets import api_secret_display_prefix, api_secret_generate, api_secret_hash
from accounts.signals import api_key_changed


class ApiKeyError(ValueError):
    pass


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    secret: str  # plaintext: exists only in this return value


def api_key_create(
    *,
    organisation: Organisation,
    name: str,
    group: Group | None = None,
    created_by=None,
    expires_at: datetime | None = None,
    spend_limit_total_nano: int | None = None,
    spend_limit_daily_nano: int | None = None,
    spend_limit_monthly_nano: int | None = None,
) -> CreatedApiKey:
    """Create a key; the returned plaintext secret is never stored anywhere."""
    group = group or organisation.default_group
    if group is None:
        raise ApiKeyError("The organisation has no default group; choose a group.")
    if not organisation.allowed_groups.filter(pk=group.pk).exists():
        raise ApiKeyError(f"Group '{group.slug}' is not available to this organisation.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("The expiry must be in the future.")
    name = name.strip()
    if not name:
        raise ApiKeyError("Give the key a name.")
    for _ in range(5):  # a prefix collision is astronomically rare; retry anyway
        secret = api_secret_generate()
        key = ApiKey(
            organisation=organisation,
            name=name,
            group=group,
            secret_hash=api_secret_hash(secret),
            prefix=api_secret_display_prefix(secret),
            last_four=secret[-4:],
            created_by=created_by,
            expires_at=expires_at,
            spend_limit_total_nano=spend_limit_total_nano,
            spend_limit_daily_nano=spend_limit_daily_nano,
            spend_limit_monthly_nano=spend_limit_monthly_nano,
        )
        key.full_clean()
        try:
            with transaction.atomic():
                key.save()
        except IntegrityError:
            continue
        return CreatedApiKey(api_key=key, secret=secret)
    raise ApiKeyError("Could not generate a unique key; try again.")


def api_key_revoke(*, api_key: ApiKey, revoked_by=None) -> ApiKey:
    """Revoke at once: the row is marked, and every gateway worker drops the key from
    its caches through the invalidation signal (sent after commit)."""
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at", "updated_at"])
        transaction.on_commit(
            lambda: api_key_changed.send(sender=ApiKey, secret_hash=locked.secret_hash)
        )
    return locked


def api_key_update_group(*, api_key: ApiKey, group: Group) -> ApiKey:
    with transaction.atomic():
        api_key.group = group
        api_key.save(update_fields=["group", "updated_at"])
        transaction.on_commit(
            lambda: api_key_changed.send(sender=ApiKey, secret_hash=api_key.secret_hash)
        )
    return api_key
