"""Credit ledger and balances.

The ledger is append-only: an entry is never updated or deleted; a correction is a
new entry (an adjustment or a refund). Every entry carries a unique idempotency key,
so replaying the same event (a webhook retry, a re-sent usage batch) cannot post it
twice. `CreditBalance` is a denormalised running sum kept in the same transaction as
each insert; reconciliation checks that it always equals the ledger's sum.

Amounts are integer nano-dollars (1e-9 USD): exact, and a request's cost fits.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from accounts.models import Organisation
from billing.money import CentsAmounts

NANO_PER_USD = 1_000_000_000
NANO_PER_CENT = NANO_PER_USD // 100


class EntryKind(models.TextChoices):
    TRIAL = "trial", "Trial credit"
    TOPUP = "topup", "Top-up"
    FEE = "fee", "Top-up fee"
    USAGE = "usage", "Usage"
    BYOK_FEE = "byok_fee", "BYOK fee"
    ADJUSTMENT = "adjustment", "Adjustment"
    REFUND = "refund", "Refund"


class LedgerEntry(models.Model):
    # Written at request rate (a usage debit per request): no index that another one
    # covers. The organisation's and the key's own indexes are the prefixes of
    # ledger_org_time and ledger_key_time; the idempotency key is unique by constraint
    # (no LIKE index on PostgreSQL).
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False
    )
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount_nano = models.BigIntegerField(help_text="Signed: credit > 0, debit < 0")
    idempotency_key = models.CharField(max_length=200)
    reference = models.CharField(max_length=200, blank=True, default="")
    memo = models.CharField(max_length=300, blank=True, default="")
    # The key whose request this usage (or BYOK fee) entry bills; key spend limits
    # are rebuilt from these when their counters are missing.
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="ledger_idempotency_unique"),
        ]
        indexes = [
            models.Index(fields=["organisation", "-created_at"], name="ledger_org_time"),
            models.Index(fields=["api_key", "created_at"], name="ledger_key_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_nano} ({self.organisation_id})"


class CreditBalance(models.Model):
    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, primary_key=True, related_name="credit"
    )
    balance_nano = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.organisation_id}: {self.balance_nano}"


class OrganisationCredit(Organisation):
    """An admin-only view of an organisation's credit (balance, adjust credit). A proxy:
    no table of its own, so the accounts app's admin stays untouched."""

    class Meta:
        proxy = True
        verbose_name = "organisation credit"
        verbose_name_plural = "organisation credit"


class TrialGrant(models.Model):
    """One trial credit per verified e-mail address (case-insensitive) and per
    organisation, enforced by the two unique constraints rather than by a check that
    two concurrent confirmations could both pass. A claim is made when an address is
    verified; it is granted (organisation set) once the user owns an organisation."""

    email = models.EmailField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    organisation = models.OneToOneField(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    claimed_at = models.DateTimeField(auto_now_add=True)
    granted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="trial_grant_email_ci_unique")]

    def __str__(self) -> str:
        return f"trial for {self.organisation_id or 'pending'}"


class TopUpStatus(models.TextChoices):
    PENDING = "pending", "Awaiting checkout"
    PROCESSING = "processing", "Payment processing"
    PAID = "paid", "Paid"
    FAILED = "failed", "Payment failed"
    EXPIRED = "expired", "Checkout expired"


class TopUp(CentsAmounts, models.Model):
    """A Stripe Checkout payment for credit. The fee is fixed when the checkout is
    created (what the customer was shown is what they are charged). Credit moves only
    when Stripe's signed webhook says the payment succeeded; refunds and disputes are
    tracked as cumulative amounts so each event posts only the difference."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="topups")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    amount_cents = models.PositiveIntegerField(help_text="What the customer pays, in cents")
    fee_percent = models.DecimalField(max_digits=5, decimal_places=2)
    fee_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(
        max_length=10, choices=TopUpStatus.choices, default=TopUpStatus.PENDING
    )
    stripe_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_payment_intent_id = models.CharField(
        max_length=255, blank=True, default="", db_index=True
    )
    # Cumulative amounts Stripe reported, and how much of each the ledger already has.
    refunded_cents = models.PositiveIntegerField(default=0)
    refund_posted_cents = models.PositiveIntegerField(default=0)
    dispute_id = models.CharField(max_length=255, blank=True, default="")
    disputed_cents = models.PositiveIntegerField(default=0)
    dispute_posted_cents = models.PositiveIntegerField(default=0)
    # Stripe said the merchant won the dispute (final): what it had taken back is given
    # back, and a dispute event arriving late takes nothing.
    dispute_won = models.BooleanField(default=False)
    fee_reversed_nano = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "top-up"

    def __str__(self) -> str:
        return f"top-up {self.public_id} ({self.status})"

    @property
    def amount_nano(self) -> int:
        return self.amount_cents * NANO_PER_CENT

    @property
    def fee_nano(self) -> int:
        return self.fee_cents * NANO_PER_CENT

    @property
    def taken_back_cents(self) -> int:
        """What Stripe took back from this payment: refunds, and a dispute not won."""
        return self.refunded_cents + (0 if self.dispute_won else self.disputed_cents)

    @property
    def refunded_usd(self) -> Decimal:
        return Decimal(self.taken_back_cents).scaleb(-2)

    @property
    def clawback_label(self) -> str:
        """How the console describes what happened to this payment after it was paid."""
        if self.disputed_cents and self.dispute_won:
            return "dispute won" + (", refunded" if self.refunded_cents else "")
        if self.disputed_cents:
            return "disputed"
        return "refunded" if self.refunded_cents else ""


class StripeEventOutcome(models.TextChoices):
    PROCESSING = "processing", "Processing"
    CREDITED = "credited", "Credit granted"
    DEBITED = "debited", "Refund or dispute posted"
    RECORDED = "recorded", "State recorded, no ledger change"
    DEFERRED = "deferred", "Waiting for the payment it refers to"
    UNMATCHED = "unmatched", "Not a Tollgate top-up"
    REJECTED = "rejected", "Rejected (inconsistent with the top-up)"
    IGNORED = "ignored", "Event type not handled"


class StripeEvent(models.Model):
    """Every webhook event Stripe delivered, by its Stripe id (UNIQUE: two concurrent
    retries cannot both insert, so an event is handled once), with the outcome."""

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    payment_intent = models.CharField(max_length=255, blank=True, default="", db_index=True)
    topup = models.ForeignKey(
        TopUp, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    outcome = models.CharField(
        max_length=12,
        choices=StripeEventOutcome.choices,
        default=StripeEventOutcome.PROCESSING,
    )
    detail = models.CharField(max_length=300, blank=True, default="")
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"
