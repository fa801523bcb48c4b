"""Writes for billing: posting to the ledger (the only way money moves), checking the
denormalised balances against it, operator adjustments and trial credit.

Every post sends `billing.signals.balance_changed` after its transaction commits, so
caches of the balance (the gateway's credit figures) refresh."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Membership, Organisation, Role, User
from billing.models import CreditBalance, EntryKind, LedgerEntry, TrialGrant
from billing.money import usd_to_nano
from billing.signals import balance_changed
from config.sql import column_base_type

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Posting:
    organisation_id: int
    kind: str
    amount_nano: int
    idempotency_key: str
    reference: str = ""
    memo: str = ""
    created_by_id: int | None = None
    api_key_id: int | None = None

    def entry(self) -> LedgerEntry:
        return LedgerEntry(
            organisation_id=self.organisation_id,
            kind=self.kind,
            amount_nano=self.amount_nano,
            idempotency_key=self.idempotency_key,
            reference=self.reference,
            memo=self.memo,
            created_by_id=self.created_by_id,
            api_key_id=self.api_key_id,
        )


def ledger_post(
    *,
    organisation: Organisation,
    kind: EntryKind | str,
    amount_nano: int,
    idempotency_key: str,
    reference: str = "",
    memo: str = "",
    created_by: User | None = None,
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
    Returns the entries that were newly written.

    PostgreSQL does it in one statement whatever the batch size (_ledger_insert);
    SQLite, the embedded default, through the ORM."""
    if not postings:
        return []
    unique = _unique(postings)
    if connection.vendor == "postgresql":
        at = timezone.now()
        written = _ledger_insert(list(unique.values()), at=at)
        return [
            _entry_written(p, pk=written[key], at=at) for key, p in unique.items() if key in written
        ]
    with transaction.atomic():
        existing = set(
            LedgerEntry.objects.filter(idempotency_key__in=list(unique)).values_list(
                "idempotency_key", flat=True
            )
        )
        fresh = [p for k, p in unique.items() if k not in existing]
        if not fresh:
            return []
        entries = [p.entry() for p in fresh]
        try:
            # A concurrent writer may have posted one of these between the check and
            # the insert; the unique key then aborts the whole batch, and we retry it.
            with transaction.atomic():
                LedgerEntry.objects.bulk_create(entries)
        except IntegrityError:
            return _ledger_post_one_by_one(fresh)
        _apply_to_balances(fresh)
        return entries


def ledger_post_many_keys(*, postings: list[Posting]) -> set[str]:
    """ledger_post_many for writers of large batches that need no entries back (the
    usage flusher): the same posts, but it returns only the idempotency keys newly
    written, which spares building a model instance per entry."""
    if not postings or connection.vendor != "postgresql":
        return {e.idempotency_key for e in ledger_post_many(postings=postings)}
    return set(_ledger_insert(list(_unique(postings).values()), at=timezone.now()))


def _unique(postings: list[Posting]) -> dict[str, Posting]:
    """The postings by idempotency key; the first of a key wins."""
    unique: dict[str, Posting] = {}
    for p in postings:
        unique.setdefault(p.idempotency_key, p)
    return unique


def _ledger_post_one_by_one(postings: list[Posting]) -> list[LedgerEntry]:
    written = []
    for p in postings:
        try:
            with transaction.atomic():
                entry = p.entry()
                entry.save()
        except IntegrityError:
            continue
        written.append(entry)
        _apply_to_balances([p])
    return written


_POSTING_FIELDS = frozenset(f.name for f in dataclasses.fields(Posting))


@functools.cache
def _ledger_insert_sql() -> str:
    """One statement for many postings: insert them, skipping keys already in the
    ledger, and add what was actually written to the balances (creating missing
    balance rows). The postings go as one JSON array (json_to_recordset): one C-encoded
    json.dumps instead of adapting a parameter per value.

    Built from the model's fields so that a model change cannot drift from it: a field
    a Posting has is read from it, auto_now(_add) fields take the time of the post, any
    other field its default. Types are base types (varchar, not varchar(n)), so a
    too-long value fails, as with the ORM, instead of being cut short by a cast.
    Entries go in key order and balances in organisation order, so concurrent writers
    lock them in the same order (no deadlock). A balance's `updated_at` is set only
    when its row is created, as the ORM path's update() leaves it."""
    quote = connection.ops.quote_name
    fields = [f for f in LedgerEntry._meta.concrete_fields if not f.primary_key]
    given = [f for f in fields if f.attname in _POSTING_FIELDS]
    record = ", ".join(f"{quote(f.attname)} {column_base_type(f)}" for f in given)
    values = ", ".join(
        f"p.{quote(f.attname)}" if f.attname in _POSTING_FIELDS else f"%s::{column_base_type(f)}"
        for f in fields
    )
    entry = LedgerEntry._meta
    key = quote(entry.get_field("idempotency_key").column)
    organisation = quote(entry.get_field("organisation").column)
    amount = quote(entry.get_field("amount_nano").column)
    balance = CreditBalance._meta
    balances = quote(balance.db_table)
    balance_organisation = quote(balance.get_field("organisation").column)
    balance_nano = quote(balance.get_field("balance_nano").column)
    return (
        f"WITH written AS ("
        f"INSERT INTO {quote(entry.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"SELECT {values} FROM json_to_recordset(%s::json) AS p({record}) "
        f"ORDER BY p.{quote('idempotency_key')} ON CONFLICT ({key}) DO NOTHING "
        f"RETURNING {key} AS k, {quote(entry.pk.column)} AS id, {organisation} AS o, "
        f"{amount} AS a), "
        f"moved AS ("
        f"INSERT INTO {balances} ({balance_organisation}, {balance_nano}, "
        f"{quote(balance.get_field('updated_at').column)}) "
        f"SELECT o, SUM(a), %s FROM written GROUP BY o ORDER BY o "
        f"ON CONFLICT ({balance_organisation}) DO UPDATE SET "
        f"{balance_nano} = {balances}.{balance_nano} + EXCLUDED.{balance_nano}) "
        f"SELECT k, id FROM written"
    )


def _ledger_insert(postings: list[Posting], *, at: datetime) -> dict[str, int]:
    """PostgreSQL: post (unique keys) and move the balances in one statement; returns
    {idempotency key: id} of the entries newly written. A concurrent writer of the
    same key makes it wait for that writer's transaction, then skip the key if it
    committed: no check-then-insert race, no retry."""
    params: list[Any] = [
        at
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)
        else f.get_default()
        for f in LedgerEntry._meta.concrete_fields
        if not f.primary_key and f.attname not in _POSTING_FIELDS
    ]
    params += [json.dumps([vars(p) for p in postings], separators=(",", ":")), at]
    # No savepoint: nothing here catches an error to carry on, so on one the caller's
    # transaction (or this one) rolls back whole.
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(_ledger_insert_sql(), params)
            written = dict(cursor.fetchall())
        if written:
            _balance_changed_on_commit([p for p in postings if p.idempotency_key in written])
    return written


def _entry_written(posting: Posting, *, pk: int, at: datetime) -> LedgerEntry:
    """The entry as bulk_create would have returned it (saved, with its id), built the
    way the ORM builds rows it reads, a few times cheaper than LedgerEntry(**kwargs).
    A model field that a Posting lacks fails here loudly (KeyError)."""
    given = {**vars(posting), LedgerEntry._meta.pk.attname: pk, "created_at": at}
    fields = LedgerEntry._meta.concrete_fields
    return LedgerEntry.from_db(
        connection.alias, [f.attname for f in fields], [given[f.attname] for f in fields]
    )


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
    _balance_changed_on_commit(postings)


def _balance_changed_on_commit(postings: list[Posting]) -> None:
    org_ids = sorted({p.organisation_id for p in postings})
    kinds = sorted({p.kind for p in postings})
    transaction.on_commit(
        lambda: balance_changed.send(sender=LedgerEntry, organisation_ids=org_ids, kinds=kinds),
        robust=True,  # a failing cache refresh must not fail the payment that posted
    )


# --- Reconciliation -------------------------------------------------------------


@dataclass(frozen=True)
class BalanceDrift:
    organisation_id: int
    balance_nano: int  # the denormalised CreditBalance (0 if it has no row)
    ledger_nano: int  # SUM of the ledger

    @property
    def drift_nano(self) -> int:
        return self.balance_nano - self.ledger_nano


def balance_reconcile() -> list[BalanceDrift]:
    """Compare every organisation's CreditBalance with the sum of its ledger and report
    (log at ERROR, and return) each one that differs. Nothing is corrected: a drift
    means a bug or a manual database edit, and an operator should look at it.

    One SQL statement reads both figures, so on PostgreSQL they come from the same
    snapshot and a ledger post committing mid-check cannot show up as drift."""
    ledger_total = (
        LedgerEntry.objects.filter(organisation=OuterRef("pk"))
        .order_by()
        .values("organisation")
        .annotate(total=Sum("amount_nano"))
        .values("total")
    )
    rows = (
        Organisation.objects.annotate(
            ledger_nano=Coalesce(Subquery(ledger_total), Value(0), output_field=BigIntegerField()),
            balance_nano=Coalesce(
                F("credit__balance_nano"), Value(0), output_field=BigIntegerField()
            ),
        )
        .exclude(ledger_nano=F("balance_nano"))
        .order_by("pk")
        .values_list("pk", "balance_nano", "ledger_nano")
    )
    drifts = [
        BalanceDrift(organisation_id=pk, balance_nano=balance, ledger_nano=ledger)
        for pk, balance, ledger in rows
    ]
    for d in drifts:
        logger.error(
            "balance drift: organisation %s balance %s != ledger %s (drift %s nano-USD)",
            d.organisation_id,
            d.balance_nano,
            d.ledger_nano,
            d.drift_nano,
        )
    return drifts


# --- Operator adjustments -------------------------------------------------------

ADJUSTMENT_MAX_USD = Decimal("1000000")


class CreditError(ValueError):
    """A credit operation the caller asked for that cannot be done as asked."""


def credit_adjust(
    *,
    organisation: Organisation,
    amount_usd: Decimal,
    memo: str,
    created_by: User | None,
    idempotency_key: str,
) -> LedgerEntry | None:
    """Post an operator's ADJUSTMENT (positive grants credit, negative removes it).
    `idempotency_key` comes from the form that was shown, so a double submit posts
    once. Returns None when that key was already posted."""
    memo = memo.strip()
    if not memo:
        raise CreditError("Say why in the memo: adjustments are audited.")
    if amount_usd == 0:
        raise CreditError("The amount must not be zero.")
    if abs(amount_usd) > ADJUSTMENT_MAX_USD:
        raise CreditError(f"Adjustments are limited to ±${ADJUSTMENT_MAX_USD:,} at a time.")
    if amount_usd != amount_usd.quantize(Decimal("0.000000001")):
        raise CreditError("Amounts have at most 9 decimal places (nano-dollars).")
    return ledger_post(
        organisation=organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=usd_to_nano(amount_usd),
        idempotency_key=f"adjust:{idempotency_key}",
        reference=f"admin:{created_by.pk}" if created_by else "admin",
        memo=memo[:300],
        created_by=created_by,
    )


# --- Trial credit ---------------------------------------------------------------


def trial_credit_grant(*, user: User, email: str) -> LedgerEntry | None:
    """Called when `user` verifies `email`. Claims the trial for this address (once per
    address, case-insensitively, and once per user) and grants it to the first
    organisation the user owns that has had no trial. If the user owns none yet (the
    organisation is created after the confirmation), the claim waits for
    `trial_credit_fulfil_pending`. Returns the ledger entry when credit was granted."""
    if settings.TOLLGATE_TRIAL_CREDIT_USD <= 0:
        return None
    email = email.strip()
    with transaction.atomic():
        claim = TrialGrant.objects.filter(email__iexact=email).first()
        if claim is None:
            if TrialGrant.objects.filter(user=user).exists():
                return None  # this user already had a trial through another address
            try:
                with transaction.atomic():
                    claim = TrialGrant.objects.create(email=email, user=user)
            except IntegrityError:  # a concurrent confirmation of the same address
                return None
        elif claim.user_id != user.pk:
            return None  # the address earned a trial before (e.g. a deleted account)
        return _trial_fulfil(claim_id=claim.pk)


def trial_credit_fulfil_pending(*, user: User) -> LedgerEntry | None:
    """Called when `user` becomes an organisation's owner: grants a trial they claimed
    by verifying an address before they owned any organisation."""
    claim_id = (
        TrialGrant.objects.filter(user=user, organisation__isnull=True)
        .values_list("pk", flat=True)
        .first()
    )
    if claim_id is None:
        return None
    with transaction.atomic():
        return _trial_fulfil(claim_id=claim_id)


def _trial_fulfil(*, claim_id: int) -> LedgerEntry | None:
    claim = TrialGrant.objects.select_for_update().get(pk=claim_id)
    if claim.organisation_id is not None or claim.user_id is None:
        return None
    already_trialled = TrialGrant.objects.filter(organisation__isnull=False).values(
        "organisation_id"
    )
    owned = (
        Membership.objects.filter(user_id=claim.user_id, role=Role.OWNER)
        .exclude(organisation_id__in=already_trialled)
        .exclude(organisation__ledger_entries__kind=EntryKind.TRIAL)
        .order_by("created_at", "pk")
        .values_list("organisation_id", flat=True)
        .first()
    )
    if owned is None:
        return None
    claim.organisation_id = owned
    claim.granted_at = timezone.now()
    try:
        with transaction.atomic():
            claim.save(update_fields=["organisation", "granted_at"])
    except IntegrityError:  # another claim took this organisation a moment ago
        return None
    organisation = claim.organisation
    assert organisation is not None  # set to `owned` just above
    return ledger_post(
        organisation=organisation,
        kind=EntryKind.TRIAL,
        amount_nano=usd_to_nano(settings.TOLLGATE_TRIAL_CREDIT_USD),
        idempotency_key=f"trial:org:{owned}",
        reference=f"trial-grant:{claim.pk}",
        memo="Trial credit for a verified e-mail address",
    )
