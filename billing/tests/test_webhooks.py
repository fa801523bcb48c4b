"""Stripe webhooks: signed events, replays, out-of-order delivery, refunds, disputes."""

import json
from decimal import Decimal

import pytest

from billing.models import (
    EntryKind,
    LedgerEntry,
    StripeEvent,
    StripeEventOutcome,
    TopUp,
    TopUpStatus,
)
from billing.selectors import balance_get, ledger_sum
from billing.services import balance_reconcile
from billing.tests.conftest import WEBHOOK_SECRET, WEBHOOK_URL, deliver, stripe_event
from billing.tests.fake_stripe import sign_payload
from billing.topups import topup_checkout_create

pytestmark = pytest.mark.django_db

USD = 1_000_000_000


@pytest.fixture(autouse=True)
def _standard_fee(settings):
    settings.TOLLGATE_LAUNCH_WINDOW_END = ""
    settings.TOLLGATE_TOPUP_FEE_PERCENT = Decimal("5")


@pytest.fixture
def topup(tenant, fake_stripe) -> TopUp:
    """A $20 top-up whose checkout was opened (fee $1, credit $19)."""
    started = topup_checkout_create(
        organisation=tenant.organisation,
        amount_usd=Decimal("20"),
        created_by=tenant.admin,
        success_url="https://t.test/s",
        cancel_url="https://t.test/c",
    )
    return started.topup


def _paid_session(fake_stripe, topup, payment_status="paid"):
    return fake_stripe.complete(topup.stripe_session_id, payment_status=payment_status)


def _charge(session, amount_refunded):
    return {
        "id": "ch_test_1",
        "object": "charge",
        "amount": session["amount_total"],
        "amount_refunded": amount_refunded,
        "payment_intent": session["payment_intent"],
        "refunded": amount_refunded == session["amount_total"],
    }


def _dispute(session, amount):
    return {
        "id": "dp_test_1",
        "object": "dispute",
        "amount": amount,
        "charge": "ch_test_1",
        "payment_intent": session["payment_intent"],
        "status": "needs_response",
    }


def _balance(tenant):
    return balance_get(organisation=tenant.organisation)


def test_completed_checkout_credits_amount_minus_fee(client, tenant, topup, fake_stripe):
    event = stripe_event("checkout.session.completed", _paid_session(fake_stripe, topup))
    response = deliver(client, event)
    assert response.status_code == 200
    assert response.json()["outcome"] == StripeEventOutcome.CREDITED
    assert _balance(tenant) == 19 * USD
    entries = {e.kind: e.amount_nano for e in LedgerEntry.objects.all()}
    assert entries == {EntryKind.TOPUP: 20 * USD, EntryKind.FEE: -1 * USD}
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PAID and topup.stripe_payment_intent_id.startswith("pi_")
    row = StripeEvent.objects.get(stripe_id=event["id"])
    assert (row.type, row.topup, row.outcome) == (
        "checkout.session.completed",
        topup,
        StripeEventOutcome.CREDITED,
    )


def test_a_bad_signature_is_refused_and_credits_nothing(client, tenant, topup, fake_stripe):
    event = stripe_event("checkout.session.completed", _paid_session(fake_stripe, topup))
    assert deliver(client, event, secret="whsec_someone_else").status_code == 400
    assert client.post(WEBHOOK_URL, data="{}", content_type="application/json").status_code == 400
    stale = deliver(client, event, timestamp=1_500_000_000)  # outside Stripe's tolerance
    assert stale.status_code == 400
    assert _balance(tenant) == 0
    assert not StripeEvent.objects.exists()


def test_a_tampered_body_is_refused(client, tenant, topup, fake_stripe):
    event = stripe_event("checkout.session.completed", _paid_session(fake_stripe, topup))
    signature = sign_payload(json.dumps(event), WEBHOOK_SECRET)
    event["data"]["object"]["amount_total"] = 999_999
    response = client.post(
        WEBHOOK_URL,
        data=json.dumps(event),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )
    assert response.status_code == 400
    assert _balance(tenant) == 0


def test_without_a_webhook_secret_every_event_is_refused(
    client, tenant, topup, fake_stripe, settings
):
    event = stripe_event("checkout.session.completed", _paid_session(fake_stripe, topup))
    settings.STRIPE_WEBHOOK_SECRET = ""
    assert deliver(client, event, secret="").status_code == 400
    assert _balance(tenant) == 0


def test_the_webhook_accepts_only_post(client):
    assert client.get(WEBHOOK_URL).status_code == 405


def test_a_replayed_event_credits_once(client, tenant, topup, fake_stripe):
    event = stripe_event("checkout.session.completed", _paid_session(fake_stripe, topup))
    for _ in range(3):
        assert deliver(client, event).status_code == 200
    assert _balance(tenant) == 19 * USD
    assert StripeEvent.objects.count() == 1


def test_two_events_saying_paid_credit_once(client, tenant, topup, fake_stripe):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    deliver(client, stripe_event("checkout.session.async_payment_succeeded", session))
    assert _balance(tenant) == 19 * USD
    assert StripeEvent.objects.count() == 2


def test_async_payment_credits_only_when_it_succeeds(client, tenant, topup, fake_stripe):
    pending = _paid_session(fake_stripe, topup, payment_status="unpaid")
    response = deliver(client, stripe_event("checkout.session.completed", pending))
    assert response.json()["outcome"] == StripeEventOutcome.RECORDED
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PROCESSING
    assert _balance(tenant) == 0
    paid = dict(pending, payment_status="paid")
    deliver(client, stripe_event("checkout.session.async_payment_succeeded", paid))
    assert _balance(tenant) == 19 * USD


def test_a_failed_async_payment_is_marked_failed_and_credits_nothing(
    client, tenant, topup, fake_stripe
):
    pending = _paid_session(fake_stripe, topup, payment_status="unpaid")
    deliver(client, stripe_event("checkout.session.completed", pending))
    deliver(client, stripe_event("checkout.session.async_payment_failed", pending))
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.FAILED
    assert _balance(tenant) == 0


def test_a_late_failure_does_not_undo_a_payment(client, tenant, topup, fake_stripe):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    deliver(client, stripe_event("checkout.session.async_payment_failed", session))
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PAID
    assert _balance(tenant) == 19 * USD


def test_an_amount_that_does_not_match_the_top_up_is_rejected(client, tenant, topup, fake_stripe):
    session = dict(_paid_session(fake_stripe, topup), amount_total=100)
    response = deliver(client, stripe_event("checkout.session.completed", session))
    assert response.status_code == 200  # acknowledged (Stripe must not retry), not credited
    assert response.json()["outcome"] == StripeEventOutcome.REJECTED
    assert _balance(tenant) == 0


def test_another_organisations_id_in_metadata_is_rejected(
    client, tenant, outsider, topup, fake_stripe
):
    session = _paid_session(fake_stripe, topup)
    other = outsider.memberships.get().organisation
    session["metadata"] = dict(session["metadata"], organisation_id=str(other.pk))
    response = deliver(client, stripe_event("checkout.session.completed", session))
    assert response.json()["outcome"] == StripeEventOutcome.REJECTED
    assert _balance(tenant) == 0
    assert balance_get(organisation=other) == 0


def test_events_for_sessions_that_are_not_top_ups_are_acknowledged(client, tenant, fake_stripe):
    session = {
        "id": "cs_other",
        "object": "checkout.session",
        "amount_total": 500,
        "currency": "usd",
        "payment_status": "paid",
        "metadata": {},
        "client_reference_id": "order-17",
        "payment_intent": "pi_other",
    }
    response = deliver(client, stripe_event("checkout.session.completed", session))
    assert response.json()["outcome"] == StripeEventOutcome.UNMATCHED
    other = deliver(client, stripe_event("customer.created", {"id": "cus_1"}))
    assert other.json()["outcome"] == StripeEventOutcome.IGNORED
    assert not LedgerEntry.objects.exists()


def test_an_expired_checkout_is_marked_expired(client, topup, fake_stripe):
    session = dict(fake_stripe.sessions[topup.stripe_session_id], status="expired")
    deliver(client, stripe_event("checkout.session.expired", session))
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.EXPIRED


def test_a_full_refund_takes_back_the_credit_and_returns_the_fee(
    client, tenant, topup, fake_stripe
):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    response = deliver(client, stripe_event("charge.refunded", _charge(session, 2000)))
    assert response.json()["outcome"] == StripeEventOutcome.DEBITED
    refunds = LedgerEntry.objects.filter(kind=EntryKind.REFUND)
    assert [e.amount_nano for e in refunds] == [-20 * USD]
    assert _balance(tenant) == 0


def test_partial_refunds_post_only_the_refunded_difference(client, tenant, topup, fake_stripe):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    deliver(client, stripe_event("charge.refunded", _charge(session, 500)))
    assert _balance(tenant) == 19 * USD - 5 * USD + USD // 4  # $5 back, 25c of the fee too
    deliver(client, stripe_event("charge.refunded", _charge(session, 1200)))
    # A stale event (an earlier cumulative amount) arriving late changes nothing.
    deliver(client, stripe_event("charge.refunded", _charge(session, 500)))
    refunds = sorted(e.amount_nano for e in LedgerEntry.objects.filter(kind=EntryKind.REFUND))
    assert refunds == [-7 * USD, -5 * USD]
    assert _balance(tenant) == 19 * USD - 12 * USD + USD * 12 // 20
    assert balance_reconcile() == []


def test_a_dispute_becomes_a_negative_entry(client, tenant, topup, fake_stripe):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    response = deliver(client, stripe_event("charge.dispute.created", _dispute(session, 2000)))
    assert response.json()["outcome"] == StripeEventOutcome.DEBITED
    [entry] = LedgerEntry.objects.filter(kind=EntryKind.REFUND)
    assert entry.amount_nano == -20 * USD and entry.reference == "dp_test_1"
    assert _balance(tenant) == 0


def test_a_refund_that_overtakes_its_payment_is_posted_after_it(client, tenant, topup, fake_stripe):
    session = _paid_session(fake_stripe, topup)
    early = deliver(client, stripe_event("charge.refunded", _charge(session, 2000)))
    assert early.json()["outcome"] == StripeEventOutcome.DEFERRED
    assert not LedgerEntry.objects.exists()
    deliver(client, stripe_event("checkout.session.completed", session))
    assert _balance(tenant) == 0
    assert LedgerEntry.objects.filter(kind=EntryKind.TOPUP).count() == 1
    assert LedgerEntry.objects.filter(kind=EntryKind.REFUND).count() == 1
    early_row = StripeEvent.objects.get(type="charge.refunded")
    assert (early_row.outcome, early_row.topup) == (StripeEventOutcome.DEBITED, topup)


def test_a_refund_known_before_the_async_payment_succeeds_waits_for_it(
    client, tenant, topup, fake_stripe
):
    pending = _paid_session(fake_stripe, topup, payment_status="unpaid")
    deliver(client, stripe_event("checkout.session.completed", pending))
    refund = deliver(client, stripe_event("charge.refunded", _charge(pending, 1000)))
    assert refund.json()["outcome"] == StripeEventOutcome.RECORDED
    assert _balance(tenant) == 0
    deliver(
        client,
        stripe_event(
            "checkout.session.async_payment_succeeded", dict(pending, payment_status="paid")
        ),
    )
    assert _balance(tenant) == 19 * USD - 10 * USD + USD // 2
    assert ledger_sum(organisation=tenant.organisation) == _balance(tenant)


def test_a_dispute_and_a_refund_never_take_back_more_than_was_paid(
    client, tenant, topup, fake_stripe
):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    deliver(client, stripe_event("charge.refunded", _charge(session, 500)))
    deliver(client, stripe_event("charge.dispute.created", _dispute(session, 2000)))
    taken = -sum(e.amount_nano for e in LedgerEntry.objects.filter(kind=EntryKind.REFUND))
    assert taken == 20 * USD
    assert _balance(tenant) == 0
