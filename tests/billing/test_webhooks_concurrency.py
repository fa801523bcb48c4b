"""Concurrent deliveries of Stripe events: real threads, real transactions. On
PostgreSQL the UNIQUE event id and the top-up row lock do the work; SQLite (a file,
BEGIN IMMEDIATE) serialises the writers."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from billing.models import EntryKind, LedgerEntry, StripeEvent
from billing.selectors import balance_get
from billing.services import balance_reconcile
from billing.topups import topup_checkout_create
from tests.billing.conftest import deliver, stripe_event

USD = 1_000_000_000
THREADS = 8


def _deliver_all_at_once(events: list[dict]) -> list[int]:
    barrier = threading.Barrier(len(events))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def worker(event: dict) -> None:
        try:
            barrier.wait()
            statuses.append(deliver(Client(), event).status_code)
        except BaseException as exc:  # surfaced below, with the test's failure
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return statuses


@pytest.fixture
def paid_session(transactional_db, tenant, fake_stripe, settings):
    settings.TOLLGATE_LAUNCH_WINDOW_END = ""
    settings.TOLLGATE_TOPUP_FEE_PERCENT = Decimal("5")
    started = topup_checkout_create(
        organisation=tenant.organisation,
        amount_usd=Decimal("20"),
        created_by=tenant.owner,
        success_url="https://t.test/s",
        cancel_url="https://t.test/c",
    )
    return fake_stripe.complete(started.topup.stripe_session_id)


def test_concurrent_deliveries_of_one_event_credit_once(tenant, paid_session):
    event = stripe_event("checkout.session.completed", paid_session)
    statuses = _deliver_all_at_once([event] * THREADS)
    assert statuses == [200] * THREADS
    assert StripeEvent.objects.count() == 1
    assert LedgerEntry.objects.filter(kind=EntryKind.TOPUP).count() == 1
    assert balance_get(organisation=tenant.organisation) == 19 * USD
    assert balance_reconcile() == []


def test_concurrent_different_events_for_one_payment_credit_once(tenant, paid_session):
    events = [
        stripe_event(kind, paid_session)
        for kind in ["checkout.session.completed", "checkout.session.async_payment_succeeded"]
        * (THREADS // 2)
    ]
    statuses = _deliver_all_at_once(events)
    assert statuses == [200] * THREADS
    assert StripeEvent.objects.count() == THREADS
    assert LedgerEntry.objects.filter(kind=EntryKind.TOPUP).count() == 1
    assert balance_get(organisation=tenant.organisation) == 19 * USD
    assert balance_reconcile() == []
