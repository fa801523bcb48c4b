"""Writes for billing: posting to the ledger (the only way money moves)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.models import Organisation
from billing.models import CreditBalance, EntryKind, LedgerEntry


@dataclass(frozen=True)
class Posting:
    organisation_id: int
    kind: str
    amount_nano: int
    idempotency_key: str
    reference: str = ""
    memo: str = ""
    created_by_id: int | None = None


def ledger_post(
    *,
    organisation: Organisation,
    kind: EntryKind | str,
    amount_nano: int,
    idempotency_key: str,
    reference: str = "",
    memo: str = "",
    created_by=None,
) -> LedgerEntry | None:
    """Append one entry and move the balance with it. Returns None if an entry with
    this idempotency key already exists (nothing changes)."""
    posted = ledger_post_many(
        postings=[
            Posting(
                organisation_id=organisation.pk,
                kind=str(kind),
                amount_nano=amount_nano,
                idempotency_key=idempotency_key,
                reference=reference,
                memo=memo,
                created_by_id=created_by.pk if created_by else None,
            )
        ]
    )
    return posted[0] if posted else None


def ledger_post_many(*, postings: list[Posting]) -> list[LedgerEntry]:
    """Append many entries in one transaction; entries whose idempotency key is
    already in the ledger are skipped, so replaying a batch changes nothing.
    Returns the entries that were newly written."""
    if not postings:
        return []
    unique: dict[str, Posting] = {}
    for p in postings:
        unique.setdefault(p.idempotency_key, p)
    with transaction.atomic():
        existing = set(
            LedgerEntry.objects.filter(idempotency_key__in=list(unique)).values_list(
                "idempotency_key", flat=True
            )
        )
        fresh = [p for k, p in unique.items() if k not in existing]
        if not fresh:
            return []
        entries = [
            LedgerEntry(
                organisation_id=p.organisation_id,
                kind=p.kind,
                amount_nano=p.amount_nano,
                idempotency_key=p.idempotency_key,
                reference=p.reference,
                memo=p.memo,
                created_by_id=p.created_by_id,
            )
            for p in fresh
        ]
        try:
            # A concurrent writer may have posted one of these between the check and
            # the insert; the unique key then aborts the whole batch, and we retry it.
            with transaction.atomic():
                LedgerEntry.objects.bulk_create(entries)
        except IntegrityError:
            return _ledger_post_one_by_one(fresh)
        _apply_to_balances(fresh)
        return entries


def _ledger_post_one_by_one(postings: list[Posting]) -> list[LedgerEntry]:
    written = []
    for p in postings:
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    organisation_id=p.organisation_id,
                    kind=p.kind,
                    amount_nano=p.amount_nano,
                    idempotency_key=p.idempotency_key,
                    reference=p.reference,
                    memo=p.memo,
                    created_by_id=p.created_by_id,
                )
        except IntegrityError:
            continue
        written.append(entry)
        _apply_to_balances([p])
    return written


def _apply_to_balances(postings: list[Posting]) -> None:
    totals: dict[int, int] = defaultdict(int)
    for p in postings:
        totals[p.organisation_id] += p.amount_nano
    for org_id, delta in sorted(totals.items()):  # fixed order: no deadlocks
        updated = CreditBalance.objects.filter(organisation_id=org_id).update(
            balance_nano=F("balance_nano") + delta
        )
        if not updated:
            CreditBalance.objects.get_or_create(organisation_id=org_id)
            CreditBalance.objects.filter(organisation_id=org_id).update(
                balance_nano=F("balance_nano") + delta
            )
