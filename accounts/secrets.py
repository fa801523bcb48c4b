"""API key secrets: generation and hashing. The one place that knows the format."""

from __future__ import annotations

import hashlib
import secrets
import string

from django.conf import settings

_ALPHABET = string.ascii_letters + string.digits
SECRET_RANDOM_LENGTH = 40  # ~238 bits
PREFIX_RANDOM_LENGTH = 8


def api_secret_generate() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_RANDOM_LENGTH))
    return f"{settings.TOLLGATE_KEY_PREFIX}{body}"


def api_secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_secret_display_prefix(secret: str) -> str:
    return secret[: len(settings.TOLLGATE_KEY_PREFIX) + PREFIX_RANDOM_LENGTH]
