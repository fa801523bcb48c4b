"""The usage flusher's batch write (gateway.usage.usage_batch_write) and the ledger post
under it: one set-based statement per table on PostgreSQL, the ORM on SQLite, and the
same contract on both: replaying changes nothing, balances move by exactly the new
debits, vanished keys and deployments become NULL, and what the ORM would write is
written."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from django.db import DataError, connection, connections, transaction

from accounts.models import ApiKey
from accounts.services import api_key_create
from billing.models import CreditBalance, EntryKind, LedgerEntry
from billing.selectors import balance_get
from billing.services import (
    Posting,
    balance_reconcile,
    ledger_post,
    ledger_post_many,
    ledger_post_many_keys,
)
from billing.signals import balance_changed
from gateway import usage
from gateway.models import Deployment, Model, Provider, RequestLog
from gateway.usage import usage_batch_write
from testkit.tenants import make_tenant

STARTED = 1_760_000_000.123456
CREDIT = 10**12


@pytest.fixture
def shop(db):
    """Two organisations with credit, a key each (two for the first) and a deployment."""
    first = make_tenant("acme").organisation
    second = make_tenant("globex").organisation
    for org in (first, second):
        ledger_post(
            organisation=org,
            kind=EntryKind.ADJUSTMENT,
            amount_nano=CREDIT,
            idempotency_key=f"credit:{org.pk}",
        )
    keys = [
        api_key_create(organisation=org, name=f"k{n}").api_key
        for n, org in enumerate((first, first, second))
    ]
    provider = Provider.objects.create(
        slug="fakeai", name="Fake", protocol="openai", base_url="http://127.0.0.1:9/v1"
    )
    model = Model.objects.create(public_id="test-gpt", display_name="Test GPT")
    deployment = Deployment.objects.create(model=model, provider=provider, upstream_model="gpt")
    return {"orgs": (first, second), "keys": keys, "deployment": deployment}


@pytest.fixture(autouse=True)
def _fresh_last_used_throttle(monkeypatch):
    """The throttle is per process and keyed by key id, which tests reuse."""
    monkeypatch.setattr(usage, "_last_used_written", {})


def _event(
    n: int,
    key: ApiKey,
    deployment: Deployment | None,
    *,
    cost: int = 1_007,
    byok: bool = False,
    **extra,
) -> dict:
    """An event as gateway.charging builds it (UsageEvent.wire())."""
    event = {
        "request_id": f"req_fast_{n:06d}",
        "organisation_id": key.organisation_id,
        "api_key_id": key.pk,
        "session_id": f"s{n % 3}",
        "client_protocol": "anthropic" if n % 2 else "openai",
        "requested_model": "gpt-latest",
        "resolved_model": "test-gpt",
        "provider": "fakeai",
        "deployment_id": deployment.pk if deployment else None,
        "upstream_model": "gpt",
        "stream": bool(n % 2),
        "status_code": 200,
        "outcome": "ok",
        "error_type": "",
        "error_message": "",
        "started_at": STARTED + n,
        "latency_ms": 900 + n,
        "ttfb_ms": 120 + n,
        "input_tokens": 1000 + n,
        "output_tokens": 50 + n,
        "cache_read_tokens": n,
        "cache_write_5m_tokens": 2 * n,
        "cache_write_1h_tokens": 3 * n,
        "reasoning_tokens": 4 * n,
        "usage_estimated": False,
        "cost_nano": cost * (n + 1),
        "byok": byok,
        "attempts": [
            {
                "provider": "fakeai",
                "upstream_model": "gpt",
                "byok": byok,
                "status": 200,
                "error": "",
                "error_type": "",
                "latency_ms": 900,
                "started_at": round(STARTED + n, 3),
            }
        ],
        "route_reason": "",
        "dropped_tools": "web_search_20250305",
        "web_search_calls": 3,
        "web_fetch_calls": 1,
        "service_tier": "priority",
    }
    event.update(extra)
    return event


def _mixed_batch(shop, count: int) -> list[dict]:
    keys, deployment = shop["keys"], shop["deployment"]
    return [_event(n, keys[n % 3], deployment, byok=n % 4 == 0) for n in range(count)]


def _debits(events: list[dict]) -> dict[int, int]:
    owed: dict[int, int] = defaultdict(int)
    for e in events:
        owed[e["organisation_id"]] += e["cost_nano"]
    return owed


def _ledger_snapshot() -> list[tuple]:
    return list(
        LedgerEntry.objects.order_by("pk").values_list(
            "pk", "idempotency_key", "amount_nano", "kind", "created_at"
        )
    )


def test_it_writes_a_row_and_a_debit_per_event_and_moves_balances(shop):
    events = _mixed_batch(shop, 30)
    committed = usage_batch_write(events)
    expected: dict[int, list[str]] = defaultdict(list)
    for e in events:
        expected[e["organisation_id"]].append(e["request_id"])
    assert committed == expected
    assert RequestLog.objects.count() == 30
    for org in shop["orgs"]:
        assert balance_get(organisation=org) == CREDIT - _debits(events)[org.pk]
    assert balance_reconcile() == []
    for e in events:
        entry = LedgerEntry.objects.get(idempotency_key=f"usage:{e['request_id']}")
        kind = EntryKind.BYOK_FEE if e["byok"] else EntryKind.USAGE
        assert (entry.kind, entry.amount_nano, entry.reference, entry.memo, entry.api_key_id) == (
            kind,
            -e["cost_nano"],
            e["request_id"],
            "test-gpt",
            e["api_key_id"],
        )


def test_a_row_holds_what_the_event_said(shop):
    key, deployment = shop["keys"][0], shop["deployment"]
    event = _event(
        7,
        key,
        deployment,
        outcome="error",
        status_code=529,
        error_type="overloaded_error",
        error_message="Überlastet \u2014 later 😅",
        usage_estimated=True,
    )
    usage_batch_write([event])
    row = RequestLog.objects.get()
    for field in usage._LOG_FIELDS:
        assert getattr(row, field) == event[field], field
    assert row.started_at == datetime.fromtimestamp(STARTED + 7, tz=UTC)
    assert (row.organisation_id, row.api_key_id, row.deployment_id) == (
        key.organisation_id,
        key.pk,
        deployment.pk,
    )


def test_missing_and_null_fields_take_the_model_defaults(shop):
    key = shop["keys"][0]
    bare = {
        "request_id": "req_bare",
        "organisation_id": key.organisation_id,
        "started_at": STARTED,
        "client_protocol": "openai",
        "requested_model": "m",
        "status_code": 200,
        "outcome": "ok",
        "cost_nano": 5,
        "attempts": None,
        "ttfb_ms": None,
        "session_id": None,
    }
    usage_batch_write([bare])
    row = RequestLog.objects.get()
    assert (row.attempts, row.session_id, row.ttfb_ms, row.latency_ms, row.byok) == (
        [],
        "",
        None,
        0,
        False,
    )
    assert (row.api_key_id, row.deployment_id, row.resolved_model) == (None, None, "")
    entry = LedgerEntry.objects.get(reference="req_bare")
    assert (entry.kind, entry.amount_nano, entry.memo, entry.api_key_id) == (
        EntryKind.USAGE,
        -5,
        "m",
        None,
    )


def test_replaying_a_batch_changes_nothing(shop):
    events = _mixed_batch(shop, 40)
    first = usage_batch_write(events)
    rows = list(RequestLog.objects.order_by("pk").values_list("pk", "request_id"))
    ledger = _ledger_snapshot()
    balances = {org.pk: balance_get(organisation=org) for org in shop["orgs"]}
    assert usage_batch_write(events) == first  # every debit is in, so all are released
    assert usage_batch_write(list(reversed(events))).keys() == first.keys()
    assert list(RequestLog.objects.order_by("pk").values_list("pk", "request_id")) == rows
    assert _ledger_snapshot() == ledger
    assert {org.pk: balance_get(organisation=org) for org in shop["orgs"]} == balances
    assert balance_reconcile() == []


def test_an_overlapping_batch_writes_and_debits_only_the_new_events(shop):
    events = _mixed_batch(shop, 20)
    usage_batch_write(events[:12])
    usage_batch_write(events[6:])
    assert RequestLog.objects.count() == 20
    assert LedgerEntry.objects.filter(kind__in=[EntryKind.USAGE, EntryKind.BYOK_FEE]).count() == 20
    for org in shop["orgs"]:
        assert balance_get(organisation=org) == CREDIT - _debits(events)[org.pk]


def test_the_first_event_of_a_request_id_in_a_batch_wins(shop):
    key, deployment = shop["keys"][0], shop["deployment"]
    event = _event(1, key, deployment)
    again = {**event, "latency_ms": 1, "cost_nano": 999_999}
    assert usage_batch_write([event, again]) == {key.organisation_id: [event["request_id"]] * 2}
    assert RequestLog.objects.get().latency_ms == event["latency_ms"]
    assert LedgerEntry.objects.get(reference=event["request_id"]).amount_nano == -event["cost_nano"]
    assert balance_get(organisation=shop["orgs"][0]) == CREDIT - event["cost_nano"]


def test_free_events_are_logged_but_not_posted(shop):
    key, deployment = shop["keys"][2], shop["deployment"]
    events = [
        _event(n, key, deployment, cost=0, status_code=429, outcome="error") for n in range(3)
    ]
    assert usage_batch_write(events) == {}
    assert RequestLog.objects.count() == 3
    assert not LedgerEntry.objects.filter(reference__startswith="req_fast_").exists()
    assert balance_get(organisation=shop["orgs"][1]) == CREDIT


def test_deleted_keys_and_deployments_become_null(shop):
    kept, doomed = shop["keys"][0], shop["keys"][1]
    deployment = shop["deployment"]
    events = [
        _event(0, kept, deployment),
        _event(1, doomed, deployment),
        _event(2, kept, None, deployment_id=987_654),
    ]
    doomed_id = doomed.pk
    doomed.delete()
    deployment.delete()
    usage_batch_write(events)
    rows = {r.request_id: r for r in RequestLog.objects.all()}
    assert [
        (rows[e["request_id"]].api_key_id, rows[e["request_id"]].deployment_id) for e in events
    ] == [(kept.pk, None), (None, None), (kept.pk, None)]
    entries = dict(
        LedgerEntry.objects.filter(reference__startswith="req_fast_").values_list(
            "reference", "api_key_id"
        )
    )
    assert entries == {
        "req_fast_000000": kept.pk,
        "req_fast_000001": None,
        "req_fast_000002": kept.pk,
    }
    assert not ApiKey.objects.filter(pk=doomed_id).exists()


def test_byok_fees_and_usage_are_posted_by_kind_and_announced_after_commit(
    shop, django_capture_on_commit_callbacks
):
    key, deployment = shop["keys"][2], shop["deployment"]
    seen = []

    def listener(sender, organisation_ids, kinds, **kwargs):
        seen.append((organisation_ids, kinds))

    balance_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            usage_batch_write(
                [
                    _event(0, key, deployment, byok=True),
                    _event(1, key, deployment),
                    _event(2, shop["keys"][0], deployment),
                ]
            )
        assert seen == [(sorted(o.pk for o in shop["orgs"]), ["byok_fee", "usage"])]
        with django_capture_on_commit_callbacks(execute=True):
            usage_batch_write([_event(0, key, deployment, byok=True)])  # a replay
        assert len(seen) == 1
    finally:
        balance_changed.disconnect(listener)
    kinds = dict(
        LedgerEntry.objects.filter(reference__startswith="req_fast_").values_list(
            "reference", "kind"
        )
    )
    assert kinds == {
        "req_fast_000000": "byok_fee",
        "req_fast_000001": "usage",
        "req_fast_000002": "usage",
    }


def test_a_big_batch_is_written_in_full(shop):
    events = _mixed_batch(shop, 1_500)
    committed = usage_batch_write(events)
    assert sum(len(ids) for ids in committed.values()) == 1_500
    assert RequestLog.objects.count() == 1_500
    assert LedgerEntry.objects.filter(reference__startswith="req_fast_").count() == 1_500
    for org in shop["orgs"]:
        assert balance_get(organisation=org) == CREDIT - _debits(events)[org.pk]
    assert balance_reconcile() == []
    usage_batch_write(events)
    assert RequestLog.objects.count() == 1_500
    assert balance_reconcile() == []


def test_a_first_debit_creates_the_balance_row(shop):
    org = make_tenant("initech").organisation
    key = api_key_create(organisation=org, name="k").api_key
    assert not CreditBalance.objects.filter(organisation=org).exists()
    usage_batch_write([_event(3, key, shop["deployment"])])
    assert balance_get(organisation=org) == -4_028
    assert balance_reconcile() == []


def test_last_used_moves_to_the_newest_request_of_the_batch(shop):
    key = shop["keys"][0]
    usage_batch_write([_event(5, key, None), _event(2, key, None)])
    key.refresh_from_db()
    assert key.last_used_at == datetime.fromtimestamp(STARTED + 5, tz=UTC)


def test_ledger_post_many_returns_the_entries_as_saved(shop):
    org = shop["orgs"][1]
    batch = [
        Posting(
            organisation_id=org.pk,
            kind=EntryKind.USAGE,
            amount_nano=-3,
            idempotency_key="p1",
            reference="r1",
            memo="m",
            created_by_id=None,
        ),
        Posting(
            organisation_id=org.pk, kind=EntryKind.ADJUSTMENT, amount_nano=10, idempotency_key="p2"
        ),
    ]
    entries = ledger_post_many(postings=batch)
    assert [e.idempotency_key for e in entries] == ["p1", "p2"]
    for entry in entries:
        stored = LedgerEntry.objects.get(pk=entry.pk)
        assert (stored.idempotency_key, stored.amount_nano, stored.kind, stored.created_at) == (
            entry.idempotency_key,
            entry.amount_nano,
            entry.kind,
            entry.created_at,
        )
        assert not entry._state.adding
    assert entries[0].organisation == org
    assert ledger_post_many(postings=batch) == []


def test_ledger_post_many_keys_returns_the_keys_newly_written(shop):
    first, second = shop["orgs"]
    batch = [
        Posting(
            organisation_id=first.pk, kind=EntryKind.USAGE, amount_nano=-3, idempotency_key="k1"
        ),
        Posting(
            organisation_id=second.pk, kind=EntryKind.BYOK_FEE, amount_nano=-5, idempotency_key="k2"
        ),
        Posting(
            organisation_id=first.pk, kind=EntryKind.USAGE, amount_nano=-7, idempotency_key="k1"
        ),
    ]  # a repeat in the same batch: the first wins
    assert ledger_post_many_keys(postings=batch) == {"k1", "k2"}
    assert ledger_post_many_keys(postings=batch) == set()
    more = [
        *batch,
        Posting(
            organisation_id=second.pk, kind=EntryKind.USAGE, amount_nano=-11, idempotency_key="k3"
        ),
    ]
    assert ledger_post_many_keys(postings=more) == {"k3"}
    assert ledger_post_many_keys(postings=[]) == set()
    assert balance_get(organisation=first) == CREDIT - 3
    assert balance_get(organisation=second) == CREDIT - 16
    assert balance_reconcile() == []


def test_a_too_long_value_fails_the_batch_instead_of_being_cut(shop):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite does not enforce varchar lengths")
    event = _event(1, shop["keys"][0], shop["deployment"], error_type="x" * 61)
    with pytest.raises(DataError), transaction.atomic():
        usage_batch_write([event])
    assert not RequestLog.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other_commits", [True, False])
def test_a_concurrent_post_of_the_same_key_is_debited_once(other_commits):
    """Another transaction has posted one of the batch's debits but not committed: the
    batch waits for it, then skips that debit if it committed, or writes it if it
    rolled back. Either way it is debited exactly once and the batch succeeds."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: there is no concurrent writer")
    org = make_tenant("acme").organisation
    key = api_key_create(organisation=org, name="k").api_key
    events = [_event(n, key, None) for n in range(3)]
    contested = events[1]
    posted, release, done = threading.Event(), threading.Event(), threading.Event()
    results: dict[str, object] = {}

    class Rollback(Exception):
        pass

    def other_writer():
        try:
            with transaction.atomic():
                ledger_post_many(
                    postings=[
                        Posting(
                            organisation_id=org.pk,
                            kind=EntryKind.USAGE,
                            amount_nano=-contested["cost_nano"],
                            idempotency_key=f"usage:{contested['request_id']}",
                            reference=contested["request_id"],
                        )
                    ]
                )
                posted.set()
                release.wait(30)
                if not other_commits:
                    raise Rollback
        except Rollback:
            pass
        finally:
            posted.set()
            connections.close_all()

    def flusher():
        try:
            results["committed"] = usage_batch_write(events)
        except Exception as exc:  # reported by the assertion below
            results["error"] = exc
        finally:
            done.set()
            connections.close_all()

    other = threading.Thread(target=other_writer)
    other.start()
    assert posted.wait(30)
    writer = threading.Thread(target=flusher)
    writer.start()
    _wait_until_blocked_on_a_lock(done)
    release.set()
    other.join(30)
    writer.join(30)
    assert "error" not in results, results.get("error")
    assert results["committed"] == {org.pk: [e["request_id"] for e in events]}
    assert LedgerEntry.objects.filter(reference=contested["request_id"]).count() == 1
    assert balance_get(organisation=org) == -sum(e["cost_nano"] for e in events)
    assert balance_reconcile() == []


def _wait_until_blocked_on_a_lock(done: threading.Event) -> None:
    """Return once a session of this database waits on a lock (the flusher on the
    other writer's row), or once the flusher finished; at most 30 seconds."""
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline and not done.is_set():
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
