"""Stripe webhooks: signed events, replays, out-of-order delivery, refunds, disputes."""

import json
import time
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

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
from billing.topups import topup_checkout_create
from tests.billing.conftest import WEBHOOK_SECRET, WEBHOOK_URL, deliver, stripe_event
from tests.billing.fake_stripe import sign_payload
from tests.billing.test_webhooks_concurrency import _deliver_all_at_once

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


def _balance_transaction(amount, category):
    """A dispute's balance transaction: the withdrawal (with Stripe's $15 fee) or the
    reinstatement of funds."""
    fee = 1500 if category == "dispute" else 0
    return {
        "id": f"txn_test_{category}",
        "object": "balance_transaction",
        "amount": amount,
        "currency": "usd",
        "fee": fee,
        "net": amount - fee,
        "reporting_category": category,
        "type": "adjustment",
        "status": "available",
    }


def _dispute(session, amount, *, status="needs_response", reinstated=0, dispute_id="dp_test_1"):
    """A Stripe Dispute object as webhook events carry it: charge.dispute.created,
    .closed and .funds_reinstated all send the whole dispute, `status` saying where it
    stands ("won" or "lost" once closed) and `balance_transactions` the funds withdrawn
    and any reinstated."""
    moves = [_balance_transaction(-amount, "dispute")]
    if reinstated:
        moves.append(_balance_transaction(reinstated, "dispute_reversal"))
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": moves,
        "charge": "ch_test_1",
        "created": 1_800_000_000,
        "currency": "usd",
        "evidence_details": {
            "due_by": 1_800_900_000,
            "has_evidence": status != "needs_response",
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": session["payment_intent"],
        "reason": "fraudulent",
        "status": status,
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
    ahead = deliver(client, event, timestamp=int(time.time()) + 3600)  # an hour ahead
    assert ahead.status_code == 400
    assert _balance(tenant) == 0
    assert not StripeEvent.objects.exists()


def test_a_signature_a_minute_ahead_is_clock_skew_and_accepted(client, tenant, topup, fake_stripe):
    event = stripe_event("checkout.session.completed", _paid_session(fake_stripe, topup))

    assert deliver(client, event, timestamp=int(time.time()) + 60).status_code == 200
    assert _balance(tenant) > 0


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


# --- Disputes the merchant wins -------------------------------------------------


def _won(session, amount=2000, **kwargs):
    return _dispute(session, amount, status="won", reinstated=amount, **kwargs)


def _paid_and_disputed(client, fake_stripe, topup, amount=2000):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    deliver(client, stripe_event("charge.dispute.created", _dispute(session, amount)))
    return session


def _entries(kind):
    return sorted(e.amount_nano for e in LedgerEntry.objects.filter(kind=kind))


@pytest.mark.parametrize(
    "first, second",
    [
        ("charge.dispute.funds_reinstated", "charge.dispute.closed"),
        ("charge.dispute.closed", "charge.dispute.funds_reinstated"),
    ],
)
def test_a_won_dispute_gives_the_credit_back_once(
    client, tenant, topup, fake_stripe, first, second
):
    session = _paid_and_disputed(client, fake_stripe, topup)
    assert _balance(tenant) == 0
    won = stripe_event(first, _won(session))

    response = deliver(client, won)
    assert response.json()["outcome"] == StripeEventOutcome.CREDITED
    assert _balance(tenant) == 19 * USD
    deliver(client, won)  # Stripe's retry of the same event
    other = deliver(client, stripe_event(second, _won(session)))
    assert other.json()["outcome"] == StripeEventOutcome.RECORDED

    assert _balance(tenant) == 19 * USD
    assert _entries(EntryKind.REFUND) == [-20 * USD, 20 * USD]
    assert _entries(EntryKind.FEE) == [-1 * USD, -1 * USD, 1 * USD]
    given_back = LedgerEntry.objects.get(kind=EntryKind.REFUND, amount_nano__gt=0)
    assert given_back.reference == "dp_test_1"
    assert given_back.memo == "Dispute dp_test_1 won: the disputed credit is given back"
    assert ledger_sum(organisation=tenant.organisation) == _balance(tenant)
    assert balance_reconcile() == []


def test_a_dispute_still_open_or_lost_gives_nothing_back(client, tenant, topup, fake_stripe):
    session = _paid_and_disputed(client, fake_stripe, topup)
    for status in ("under_review", "lost"):
        response = deliver(
            client, stripe_event("charge.dispute.closed", _dispute(session, 2000, status=status))
        )
        assert response.json()["outcome"] == StripeEventOutcome.RECORDED
    assert _balance(tenant) == 0
    topup.refresh_from_db()
    assert not topup.dispute_won


def test_funds_reinstated_for_a_lost_dispute_after_a_partial_refund_give_nothing_back(
    client, tenant, topup, fake_stripe
):
    """Stripe withdraws the whole disputed amount and, when the dispute is lost, gives
    back the part refunded before it. The ledger never took that part twice."""
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    deliver(client, stripe_event("charge.refunded", _charge(session, 500)))
    deliver(client, stripe_event("charge.dispute.created", _dispute(session, 2000)))
    assert _balance(tenant) == 0
    lost = _dispute(session, 2000, status="lost", reinstated=500)

    response = deliver(client, stripe_event("charge.dispute.funds_reinstated", lost))

    assert response.json()["outcome"] == StripeEventOutcome.RECORDED
    assert _balance(tenant) == 0
    assert balance_reconcile() == []


def test_a_win_that_overtakes_its_dispute_never_takes_the_credit(
    client, tenant, topup, fake_stripe
):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    early = deliver(client, stripe_event("charge.dispute.closed", _won(session)))
    late = deliver(client, stripe_event("charge.dispute.created", _dispute(session, 2000)))

    assert early.json()["outcome"] == StripeEventOutcome.RECORDED
    assert late.json()["outcome"] == StripeEventOutcome.RECORDED
    assert _balance(tenant) == 19 * USD
    assert not LedgerEntry.objects.filter(kind=EntryKind.REFUND).exists()
    topup.refresh_from_db()
    assert (topup.dispute_id, topup.disputed_cents, topup.dispute_won) == ("dp_test_1", 2000, True)


def test_a_dispute_and_its_win_before_the_payment_credit_the_payment_only(
    client, tenant, topup, fake_stripe
):
    session = _paid_session(fake_stripe, topup)
    for type_, obj in [
        ("charge.dispute.created", _dispute(session, 2000)),
        ("charge.dispute.funds_reinstated", _won(session)),
    ]:
        response = deliver(client, stripe_event(type_, obj))
        assert response.json()["outcome"] == StripeEventOutcome.DEFERRED

    deliver(client, stripe_event("checkout.session.completed", session))

    assert _balance(tenant) == 19 * USD
    assert not LedgerEntry.objects.filter(kind=EntryKind.REFUND).exists()
    replayed = dict(StripeEvent.objects.filter(topup=topup).values_list("type", "outcome"))
    assert replayed["charge.dispute.funds_reinstated"] == StripeEventOutcome.RECORDED
    assert balance_reconcile() == []


def test_a_win_while_the_payment_is_processing_gives_nothing_once_paid(
    client, tenant, topup, fake_stripe
):
    pending = _paid_session(fake_stripe, topup, payment_status="unpaid")
    deliver(client, stripe_event("checkout.session.completed", pending))
    deliver(client, stripe_event("charge.dispute.created", _dispute(pending, 2000)))
    response = deliver(client, stripe_event("charge.dispute.closed", _won(pending)))
    assert response.json()["outcome"] == StripeEventOutcome.RECORDED

    paid = dict(pending, payment_status="paid")
    deliver(client, stripe_event("checkout.session.async_payment_succeeded", paid))

    assert _balance(tenant) == 19 * USD
    assert not LedgerEntry.objects.filter(kind=EntryKind.REFUND).exists()


def test_a_refund_held_back_by_a_dispute_is_posted_when_the_dispute_is_won(
    client, tenant, topup, fake_stripe
):
    session = _paid_and_disputed(client, fake_stripe, topup)
    deliver(client, stripe_event("charge.refunded", _charge(session, 500)))
    assert _balance(tenant) == 0  # the dispute already took all of it

    deliver(client, stripe_event("charge.dispute.closed", _won(session)))

    assert _entries(EntryKind.REFUND) == [-20 * USD, -5 * USD, 20 * USD]
    assert _balance(tenant) == 19 * USD - 5 * USD + USD // 4
    assert balance_reconcile() == []


def test_refunds_after_a_won_dispute_return_the_fee_share_again(client, tenant, topup, fake_stripe):
    """The fee share goes back with the dispute, is charged again with the win, and goes
    back again with a later refund: each of those is its own ledger entry."""
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    deliver(client, stripe_event("charge.refunded", _charge(session, 500)))
    deliver(client, stripe_event("charge.dispute.created", _dispute(session, 1500)))
    assert _balance(tenant) == 0
    deliver(client, stripe_event("charge.dispute.funds_reinstated", _won(session, 1500)))
    assert _balance(tenant) == 19 * USD - 5 * USD + USD // 4

    deliver(client, stripe_event("charge.refunded", _charge(session, 2000)))

    assert _balance(tenant) == 0
    assert _entries(EntryKind.FEE) == [-USD, -(USD * 3 // 4), USD // 4, USD * 3 // 4, USD * 3 // 4]
    assert balance_reconcile() == []


def test_a_win_for_another_dispute_is_rejected(client, tenant, topup, fake_stripe):
    session = _paid_and_disputed(client, fake_stripe, topup)
    response = deliver(
        client, stripe_event("charge.dispute.closed", _won(session, dispute_id="dp_other"))
    )
    assert response.json()["outcome"] == StripeEventOutcome.REJECTED
    assert _balance(tenant) == 0


def test_concurrent_win_events_give_the_credit_back_once(
    transactional_db, tenant, topup, fake_stripe
):
    client = Client()
    session = _paid_and_disputed(client, fake_stripe, topup)
    events = [
        stripe_event(type_, _won(session))
        for type_ in ["charge.dispute.closed", "charge.dispute.funds_reinstated"] * 4
    ]

    statuses = _deliver_all_at_once(events)

    assert statuses == [200] * len(events)
    assert _entries(EntryKind.REFUND) == [-20 * USD, 20 * USD]
    assert _balance(tenant) == 19 * USD
    assert balance_reconcile() == []


def test_the_billing_page_says_a_won_dispute_took_nothing_back(client, tenant, topup, fake_stripe):
    session = _paid_and_disputed(client, fake_stripe, topup)
    client.force_login(tenant.admin)
    page = reverse("dashboard:billing", args=[tenant.organisation.slug])
    assert "disputed $20.00" in client.get(page).content.decode()

    deliver(client, stripe_event("charge.dispute.closed", _won(session)))
    html = client.get(page).content.decode()
    assert "dispute won" in html
    assert "disputed $" not in html


def test_an_inquiry_closed_without_a_chargeback_gives_the_credit_back(
    client, tenant, topup, fake_stripe
):
    session = _paid_session(fake_stripe, topup)
    deliver(client, stripe_event("checkout.session.completed", session))
    deliver(
        client,
        stripe_event(
            "charge.dispute.created", _dispute(session, 2000, status="warning_needs_response")
        ),
    )
    assert _balance(tenant) == 0

    closed = _dispute(session, 2000, status="warning_closed")
    response = deliver(client, stripe_event("charge.dispute.closed", closed))

    assert response.json()["outcome"] == StripeEventOutcome.CREDITED
    assert _balance(tenant) == 19 * USD
    assert balance_reconcile() == []
