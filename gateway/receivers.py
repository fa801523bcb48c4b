"""Cache invalidation receivers. Invalidation is not business logic: these only tell
every gateway worker to drop what changed, after the change committed."""

from __future__ import annotations

from collections.abc import Collection

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from accounts.models import ApiKey, Group, Organisation
from accounts.signals import api_key_changed
from billing.models import EntryKind
from billing.signals import balance_changed
from gateway.invalidation import invalidation_publish
from gateway.models import Deployment, Model, ModelAlias, Provider, Router
from gateway.signals import provider_keys_changed

_USAGE_KINDS = {EntryKind.USAGE.value, EntryKind.BYOK_FEE.value}


@receiver(api_key_changed)
def _key_changed(sender: object, secret_hash: str, **kwargs: object) -> None:
    invalidation_publish("key", secret_hash)


@receiver(post_save, sender=ApiKey)
def _key_saved(sender: type[ApiKey], instance: ApiKey, created: bool, **kwargs: object) -> None:
    if not created:  # admin edits of group, expiry or limits
        transaction.on_commit(lambda: invalidation_publish("key", instance.secret_hash))


def _catalog_changed(**kwargs: object) -> None:
    transaction.on_commit(lambda: invalidation_publish("catalog"))


for _model in (Provider, Model, ModelAlias, Deployment, Group, Router):
    post_save.connect(_catalog_changed, sender=_model, dispatch_uid=f"catalog-save-{_model}")
    post_delete.connect(_catalog_changed, sender=_model, dispatch_uid=f"catalog-del-{_model}")
m2m_changed.connect(_catalog_changed, sender=Model.groups.through, dispatch_uid="catalog-m2m")
m2m_changed.connect(_catalog_changed, sender=Router.groups.through, dispatch_uid="router-m2m")


@receiver(post_save, sender=Organisation)
def _organisation_saved(
    sender: type[Organisation], instance: Organisation, **kwargs: object
) -> None:
    # Suspension is part of every cached key of the organisation.
    secret_hashes = list(instance.api_keys.values_list("secret_hash", flat=True))

    def publish() -> None:
        for secret_hash in secret_hashes:
            invalidation_publish("key", secret_hash)

    transaction.on_commit(publish)


@receiver(balance_changed)
def _balance_changed(
    sender: object,
    organisation_ids: list[int],
    kinds: Collection[str] = (),
    **kwargs: object,
) -> None:
    if kinds and set(kinds) <= _USAGE_KINDS:
        return  # the usage flusher's own debits: the credit store already counted them
    for organisation_id in organisation_ids:
        invalidation_publish("credit", str(organisation_id))


@receiver(provider_keys_changed)
def _provider_keys_changed(sender: object, organisation_id: int, **kwargs: object) -> None:
    invalidation_publish("byok", str(organisation_id))
