"""The one place that configures the Stripe SDK.

The API version is pinned here, not left to the SDK default, so upgrading the `stripe`
package cannot silently change the shape of what Stripe sends and returns. It is the
version this SDK release was generated against (stripe==16.1.0); the webhook endpoint
in the Stripe dashboard should be created with the same version. To move to a newer
version, read Stripe's upgrade notes, change STRIPE_API_VERSION and the pin together.

`settings.STRIPE_API_BASE`, when set, points the SDK at another host (tests use a local
fake). The secret key is passed per call rather than stored on the module.
"""

from __future__ import annotations

import time
from typing import Any

import stripe
from django.conf import settings

STRIPE_API_VERSION = "2026-10-28.endive"


class StripeNotConfigured(RuntimeError):
    pass


def stripe_configure() -> Any:
    """The `stripe` module with the pinned version and the configured API base."""
    stripe.api_version = STRIPE_API_VERSION
    stripe.api_base = settings.STRIPE_API_BASE or stripe.DEFAULT_API_BASE
    stripe.max_network_retries = 2  # safe: every create carries an idempotency key
    return stripe


def stripe_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def checkout_session_create(*, idempotency_key: str, **params: Any) -> dict[str, Any]:
    """Create a Checkout Session; returns it as a plain dict."""
    if not stripe_enabled():
        raise StripeNotConfigured("Stripe is not configured (STRIPE_SECRET_KEY is empty).")
    sdk = stripe_configure()
    session = sdk.checkout.Session.create(
        api_key=settings.STRIPE_SECRET_KEY, idempotency_key=idempotency_key, **params
    )
    return session.to_dict()


WEBHOOK_TOLERANCE_SECONDS = 300  # Stripe's default, both ways


def webhook_event_verify(*, payload: bytes, signature: str | None) -> None:
    """Raise `stripe.SignatureVerificationError` (or ValueError for a malformed body)
    unless `payload` was signed with STRIPE_WEBHOOK_SECRET within Stripe's tolerance.
    The SDK checks only that a signature is not too old; one dated in the future
    (a replay window an attacker with a leaked signature could widen) is refused too."""
    sdk = stripe_configure()
    sdk.Webhook.construct_event(
        payload, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=WEBHOOK_TOLERANCE_SECONDS
    )
    stamps = [
        part.partition("=")[2] for part in (signature or "").split(",") if part.startswith("t=")
    ]
    if not stamps or not stamps[0].isdigit():
        raise sdk.SignatureVerificationError("No timestamp in the signature", signature)
    if int(stamps[0]) > time.time() + WEBHOOK_TOLERANCE_SECONDS:
        raise sdk.SignatureVerificationError("Timestamp in the future", signature)
