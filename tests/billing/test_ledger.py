from decimal import Decimal

import pytest

from billing.models import CreditBalance, EntryKind, LedgerEntry
from billing.selectors import balance_get, ledger_entries_for, ledger_sum
from billing.services import (
    CreditError,
    Posting,
    balance_reconcile,
    credit_adjust,
    ledger_post,
    ledger_post_many,
)
from billing.signals import balance_changed
from billing.tasks import reconcile_balances

pytestmark = pytest.mark.django_db


def _post(org, amount, key, kind=EntryKind.ADJUSTMENT):
    return ledger_post(organisation=org, kind=kind, amount_nano=amount, idempotency_key=key)


def test_it_posts_once_per_idempotency_key(tenant):
    org = tenant.organisation
    assert _post(org, 5_000, "k1") is not None
    assert _post(org, 5_000, "k1") is None
    assert balance_get(organisation=org) == 5_000
    assert ledger_sum(organisation=org) == 5_000
    assert LedgerEntry.objects.filter(idempotency_key="k1").count() == 1


def test_replaying_a_batch_changes_nothing(tenant, outsider):
    org, other = tenant.organisation, outsider.memberships.get().organisation
    batch = [
        Posting(organisation_id=org.pk, kind="usage", amount_nano=-7, idempotency_key="u1"),
        Posting(organisation_id=org.pk, kind="usage", amount_nano=-11, idempotency_key="u2"),
        Posting(organisation_id=other.pk, kind="usage", amount_nano=-13, idempotency_key="u3"),
    ]
    assert len(ledger_post_many(postings=batch)) == 3
    assert ledger_post_many(postings=batch) == []
    # A batch overlapping an earlier one writes only the new entries.
    more = [
        *batch,
        Posting(organisation_id=org.pk, kind="usage", amount_nano=-1, idempotency_key="u4"),
    ]
    assert [e.idempotency_key for e in ledger_post_many(postings=more)] == ["u4"]
    assert balance_get(organisation=org) == -19
    assert balance_get(organisation=other) == -13
    assert balance_reconcile() == []


def test_balance_of_an_organisation_with_no_entries_is_zero(tenant):
    assert balance_get(organisation=tenant.organisation) == 0
    assert ledger_sum(organisation=tenant.organisation) == 0


def test_entries_are_listed_newest_first_and_filtered_by_kind(tenant):
    org = tenant.organisation
    _post(org, 1, "a", EntryKind.TRIAL)
    _post(org, 2, "b", EntryKind.ADJUSTMENT)
    _post(org, 3, "c", EntryKind.ADJUSTMENT)
    assert [e.idempotency_key for e in ledger_entries_for(organisation=org)] == ["c", "b", "a"]
    trials = ledger_entries_for(organisation=org, kinds=[EntryKind.TRIAL])
    assert [e.idempotency_key for e in trials] == ["a"]


def test_it_announces_balance_changes_only_after_commit(tenant, django_capture_on_commit_callbacks):
    seen = []

    def listener(sender, organisation_ids, kinds, **kwargs):
        seen.append((organisation_ids, kinds))

    balance_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            _post(tenant.organisation, 10, "sig-1")
            assert seen == []  # nothing is announced before the transaction commits
        for callback in callbacks:
            callback()
        assert seen == [([tenant.organisation.pk], ["adjustment"])]
        with django_capture_on_commit_callbacks(execute=True):
            _post(tenant.organisation, 10, "sig-1")  # a replay posts nothing
        assert seen == [([tenant.organisation.pk], ["adjustment"])]
    finally:
        balance_changed.disconnect(listener)


def test_reconciliation_reports_drift(tenant, outsider, caplog):
    org = tenant.organisation
    other = outsider.memberships.get().organisation
    _post(org, 1_000, "r1")
    _post(other, 500, "r2")
    assert balance_reconcile() == []
    CreditBalance.objects.filter(organisation=org).update(balance_nano=1_250)
    drifts = balance_reconcile()
    assert len(drifts) == 1
    assert drifts[0].organisation_id == org.pk
    assert (drifts[0].balance_nano, drifts[0].ledger_nano, drifts[0].drift_nano) == (
        1_250,
        1_000,
        250,
    )
    assert "balance drift" in caplog.text


def test_reconciliation_reports_a_ledger_without_a_balance_row(tenant):
    _post(tenant.organisation, 42, "r3")
    CreditBalance.objects.filter(organisation=tenant.organisation).delete()
    [drift] = balance_reconcile()
    assert (drift.balance_nano, drift.ledger_nano) == (0, 42)


def test_reconcile_task_returns_the_number_of_drifting_organisations(tenant):
    _post(tenant.organisation, 42, "r4")
    assert reconcile_balances.apply().get() == 0
    CreditBalance.objects.filter(organisation=tenant.organisation).update(balance_nano=0)
    assert reconcile_balances.apply().get() == 1


def test_reconcile_is_scheduled_by_celery_beat():
    from config.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "billing.reconcile_balances" in tasks


def test_credit_adjust_posts_an_adjustment_once_per_form(tenant):
    org = tenant.organisation
    entry = credit_adjust(
        organisation=org,
        amount_usd=Decimal("2.5"),
        memo="goodwill",
        created_by=tenant.owner,
        idempotency_key="form-1",
    )
    assert entry.kind == EntryKind.ADJUSTMENT
    assert entry.amount_nano == 2_500_000_000
    assert entry.created_by == tenant.owner
    again = credit_adjust(
        organisation=org,
        amount_usd=Decimal("2.5"),
        memo="goodwill",
        created_by=tenant.owner,
        idempotency_key="form-1",
    )
    assert again is None
    assert balance_get(organisation=org) == 2_500_000_000


@pytest.mark.parametrize(
    ("amount", "memo", "message"),
    [
        (Decimal("0"), "x", "zero"),
        (Decimal("1"), "  ", "memo"),
        (Decimal("2000000"), "x", "limited"),
    ],
)
def test_credit_adjust_refuses_bad_input(tenant, amount, memo, message):
    with pytest.raises(CreditError, match=message):
        credit_adjust(
            organisation=tenant.organisation,
            amount_usd=amount,
            memo=memo,
            created_by=tenant.owner,
            idempotency_key="bad",
        )
    assert not LedgerEntry.objects.exists()


def test_reconcile_reads_both_figures_in_one_statement(tenant, django_assert_num_queries):
    _post(tenant.organisation, 1, "r5")
    with django_assert_num_queries(1):
        balance_reconcile()
