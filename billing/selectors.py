"""Reads for billing: balances, the ledger, top-ups."""

from __future__ import annotations

from django.db.models import QuerySet, Sum

from accounts.models import Organisation
from billing.models import CreditBalance, EntryKind, LedgerEntry, TopUp


def balance_get(*, organisation: Organisation) -> int:
    """The organisation's balance in nano-dollars (the denormalised running sum)."""
    balance = (
        CreditBalance.objects.filter(organisation=organisation)
        .values_list("balance_nano", flat=True)
        .first()
    )
    return balance or 0


def ledger_sum(*, organisation: Organisation) -> int:
    """The balance as the ledger defines it: the sum of every entry, in nano-dollars."""
    total = LedgerEntry.objects.filter(organisation=organisation).aggregate(
        total=Sum("amount_nano")
    )["total"]
    return total or 0


def ledger_entries_for(
    *, organisation: Organisation, kinds: list[EntryKind | str] | None = None
) -> QuerySet[LedgerEntry]:
    """The organisation's entries, newest first."""
    entries = LedgerEntry.objects.filter(organisation=organisation)
    if kinds:
        entries = entries.filter(kind__in=[str(k) for k in kinds])
    return entries.select_related("created_by").order_by("-created_at", "-id")


def topups_for(*, organisation: Organisation) -> QuerySet[TopUp]:
    return TopUp.objects.filter(organisation=organisation).order_by("-created_at", "-id")


def topup_get(*, organisation: Organisation, public_id: str) -> TopUp | None:
    return TopUp.objects.filter(organisation=organisation, public_id=public_id).first()


def topup_for_session(*, organisation: Organisation, session_id: str) -> TopUp | None:
    if not session_id:
        return None
    return TopUp.objects.filter(organisation=organisation, stripe_session_id=session_id).first()
