"""Recording what happened, off the hot path.

The proxy appends one usage event per request to a durable queue before the
response completes (a Redis stream, or an in-process queue in the embedded default).
A flusher thread in every gateway process takes events in batches and writes, in one
transaction, the request log rows and the ledger debits. Both are keyed by request id
(unique request_id; ledger idempotency key `usage:<request id>`), so replaying a batch
after a crash changes nothing.

On PostgreSQL a batch costs a handful of statements whatever its size (one set-based
INSERT per table, the batch sent as one JSON document), so the worker's CPU per event
stays small (bench/usage_write.py); the embedded SQLite default uses the ORM.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from django.conf import settings
from django.db import (
    DataError,
    IntegrityError,
    close_old_connections,
    connection,
    connections,
    models,
    transaction,
)
from django.db.models import JSONField, Q

from accounts.models import ApiKey
from billing.credit import USAGE_STREAM
from billing.models import EntryKind
from billing.services import Posting, ledger_post_many_keys
from config.sql import column_base_type
from gateway.asgi_io import json_dumps
from gateway.models import Deployment, RequestLog
from gateway.usage_event import EVENT_COLUMNS as _EVENT_COLUMNS
from gateway.usage_event import LOG_FIELDS as _LOG_FIELDS

log = logging.getLogger(__name__)

STREAM = USAGE_STREAM  # the settle script appends to it (billing.credit)
REFUSED_STREAM = "tg:usage:refused"  # events the database refused on their own
LAST_USED_RESOLUTION_SECONDS = 30
_last_used_written: dict[int, float] = {}
GROUP = "flushers"


def _existing(ids: dict[type[models.Model], set[Any]]) -> dict[type[models.Model], set[int]]:
    """Which of the given ids of each model still name a row (keys and deployments can
    be deleted while their events wait in the queue)."""
    wanted = {model: {i for i in some if i is not None} for model, some in ids.items()}
    found: dict[type[models.Model], set[int]] = {model: set() for model in wanted}
    asked = [model for model, some in wanted.items() if some]
    if not asked:
        return found
    if connection.vendor != "postgresql":
        for model in asked:
            found[model] = set(
                model._default_manager.filter(pk__in=wanted[model]).values_list("pk", flat=True)
            )
        return found
    # One raw statement for all models: the ORM spends more CPU building these queries
    # than PostgreSQL running them, and each round trip costs the worker CPU too.
    quote = connection.ops.quote_name
    sql = " UNION ALL ".join(
        f"SELECT {n}, {quote(m._meta.pk.column)} FROM {quote(m._meta.db_table)} "
        f"WHERE {quote(m._meta.pk.column)} = ANY(%s)"
        for n, m in enumerate(asked)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(wanted[model]) for model in asked])
        for n, pk in cursor.fetchall():
            found[asked[n]].add(pk)
    return found


def usage_batch_write(events: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Write request log rows and ledger debits for a batch, idempotently.
    Returns {organisation_id: [request ids now debited in the ledger]} so the credit
    store can release them from `pending` (idempotently, by request id)."""
    if not events:
        return {}
    # A key or deployment deleted between the request and this write must not make
    # the batch fail for ever: its reference becomes NULL, as the schema says.
    existing = _existing(
        {
            ApiKey: {e.get("api_key_id") for e in events},
            Deployment: {e.get("deployment_id") for e in events},
        }
    )
    keys, deployments = existing[ApiKey], existing[Deployment]
    key_ids = [e.get("api_key_id") if e.get("api_key_id") in keys else None for e in events]
    deployment_ids = [
        e.get("deployment_id") if e.get("deployment_id") in deployments else None for e in events
    ]
    postings = _postings(events, key_ids)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _request_logs_insert(events, key_ids, deployment_ids)
        else:
            RequestLog.objects.bulk_create(
                [_request_log(*row) for row in zip(events, key_ids, deployment_ids, strict=True)],
                ignore_conflicts=True,
            )
        ledger_post_many_keys(postings=postings)
        _last_used_update(events, key_ids)
    # Whether written now or by an earlier run of this batch, every debit is in.
    committed: dict[int, list[str]] = defaultdict(list)
    for p in postings:
        committed[p.organisation_id].append(p.reference)
    return dict(committed)


def _postings(events: list[dict[str, Any]], key_ids: list[int | None]) -> list[Posting]:
    """The ledger debit of each event that cost something (usage, or the BYOK fee)."""
    return [
        Posting(
            organisation_id=e["organisation_id"],
            kind=EntryKind.BYOK_FEE if e.get("byok") else EntryKind.USAGE,
            amount_nano=-int(e["cost_nano"]),
            idempotency_key=f"usage:{e['request_id']}",
            reference=e["request_id"],
            memo=f"{e.get('resolved_model') or e.get('requested_model')}",
            api_key_id=key_id,
        )
        for e, key_id in zip(events, key_ids, strict=True)
        if e.get("cost_nano")
    ]


def _request_log(e: dict[str, Any], key_id: int | None, deployment_id: int | None) -> RequestLog:
    return RequestLog(
        organisation_id=e["organisation_id"],
        api_key_id=key_id,
        deployment_id=deployment_id,
        started_at=datetime.fromtimestamp(e["started_at"], tz=UTC),
        **{f: e[f] for f in _LOG_FIELDS if f in e and e[f] is not None},
    )


@functools.cache
def _request_log_insert_sql() -> str:
    """One INSERT for a whole batch sent as one JSON array (json_to_recordset): the
    worker's CPU goes into one C-encoded json.dumps instead of adapting thousands of
    parameters. Built from the model's own fields so that a model change cannot drift
    from it: a field the events carry is read from them (missing or null takes the
    model's default, as with the ORM); any other field takes its default. Types are
    the columns' base types (varchar, not varchar(n)): a too-long value fails the
    insert, as with the ORM, instead of being cut short by a cast. Rows go in request
    id order, so workers replaying overlapping batches lock the unique index in the
    same order (no deadlock)."""
    quote = connection.ops.quote_name
    fields = [f for f in RequestLog._meta.concrete_fields if not f.primary_key]
    from_events = [f for f in fields if f.attname in _EVENT_COLUMNS]
    record = ", ".join(f"{quote(f.attname)} {column_base_type(f)}" for f in from_events)
    values = ", ".join(
        f"COALESCE(r.{quote(f.attname)}, %s::{column_base_type(f)})"
        if f.attname in _EVENT_COLUMNS
        else f"%s::{column_base_type(f)}"
        for f in fields
    )
    request_id = quote(RequestLog._meta.get_field("request_id").column)
    return (
        f"INSERT INTO {quote(RequestLog._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) "
        f"SELECT {values} FROM json_to_recordset(%s::json) AS r({record}) "
        f"ORDER BY r.{quote('request_id')} ON CONFLICT ({request_id}) DO NOTHING"
    )


def _field_defaults() -> list[Any]:
    """Each field's default as a query parameter (JSON fields as JSON text)."""
    defaults = []
    for field in RequestLog._meta.concrete_fields:
        if not field.primary_key:
            default = field.get_default()
            if isinstance(field, JSONField):
                default = json.dumps(default, cls=field.encoder)
            defaults.append(default)
    return defaults


def _request_logs_insert(
    events: list[dict[str, Any]], key_ids: list[int | None], deployment_ids: list[int | None]
) -> None:
    """PostgreSQL: the batch's request log rows in one statement. The first event of a
    request id wins, as with bulk_create."""
    rows: dict[str, dict[str, Any]] = {}
    for e, key_id, deployment_id in zip(events, key_ids, deployment_ids, strict=True):
        if e["request_id"] not in rows:
            rows[e["request_id"]] = {
                **e,
                "api_key_id": key_id,
                "deployment_id": deployment_id,
                "started_at": datetime.fromtimestamp(e["started_at"], tz=UTC).isoformat(),
            }
    batch = json.dumps(list(rows.values()), separators=(",", ":"))
    with connection.cursor() as cursor:
        cursor.execute(_request_log_insert_sql(), [*_field_defaults(), batch])


def _last_used_update(events: list[dict[str, Any]], key_ids: list[int | None]) -> None:
    """Move each key's `last_used_at` to its newest request in the batch, at most once
    per LAST_USED_RESOLUTION_SECONDS per process ("last used" is shown to the minute),
    in key order (concurrent batches lock the keys in the same order)."""
    last_used: dict[int, float] = {}  # key id -> newest request time in this batch
    for e, key_id in zip(events, key_ids, strict=True):
        if key_id:
            last_used[key_id] = max(last_used.get(key_id, 0), e["started_at"])
    for key_id, ts in sorted(last_used.items()):
        if ts - _last_used_written.get(key_id, 0) < LAST_USED_RESOLUTION_SECONDS:
            continue
        _last_used_written[key_id] = ts
        when = datetime.fromtimestamp(ts, tz=UTC)
        ApiKey.objects.filter(pk=key_id).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=when)
        ).update(last_used_at=when)


# The database refusing the data (not being unreachable: that is an OperationalError,
# and the batch is retried whole). SQLite's driver refuses lone surrogates itself.
_REFUSED = (DataError, IntegrityError, UnicodeError)


def _write_one(event: dict[str, Any]) -> dict[int, list[str]]:
    """One event; if the database refuses it, once more with its text and numbers made
    storable (upstream text may hold NUL or lone surrogates, which PostgreSQL refuses;
    a count may overflow its column): the request is billed either way."""
    try:
        return usage_batch_write([event])
    except _REFUSED:
        cleaned = _storable(event)
        if cleaned == event:
            raise
        log.warning(
            "usage event %s written with its text and numbers cleaned", event.get("request_id")
        )
        return usage_batch_write([cleaned])


_INT_MAX = 2**31 - 1  # the token and latency columns are 32-bit


def _storable(value: Any, key: str = "") -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and key not in ("cost_nano", "started_at"):
        return min(max(value, 0), _INT_MAX)
    if isinstance(value, dict):
        return {k: _storable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


@dataclass
class Batch:
    """Events taken from a queue, and the queue's handles to acknowledge them."""

    events: list[dict[str, Any]]
    ids: list[Any]


class UsageQueue(Protocol):
    """Where usage events wait for the worker: a Redis stream shared by every process
    (`RedisUsageQueue`), or process memory in the embedded default
    (`LocalUsageQueue`). Events are usage_event.UsageEvent.wire() dicts."""

    async def append(self, event: dict[str, Any]) -> None:
        """Queue one event (the hot path; the credit store may have done it already)."""

    def take(self, *, block: bool) -> Batch:
        """The next batch (empty if none came within a flush interval)."""

    def ack(self, batch: Batch) -> None:
        """The batch is written: remove it for good."""

    def set_aside(self, event: dict[str, Any], error: str) -> None:
        """The database refused this event on its own: keep it apart for the operator."""


class UsageFlusher:
    """Takes batches from a queue and writes them; runs in its own thread.

    `on_written({org: [request ids]})` is called after each committed batch, before it
    is acknowledged (the credit store releases what it counted as pending)."""

    def __init__(
        self, source: UsageQueue, on_written: Callable[[dict[int, list[str]]], None]
    ) -> None:
        self._source = source
        self._on_written = on_written
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one batch at a time: drain() waits for it
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="usage-flusher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.drain()
        connections.close_all()  # this thread's, used by drain()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    written = self.flush_once(block=True)
                except Exception:  # keep flushing; the events stay queued for a retry
                    log.exception("usage flush failed; will retry")
                    self._stop.wait(1.0)
                    continue
                if 0 < written < settings.TOLLGATE_USAGE_BATCH_SIZE:
                    # A batch costs a few statements whatever its size: below full
                    # batches, let events gather for one flush interval (usage is
                    # written at most that much later; nothing waits for it).
                    interval = settings.TOLLGATE_USAGE_FLUSH_MS / 1000
                    self._stop.wait(max(interval - (time.monotonic() - started), 0))
        finally:
            connections.close_all()

    def flush_once(self, *, block: bool) -> int:
        # The lock covers taking the batch too: drain() must not find the queue empty
        # while another thread holds events it has taken but not yet written.
        with self._lock:
            batch = self._source.take(block=block)
            if not batch.events:
                return 0
            try:
                close_old_connections()
                committed = self._write(batch.events)
            finally:
                close_old_connections()
            if committed:  # before the ack: a crash in between replays, harmlessly
                self._on_written(committed)
            self._source.ack(batch)
        return len(batch.events)

    def _write(self, events: list[dict[str, Any]]) -> dict[int, list[str]]:
        """Write a batch. If the database refuses its data (not: is unreachable), write
        the events one by one and set aside each one it refuses on its own, so that one
        bad event cannot hold back every organisation's usage for ever."""
        try:
            return usage_batch_write(events)
        except _REFUSED:
            if len(events) == 1:
                raise
            log.exception(
                "a usage batch was refused; writing its %d events one by one", len(events)
            )
        committed: dict[int, list[str]] = defaultdict(list)
        for event in events:
            try:
                written = _write_one(event)
            except _REFUSED as exc:
                log.error(
                    "usage event %s refused by the database and set aside: %s; %s",
                    event.get("request_id"),
                    exc,
                    json.dumps(event, default=str),
                )
                self._source.set_aside(event, str(exc))
                continue
            for org_id, request_ids in written.items():
                committed[org_id] += request_ids
        return dict(committed)

    def drain(self) -> None:
        """Write everything queued so far, in the calling thread."""
        while self.flush_once(block=False):
            pass


class LocalUsageQueue:
    """In-process queue (embedded default, single process)."""

    def __init__(self) -> None:
        self._q: queue.Queue[dict[str, Any]] = queue.Queue()

    async def append(self, event: dict[str, Any]) -> None:
        self._q.put_nowait(event)

    def take(self, *, block: bool) -> Batch:
        events: list[dict[str, Any]] = []
        try:
            timeout = settings.TOLLGATE_USAGE_FLUSH_MS / 1000
            events.append(self._q.get(block=block, timeout=timeout if block else None))
        except queue.Empty:
            return Batch([], [])
        while len(events) < settings.TOLLGATE_USAGE_BATCH_SIZE:
            try:
                events.append(self._q.get_nowait())
            except queue.Empty:
                break
        return Batch(events, [])

    def ack(self, batch: Batch) -> None:
        pass

    def set_aside(self, event: dict[str, Any], error: str) -> None:
        """Nowhere durable to keep it in process: the flusher has logged it whole."""


class RedisUsageQueue:
    """A Redis stream with a consumer group; entries are acknowledged and deleted only
    after their batch committed, and entries left pending by a dead worker are
    claimed by another after a minute."""

    CLAIM_IDLE_MS = 60_000

    def __init__(self, async_client: Any, sync_client: Any) -> None:
        self._r = async_client
        self._s = sync_client
        self._consumer = f"{socket.gethostname()}-{threading.get_native_id()}-{id(self)}"
        self._last_claim = 0.0
        self._group_create()

    def _group_create(self) -> None:
        try:
            self._s.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: it exists
            if "BUSYGROUP" not in str(exc):
                raise

    async def append(self, event: dict[str, Any]) -> None:
        """An event with no credit hold to settle (the settle script appends the rest)."""
        await self._r.xadd(STREAM, {"e": json_dumps(event)})

    def take(self, *, block: bool) -> Batch:
        try:
            return self._take(block=block)
        except Exception as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis lost the stream or the group (a restart without persistence):
            # recreate it; events appended since are still read from the start.
            self._group_create()
            return self._take(block=block)

    def _take(self, *, block: bool) -> Batch:
        count = settings.TOLLGATE_USAGE_BATCH_SIZE
        entries: list[tuple[Any, dict]] = []
        now = time.monotonic()
        if now - self._last_claim > 10 or not block:
            self._last_claim = now
            idle = self.CLAIM_IDLE_MS if block else 0
            claimed = self._s.xautoclaim(STREAM, GROUP, self._consumer, idle, "0-0", count=count)
            entries.extend(claimed[1])
        if not entries:
            response = self._s.xreadgroup(
                GROUP,
                self._consumer,
                {STREAM: ">"},
                count=count,
                block=settings.TOLLGATE_USAGE_FLUSH_MS if block else None,
            )
            for _stream, items in response or []:
                entries.extend(items)
        events, ids = [], []
        for entry_id, fields in entries:
            if not fields:  # deleted while pending
                ids.append(entry_id)
                continue
            raw = fields.get(b"e") or fields.get("e")
            if raw is None:  # as json.loads(None) would: the batch is retried
                raise TypeError(f"usage stream entry {entry_id!r} has no event")
            events.append(json.loads(raw))
            ids.append(entry_id)
        if ids and not events:
            self._s.xack(STREAM, GROUP, *ids)
        return Batch(events, ids)

    def set_aside(self, event: dict[str, Any], error: str) -> None:
        """Keep an event the database refused in a stream of its own, for the operator
        to inspect and replay (XRANGE tg:usage:refused)."""
        self._s.xadd(REFUSED_STREAM, {"e": json.dumps(event), "error": error[:1000]})

    def ack(self, batch: Batch) -> None:
        if batch.ids:
            pipe = self._s.pipeline(transaction=False)
            pipe.xack(STREAM, GROUP, *batch.ids)
            pipe.xdel(STREAM, *batch.ids)
            pipe.execute()
