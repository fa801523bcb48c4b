"""Stripe webhook events: record each once, then move credit for the top-up it names.

Every event is inserted into StripeEvent by its Stripe id (UNIQUE) inside the same
transaction that handles it. Two concurrent deliveries of one event cannot both insert:
the second waits on the unique index, then fails and is answered as a duplicate. If
handling raises, the insert rolls back with it and Stripe's retry starts afresh.

Events may arrive in any order. Handlers therefore record state on the TopUp (paid,
cumulative refunded and disputed amounts, under a row lock) and post to the ledger
only the difference between that state and what is already posted:
- credit (top-up + amount, fee - fee) once, when the payment is first seen as paid;
- refunds and disputes only once the credit is posted, so a refund that overtakes its
  payment is posted right after it. A charge event for a payment intent that no top-up
  knows yet is kept as DEFERRED and replayed when the checkout completes.
A refund or dispute takes back what was paid (a negative REFUND entry) and gives back
the matching share of the fee, so a full refund leaves the organisation where it was.
A dispute the merchant wins (charge.dispute.closed or charge.dispute.funds_reinstated
with status "won", whichever comes first; or an inquiry closed as "warning_closed") is
given back the same way in reverse: a positive REFUND entry for what the dispute took
and the fee share charged again. A win is final (Stripe allows one dispute per charge),
so a win seen before the dispute's debit was posted means it never is.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import (
    NANO_PER_CENT,
    EntryKind,
    StripeEvent,
    StripeEventOutcome,
    TopUp,
    TopUpStatus,
)
from billing.services import Posting, ledger_post_many

logger = logging.getLogger(__name__)

Outcome = tuple[str, str]  # (StripeEventOutcome, detail)


def stripe_event_process(*, event: dict[str, Any]) -> StripeEvent:
    """Handle one verified webhook event exactly once. Returns its StripeEvent row; a
    redelivery returns the row of the first delivery, unchanged."""
    obj = _event_object(event)
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = StripeEvent.objects.create(
                    stripe_id=event["id"],
                    type=str(event.get("type", "")),
                    livemode=bool(event.get("livemode", False)),
                    payment_intent=_payment_intent_of(obj),
                    payload=event,
                )
        except IntegrityError:
            return StripeEvent.objects.get(stripe_id=event["id"])
        outcome, detail = _dispatch(row, obj)
        row.outcome, row.detail = outcome, detail[:300]
        row.processed_at = timezone.now()
        row.save(update_fields=["outcome", "detail", "processed_at", "topup"])
    if outcome == StripeEventOutcome.REJECTED:
        logger.error("stripe event %s rejected: %s", row.stripe_id, detail)
    return row


def _event_object(event: dict[str, Any]) -> dict[str, Any]:
    return (event.get("data") or {}).get("object") or {}


def _payment_intent_of(obj: dict[str, Any]) -> str:
    pi = obj.get("payment_intent") or ""
    if isinstance(pi, dict):  # expanded
        pi = pi.get("id", "")
    return str(pi)


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:  # someone else's reference: not one of our top-ups
        return None


def _dispatch(row: StripeEvent, obj: dict[str, Any]) -> Outcome:
    handler = _HANDLERS.get(row.type)
    if handler is None:
        return StripeEventOutcome.IGNORED, ""
    return handler(row, obj)


# --- Checkout sessions ----------------------------------------------------------


def _topup_for_session(row: StripeEvent, session: dict[str, Any]) -> TopUp | None:
    metadata = session.get("metadata") or {}
    public_id = metadata.get("topup_id") or session.get("client_reference_id")
    topups = TopUp.objects.select_for_update()
    topup = None
    topup_id = _uuid_or_none(public_id)
    if topup_id is not None:
        topup = topups.filter(public_id=topup_id).first()
    if topup is None and session.get("id"):
        topup = topups.filter(stripe_session_id=session["id"]).first()
    if topup is not None:
        row.topup = topup
    return topup


def _session_mismatch(topup: TopUp, session: dict[str, Any]) -> str:
    metadata = session.get("metadata") or {}
    if str(metadata.get("organisation_id", topup.organisation_id)) != str(topup.organisation_id):
        return "organisation in metadata does not match the top-up"
    if topup.stripe_session_id and session.get("id") != topup.stripe_session_id:
        return "checkout session id does not match the top-up"
    if session.get("amount_total") != topup.amount_cents:
        return f"amount_total {session.get('amount_total')} != {topup.amount_cents} cents"
    if str(session.get("currency", "")).lower() != topup.currency:
        return f"currency {session.get('currency')!r} != {topup.currency!r}"
    return ""


def _on_session_completed(row: StripeEvent, session: dict[str, Any]) -> Outcome:
    topup = _topup_for_session(row, session)
    if topup is None:
        return StripeEventOutcome.UNMATCHED, "no top-up for this checkout session"
    problem = _session_mismatch(topup, session)
    if problem:
        return StripeEventOutcome.REJECTED, problem
    _remember_session(topup, session)
    if session.get("payment_status") == "paid":
        return _topup_paid(topup)
    if topup.status == TopUpStatus.PENDING:
        topup.status = TopUpStatus.PROCESSING
        topup.save(update_fields=["status", "updated_at"])
    return StripeEventOutcome.RECORDED, f"payment_status={session.get('payment_status')}"


def _on_async_payment_succeeded(row: StripeEvent, session: dict[str, Any]) -> Outcome:
    topup = _topup_for_session(row, session)
    if topup is None:
        return StripeEventOutcome.UNMATCHED, "no top-up for this checkout session"
    problem = _session_mismatch(topup, session)
    if problem:
        return StripeEventOutcome.REJECTED, problem
    _remember_session(topup, session)
    return _topup_paid(topup)


def _on_async_payment_failed(row: StripeEvent, session: dict[str, Any]) -> Outcome:
    topup = _topup_for_session(row, session)
    if topup is None:
        return StripeEventOutcome.UNMATCHED, "no top-up for this checkout session"
    if topup.status == TopUpStatus.PAID:  # a success already seen wins
        return StripeEventOutcome.RECORDED, "already paid"
    topup.status = TopUpStatus.FAILED
    topup.save(update_fields=["status", "updated_at"])
    return StripeEventOutcome.RECORDED, "payment failed"


def _on_session_expired(row: StripeEvent, session: dict[str, Any]) -> Outcome:
    topup = _topup_for_session(row, session)
    if topup is None:
        return StripeEventOutcome.UNMATCHED, "no top-up for this checkout session"
    if topup.status in (TopUpStatus.PENDING, TopUpStatus.PROCESSING):
        topup.status = TopUpStatus.EXPIRED
        topup.save(update_fields=["status", "updated_at"])
    return StripeEventOutcome.RECORDED, f"status {topup.status}"


def _remember_session(topup: TopUp, session: dict[str, Any]) -> None:
    pi = _payment_intent_of(session)
    fields = []
    if pi and topup.stripe_payment_intent_id != pi:
        topup.stripe_payment_intent_id = pi
        fields.append("stripe_payment_intent_id")
    if not topup.stripe_session_id and session.get("id"):
        topup.stripe_session_id = session["id"]
        fields.append("stripe_session_id")
    if fields:
        topup.save(update_fields=[*fields, "updated_at"])


def _topup_paid(topup: TopUp) -> Outcome:
    """Credit the top-up (once), then post any refund or dispute that overtook it."""
    if topup.status == TopUpStatus.PAID:
        return StripeEventOutcome.RECORDED, "already credited"
    topup.status = TopUpStatus.PAID
    topup.paid_at = timezone.now()
    topup.save(update_fields=["status", "paid_at", "updated_at"])
    reference = topup.stripe_session_id or str(topup.public_id)
    ledger_post_many(
        postings=[
            Posting(
                organisation_id=topup.organisation_id,
                kind=EntryKind.TOPUP,
                amount_nano=topup.amount_nano,
                idempotency_key=f"topup:{topup.public_id}:credit",
                reference=reference,
                memo="Stripe top-up",
                created_by_id=topup.created_by_id,
            ),
            Posting(
                organisation_id=topup.organisation_id,
                kind=EntryKind.FEE,
                amount_nano=-topup.fee_nano,
                idempotency_key=f"topup:{topup.public_id}:fee",
                reference=reference,
                memo=f"Top-up fee ({topup.fee_percent.normalize():f}%)",
                created_by_id=topup.created_by_id,
            ),
        ]
    )
    _replay_deferred(topup)
    _post_clawbacks(topup, reference=reference)
    return StripeEventOutcome.CREDITED, f"credited {topup.credit_cents} cents"


def _replay_deferred(topup: TopUp) -> None:
    if not topup.stripe_payment_intent_id:
        return
    waiting = StripeEvent.objects.select_for_update().filter(
        outcome=StripeEventOutcome.DEFERRED, payment_intent=topup.stripe_payment_intent_id
    )
    for event in waiting.order_by("pk"):
        obj = _event_object(event.payload)
        if event.type == "charge.refunded":
            _record_refund(topup, obj)
        elif event.type == "charge.dispute.created":
            _record_dispute(topup, obj)
        elif event.type in _DISPUTE_SETTLED:
            _record_dispute_won(topup, obj)
        event.topup = topup
        # Nothing was posted before this payment, so a win waiting here gives nothing back.
        event.outcome = (
            StripeEventOutcome.RECORDED
            if event.type in _DISPUTE_SETTLED
            else StripeEventOutcome.DEBITED
        )
        event.detail = "applied after the payment it refers to"
        event.save(update_fields=["topup", "outcome", "detail"])


# --- Refunds and disputes -------------------------------------------------------


def _topup_for_charge(row: StripeEvent, obj: dict[str, Any]) -> TopUp | None:
    topups = TopUp.objects.select_for_update()
    topup = None
    if row.payment_intent:
        topup = topups.filter(stripe_payment_intent_id=row.payment_intent).first()
    topup_id = _uuid_or_none((obj.get("metadata") or {}).get("topup_id"))
    if topup is None and topup_id is not None:
        topup = topups.filter(public_id=topup_id).first()
    if topup is not None:
        row.topup = topup
    return topup


def _on_charge_refunded(row: StripeEvent, charge: dict[str, Any]) -> Outcome:
    topup = _topup_for_charge(row, charge)
    if topup is None:
        return StripeEventOutcome.DEFERRED, "no top-up with this payment intent (yet)"
    _record_refund(topup, charge)
    return _clawback_outcome(topup)


def _on_dispute_created(row: StripeEvent, dispute: dict[str, Any]) -> Outcome:
    topup = _topup_for_charge(row, dispute)
    if topup is None:
        return StripeEventOutcome.DEFERRED, "no top-up with this payment intent (yet)"
    _record_dispute(topup, dispute)
    return _clawback_outcome(topup)


def _on_dispute_settled(row: StripeEvent, dispute: dict[str, Any]) -> Outcome:
    """charge.dispute.closed and charge.dispute.funds_reinstated. Only a won dispute
    gives anything back. A lost one keeps its debit, even when Stripe reinstates funds
    (it does for a payment refunded in part before the dispute): the debit was already
    capped at what had not been refunded, so those funds were never taken from credit."""
    topup = _topup_for_charge(row, dispute)
    status = str(dispute.get("status", ""))
    # "warning_closed": an inquiry that closed without becoming a chargeback. Its
    # credit was taken back when it opened (a dispute is debited as it is created),
    # and, as for a win, nothing was lost.
    if status not in ("won", "warning_closed"):
        return StripeEventOutcome.RECORDED, f"dispute {status}: nothing to give back"
    if topup is None:
        return StripeEventOutcome.DEFERRED, "no top-up with this payment intent (yet)"
    dispute_id = str(dispute.get("id", ""))
    if topup.dispute_id and topup.dispute_id != dispute_id:
        return (
            StripeEventOutcome.REJECTED,
            f"dispute {dispute_id} is not the one recorded ({topup.dispute_id})",
        )
    given_before = topup.dispute_posted_cents
    _record_dispute_won(topup, dispute)
    if topup.status != TopUpStatus.PAID:
        return StripeEventOutcome.RECORDED, "won; the payment is not credited yet"
    _post_clawbacks(topup, reference=topup.stripe_session_id or "")
    given = given_before - topup.dispute_posted_cents
    if not given:
        return StripeEventOutcome.RECORDED, "won; nothing taken back is left to give back"
    return StripeEventOutcome.CREDITED, f"dispute won: gave back {given} cents"


def _record_refund(topup: TopUp, charge: dict[str, Any]) -> None:
    # amount_refunded is cumulative; events may arrive out of order, so keep the max.
    refunded = min(int(charge.get("amount_refunded") or 0), topup.amount_cents)
    if refunded > topup.refunded_cents:
        topup.refunded_cents = refunded
        topup.save(update_fields=["refunded_cents", "updated_at"])


def _record_dispute(topup: TopUp, dispute: dict[str, Any]) -> None:
    amount = min(int(dispute.get("amount") or 0), topup.amount_cents)
    if amount > topup.disputed_cents:
        topup.disputed_cents = amount
        topup.dispute_id = str(dispute.get("id", ""))[:255]
        topup.save(update_fields=["disputed_cents", "dispute_id", "updated_at"])


def _record_dispute_won(topup: TopUp, dispute: dict[str, Any]) -> None:
    _record_dispute(topup, dispute)  # a win may be the first we hear of the dispute
    if not topup.dispute_won:
        topup.dispute_won = True
        topup.save(update_fields=["dispute_won", "updated_at"])


def _clawback_outcome(topup: TopUp) -> Outcome:
    if topup.status != TopUpStatus.PAID:
        return StripeEventOutcome.RECORDED, "recorded; posted once the payment is credited"
    posted = _post_clawbacks(topup, reference=topup.stripe_session_id or "")
    if not posted:
        return StripeEventOutcome.RECORDED, "nothing new to post"
    return StripeEventOutcome.DEBITED, f"posted {posted} cents"


def _clawback_targets(topup: TopUp) -> tuple[int, int]:
    """(dispute, refund) cents the ledger should have taken back. Stripe does not let
    a charge be refunded and disputed past its amount; cap anyway, never below what is
    already posted (the ledger only moves forward) except for a won dispute, which
    takes nothing: it goes back to 0, and the refund it held under the cap can grow."""
    if topup.dispute_won:
        dispute = 0
    else:
        dispute = max(
            topup.dispute_posted_cents,
            min(topup.disputed_cents, topup.amount_cents - topup.refunded_cents),
        )
    refund = max(topup.refund_posted_cents, min(topup.refunded_cents, topup.amount_cents - dispute))
    return dispute, refund


def _post_clawbacks(topup: TopUp, *, reference: str) -> int:
    """Post the difference between what Stripe took back (or, for a won dispute, gave
    back) and what the ledger already has; returns the cents newly taken back."""
    if topup.status != TopUpStatus.PAID:
        return 0
    dispute_target, refund_target = _clawback_targets(topup)
    refund_delta = refund_target - topup.refund_posted_cents
    dispute_delta = dispute_target - topup.dispute_posted_cents
    fee_target = topup.fee_nano * (refund_target + dispute_target) // topup.amount_cents
    postings = [
        *_refund_postings(topup, refund_delta, target=refund_target, reference=reference),
        *_dispute_postings(topup, dispute_delta, target=dispute_target, reference=reference),
        *_fee_postings(topup, fee_target, reference=reference),
    ]
    if not postings:
        return 0
    ledger_post_many(postings=postings)
    topup.refund_posted_cents = refund_target
    topup.dispute_posted_cents = dispute_target
    topup.fee_reversed_nano = fee_target
    topup.save(
        update_fields=[
            "refund_posted_cents",
            "dispute_posted_cents",
            "fee_reversed_nano",
            "updated_at",
        ]
    )
    return max(refund_delta, 0) + max(dispute_delta, 0)


def _topup_posting(
    topup: TopUp, kind: str, amount_nano: int, key: str, *, reference: str, memo: str
) -> Posting:
    """A ledger entry about a top-up, keyed by the top-up and what happened to it."""
    return Posting(
        organisation_id=topup.organisation_id,
        kind=kind,
        amount_nano=amount_nano,
        idempotency_key=f"topup:{topup.public_id}:{key}",
        reference=reference,
        memo=memo,
        created_by_id=topup.created_by_id,
    )


def _refund_postings(topup: TopUp, delta: int, *, target: int, reference: str) -> list[Posting]:
    if delta <= 0:
        return []
    return [
        _topup_posting(
            topup,
            EntryKind.REFUND,
            -delta * NANO_PER_CENT,
            f"refunded-to:{target}",
            reference=reference,
            memo="Stripe refund",
        )
    ]


def _dispute_postings(topup: TopUp, delta: int, *, target: int, reference: str) -> list[Posting]:
    """A dispute's debit grows to its target; a won dispute's is given back whole, once
    (a win is final, so one key per top-up), as a positive REFUND entry: it undoes the
    negative one, and refunds summed over the ledger come out right."""
    if delta > 0:
        key, memo = f"disputed-to:{target}", f"Payment disputed ({topup.dispute_id})"
    elif delta < 0:
        key = "dispute-won"
        memo = f"Dispute {topup.dispute_id} won: the disputed credit is given back"
    else:
        return []
    return [
        _topup_posting(
            topup,
            EntryKind.REFUND,
            -delta * NANO_PER_CENT,
            key,
            reference=topup.dispute_id or reference,
            memo=memo,
        )
    ]


def _fee_postings(topup: TopUp, target: int, *, reference: str) -> list[Posting]:
    """The fee share follows what was taken back: returned as it grows, charged again
    when a won dispute gives credit back. Before a win the target only grows, so it
    keys the entry; after one it drops once, then only grows again, so those keys take
    a suffix that keeps them apart from the earlier ones."""
    delta = target - topup.fee_reversed_nano
    if not delta:
        return []
    after_win = ":after-dispute-won" if topup.dispute_won else ""
    memo = (
        "Top-up fee returned with the refunded amount"
        if delta > 0
        else f"Top-up fee charged again: dispute {topup.dispute_id} won"
    )
    return [
        _topup_posting(
            topup,
            EntryKind.FEE,
            delta,
            f"fee-returned-to:{target}{after_win}",
            reference=reference,
            memo=memo,
        )
    ]


_DISPUTE_SETTLED = frozenset({"charge.dispute.closed", "charge.dispute.funds_reinstated"})

_HANDLERS = {
    "checkout.session.completed": _on_session_completed,
    "checkout.session.async_payment_succeeded": _on_async_payment_succeeded,
    "checkout.session.async_payment_failed": _on_async_payment_failed,
    "checkout.session.expired": _on_session_expired,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute_created,
    "charge.dispute.closed": _on_dispute_settled,
    "charge.dispute.funds_reinstated": _on_dispute_settled,
}
