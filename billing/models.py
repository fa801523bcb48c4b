"""Credit ledger and balances.

The ledger is append-only: an entry is never updated or deleted; a correction is a
new entry (an adjustment or a refund). Every entry carries a unique idempotency key,
so replaying the same event (a webhook retry, a re-sent usage batch) cannot post it
twice. `CreditBalance` is a denormalised running sum kept in the same transaction as
each insert; reconciliation checks that it always equals the ledger's sum.

Amounts are integer nano-dollars (1e-9 USD): exact, and a request's cost fits.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import Organisation

NANO_PER_USD = 1_000_000_000


class EntryKind(models.TextChoices):
    TRIAL = "trial", "Trial credit"
    TOPUP = "topup", "Top-up"
    FEE = "fee", "Top-up fee"
    USAGE = "usage", "Usage"
    BYOK_FEE = "byok_fee", "BYOK fee"
    ADJUSTMENT = "adjustment", "Adjustment"
    REFUND = "refund", "Refund"


class LedgerEntry(models.Model):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount_nano = models.BigIntegerField(help_text="Signed: credit > 0, debit < 0")
    idempotency_key = models.CharField(max_length=200, unique=True)
    reference = models.CharField(max_length=200, blank=True, default="")
    memo = models.CharField(max_length=300, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["organisation", "-created_at"], name="ledger_org_time")]

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
