"""Fixtures for billing tests: the fake Stripe and webhook delivery. BYOK tests use
the root conftest's `fake_upstream` (keys starting `bad-` get 401 there)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.billing.fake_stripe import FakeStripe, sign_payload

WEBHOOK_SECRET = "whsec_test_tollgate"
WEBHOOK_URL = "/billing/stripe/webhook/"


@pytest.fixture(scope="session")
def _fake_stripe_server() -> Iterator[FakeStripe]:
    server = FakeStripe()
    yield server
    server.stop()


@pytest.fixture
def fake_stripe(_fake_stripe_server: FakeStripe, settings) -> FakeStripe:
    """Stripe configured and pointed at the local fake."""
    _fake_stripe_server.reset()
    settings.STRIPE_SECRET_KEY = "sk_test_tollgate"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = _fake_stripe_server.url
    return _fake_stripe_server


_counter = iter(range(1, 10**9))


def stripe_event(type_: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_test_{next(_counter):08d}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": 1_800_000_000,
        "livemode": False,
        "type": type_,
        "data": {"object": obj},
    }


def deliver(client, event: dict, *, secret: str = WEBHOOK_SECRET, **sign: Any):
    """POST `event` to the webhook the way Stripe does, signed with `secret`."""
    payload = json.dumps(event)
    return client.post(
        WEBHOOK_URL,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign_payload(payload, secret, **sign),
    )
