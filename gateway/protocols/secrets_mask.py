"""Credentials out of what clients see and what is stored: an upstream that echoes the
key it was sent ("Incorrect API key provided: sk-proj-...") must not hand the
operator's managed key, or another tenant's own key, to the caller or the request log.

Masked: the exact keys the gateway knows it sent, and anything shaped like a vendor's
secret (OpenAI/Anthropic/most vendors' `sk-...`, Google's `AIza...`, xAI's `xai-...`,
Bearer tokens). What remains is the vendors' own display form: the first characters
that name the kind of key, and the last four.
"""

from __future__ import annotations

import re
from typing import Any

_SHAPES = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{8,}|sk_(?:live|test)_[A-Za-z0-9]{8,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|xai-[A-Za-z0-9]{16,}|gsk_[A-Za-z0-9]{16,}|(?<=Bearer )[A-Za-z0-9._\-]{16,})"
)


def _display(secret: str) -> str:
    head = secret[:3] if not secret.startswith("sk-") else secret[: secret.find("-", 3) + 1 or 3]
    return f"{head[:8]}...{secret[-4:]}" if len(secret) > 8 else "****"


def mask_secrets(text: str, known: tuple[str, ...] = ()) -> str:
    """`text` with every known key and every key-shaped string replaced."""
    for secret in known:
        if secret and len(secret) >= 8 and secret in text:
            text = text.replace(secret, _display(secret))
    if "sk" in text or "AIza" in text or "xai-" in text or "gsk_" in text or "Bearer" in text:
        text = _SHAPES.sub(lambda m: _display(m.group(0)), text)
    return text


def mask_in(value: Any, known: tuple[str, ...] = ()) -> Any:
    """A copy of a JSON value with every string masked."""
    if isinstance(value, str):
        return mask_secrets(value, known)
    if isinstance(value, dict):
        return {k: mask_in(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_in(v, known) for v in value]
    return value
