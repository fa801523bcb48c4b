"""Encryption at rest for provider credentials (BYOK keys and managed provider keys).

Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp) through MultiFernet over
`settings.TOLLGATE_ENCRYPTION_KEYS`, newest first: new secrets are encrypted with the
first key, and any listed key decrypts. Rotation: put a new key first, run
`manage.py rotate_secrets` (re-encrypts every stored secret with it), then drop the
old key from the setting.

When TOLLGATE_ENCRYPTION_KEYS is empty (development and the embedded default only;
production refuses to start without it), one key is derived from SECRET_KEY with
HKDF-SHA256. Secrets encrypted that way are lost if SECRET_KEY changes, and anyone
with SECRET_KEY can read them: set real keys before storing anything that matters.
To move from the derived key to real ones, set TOLLGATE_ENCRYPTION_KEYS and run
`manage.py rotate_secrets --from-derived-key` once, with SECRET_KEY unchanged.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

_HKDF_INFO = b"tollgate provider-key encryption v1"


class SecretDecryptionError(ValueError):
    """No configured key decrypts this token (a key was removed before rotation)."""


def _derived_key(secret_key: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(raw)


@functools.lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...], secret_key: str, with_derived: bool) -> MultiFernet:
    try:
        fernets = [Fernet(k.encode()) for k in keys]
    except ValueError:
        raise ImproperlyConfigured(
            "TOLLGATE_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64 bytes "
            'each), comma-separated; make one with `python -c "from cryptography.fernet '
            'import Fernet; print(Fernet.generate_key().decode())"`.'
        ) from None
    # The derived key is used only without real keys, or as an extra decryptor while
    # rotating away from it: otherwise SECRET_KEY alone could forge stored secrets.
    if with_derived or not fernets:
        fernets.append(Fernet(_derived_key(secret_key)))
    return MultiFernet(fernets)


def _current(*, with_derived: bool = False) -> MultiFernet:
    return _multifernet(tuple(settings.TOLLGATE_ENCRYPTION_KEYS), settings.SECRET_KEY, with_derived)


def secret_encrypt(plaintext: str) -> str:
    """Encrypt with the newest key; returns an ASCII token safe to store."""
    return _current().encrypt(plaintext.encode()).decode("ascii")


def secret_decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted with TOLLGATE_ENCRYPTION_KEYS: was a key "
            "removed before `manage.py rotate_secrets` ran? Put it back, rotate, then "
            "remove it."
        ) from exc


def secrets_rotate(*, from_derived_key: bool = False) -> int:
    """Re-encrypt every stored ProviderKey secret and Provider managed key with the
    newest key. Returns how many were rewritten. Safe to run again. All or nothing: if
    any secret cannot be decrypted, nothing is rewritten.
    `from_derived_key` also accepts secrets encrypted with the SECRET_KEY-derived key
    (saved before TOLLGATE_ENCRYPTION_KEYS was set)."""
    from gateway.models import Provider, ProviderKey
    from gateway.signals import provider_keys_changed

    fernet = _current(with_derived=from_derived_key)
    rewritten = 0
    orgs: set[int] = set()
    with transaction.atomic():
        for key in ProviderKey.objects.select_for_update().only(
            "pk", "organisation_id", "secret_encrypted"
        ):
            key.secret_encrypted = _rotate_token(fernet, key.secret_encrypted)
            key.save(update_fields=["secret_encrypted"])
            orgs.add(key.organisation_id)
            rewritten += 1
        for provider in Provider.objects.select_for_update().exclude(api_key_encrypted=""):
            provider.api_key_encrypted = _rotate_token(fernet, provider.api_key_encrypted)
            provider.save(update_fields=["api_key_encrypted"])
            rewritten += 1
        for org_id in sorted(orgs):
            transaction.on_commit(
                functools.partial(
                    provider_keys_changed.send, sender=ProviderKey, organisation_id=org_id
                ),
                robust=True,
            )
    return rewritten


def _rotate_token(fernet: MultiFernet, token: str) -> str:
    try:
        return fernet.rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted with any configured key; nothing was "
            "rotated. Add the key it was encrypted with to TOLLGATE_ENCRYPTION_KEYS."
        ) from exc
