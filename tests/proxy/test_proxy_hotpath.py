"""Hot-path promises: no database query on a warm request, changes visible at once,
cancellation, keep-alive, credit enforcement."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import httpx
import openai
import pytest
from django.db.backends import utils as db_utils

from billing.models import EntryKind, LedgerEntry
from billing.money import usd_to_nano
from billing.selectors import balance_get
from billing.services import ledger_post
from gateway.models import Model, RequestLog
from gateway.runtime import runtime
from testkit.observe import recorded_events, runtime_reset

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = [{"role": "user", "content": "hello"}]


def client(world) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
    )


class QueryCounter:
    """Counts SQL run by any thread except the usage flusher (which is off the path)."""

    def __init__(self, monkeypatch) -> None:
        self.queries: list[tuple[str, str]] = []
        lock = threading.Lock()
        original = db_utils.CursorWrapper._execute_with_wrappers

        def counting(wrapper, sql, *args, **kwargs):
            name = threading.current_thread().name
            if name != "usage-flusher":
                with lock:
                    self.queries.append((name, sql))
            return original(wrapper, sql, *args, **kwargs)

        monkeypatch.setattr(db_utils.CursorWrapper, "_execute_with_wrappers", counting)


def test_a_warm_request_runs_no_database_query(world, monkeypatch):
    c = client(world)
    c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)  # warms the caches
    c.chat.completions.create(model="test-gpt-5.5", messages=CHAT, stream=True).close()
    world.drain()
    counter = QueryCounter(monkeypatch)
    c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    list(c.chat.completions.create(model="test-gpt-5.5", messages=CHAT, stream=True))
    assert counter.queries == []
    world.drain()
    assert RequestLog.objects.count() == 4


def test_a_price_change_applies_to_the_next_request(world):
    c = client(world)
    first = c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    Model.objects.filter(pk=world.gpt.pk).update(price_output=Decimal("20"))
    world.gpt.refresh_from_db()
    world.gpt.save()  # saving through the ORM publishes the catalog change
    second = c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    out = second.usage.completion_tokens
    assert first.usage.completion_tokens == out
    delta = second.usage.model_extra["cost"] - first.usage.model_extra["cost"]
    assert delta == pytest.approx(out * 10 / 1_000_000, abs=1e-12)


def test_a_suspended_organisation_is_refused_at_once(world):
    c = client(world)
    c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    world.organisation.is_active = False
    world.organisation.save()
    with pytest.raises(openai.PermissionDeniedError):
        c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)


def test_a_client_that_disconnects_mid_stream_cancels_the_upstream(world):
    world.fake.script("gpt-5.5", [{"chunk_delay_ms": 50}])
    words = " ".join(f"w{i}" for i in range(200))
    queued = recorded_events.count
    with httpx.stream(
        "POST",
        f"{world.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {world.secret}"},
        json={
            "model": "test-gpt-5.5",
            "stream": True,
            "messages": [{"role": "user", "content": words}],
        },
    ) as response:
        lines = response.iter_lines()
        received = 0
        for line in lines:
            if line.startswith("data: "):
                received += 1
            if received == 3:
                break  # leaving the block closes the connection mid-stream
    assert recorded_events.wait_for(queued + 1)
    world.drain()
    row = RequestLog.objects.get()
    assert row.outcome == "cancelled" and row.status_code == 499
    assert row.usage_estimated
    assert 0 < row.output_tokens < 200
    assert row.cost_nano > 0
    assert LedgerEntry.objects.get(reference=row.request_id).amount_nano == -row.cost_nano


def test_a_silent_upstream_gets_keepalive_comments(world, settings):
    settings.TOLLGATE_STREAM_HEADER_GRACE_MS = 0
    settings.TOLLGATE_KEEPALIVE_SECONDS = 0.02
    world.fake.script("gpt-5.5", [{"delay_ms": 300}])
    with httpx.stream(
        "POST",
        f"{world.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {world.secret}"},
        json={"model": "test-gpt-5.5", "stream": True, "messages": CHAT},
    ) as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    comments = [line for line in lines if line.startswith(":")]
    data = [line for line in lines if line.startswith("data: ")]
    assert comments and lines.index(comments[0]) < lines.index(data[0])
    assert data[-1] == "data: [DONE]"


def test_an_upstream_pausing_mid_stream_gets_keepalive_comments_between_events(world, settings):
    settings.TOLLGATE_STREAM_HEADER_GRACE_MS = 0
    settings.TOLLGATE_KEEPALIVE_SECONDS = 0.02
    world.fake.script("gpt-5.5", [{"chunk_delay_ms": 150}])
    with httpx.stream(
        "POST",
        f"{world.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {world.secret}"},
        json={"model": "test-gpt-5.5", "stream": True, "messages": CHAT},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    data = [i for i, line in enumerate(lines) if line.startswith("data: {")]
    between = lines[data[0] : data[-1]]
    assert any(line.startswith(":") for line in between)
    assert lines[-1] == "data: [DONE]"


def test_no_credit_is_402_telling_how_to_top_up(world):
    LedgerEntry.objects.all().delete()
    from billing.models import CreditBalance

    CreditBalance.objects.all().delete()
    ledger_post(
        organisation=world.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=1000,
        idempotency_key="tiny",
    )
    with pytest.raises(openai.APIStatusError) as info:
        client(world).chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    assert info.value.status_code == 402
    assert "/o/acme/billing/" in info.value.message
    assert info.value.body["code"] == "insufficient_credit"


def test_a_top_up_is_usable_at_once(world):
    LedgerEntry.objects.all().delete()
    from billing.models import CreditBalance

    CreditBalance.objects.all().delete()
    c = client(world)
    with pytest.raises(openai.APIStatusError):
        c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    ledger_post(
        organisation=world.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=usd_to_nano(5),
        idempotency_key="topup",
    )
    assert c.chat.completions.create(model="test-gpt-5.5", messages=CHAT).choices


def test_concurrent_requests_never_overspend(world):
    """100 simultaneous requests against a balance that covers a few: the admitted
    spend stays within the balance, and the balance equals the ledger's sum."""
    LedgerEntry.objects.all().delete()
    from billing.models import CreditBalance

    CreditBalance.objects.all().delete()
    # Worst case of one request: max_tokens 100 -> 100 * $10/M = $0.001 plus input.
    ledger_post(
        organisation=world.organisation,
        kind=EntryKind.ADJUSTMENT,
        amount_nano=usd_to_nano("0.005"),
        idempotency_key="small",
    )

    async def one(http: httpx.AsyncClient) -> int:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "test-gpt-5.5", "max_tokens": 100, "messages": CHAT},
        )
        return response.status_code

    async def main() -> list[int]:
        async with httpx.AsyncClient(
            base_url=world.url,
            timeout=30,
            headers={"authorization": f"Bearer {world.secret}"},
            limits=httpx.Limits(max_connections=100),
        ) as http:
            return await asyncio.gather(*(one(http) for _ in range(100)))

    statuses = asyncio.run(main())
    assert set(statuses) <= {200, 402}
    assert statuses.count(200) >= 4
    assert statuses.count(402) >= 50
    world.drain()
    balance = balance_get(organisation=world.organisation)
    ledger_sum = sum(LedgerEntry.objects.values_list("amount_nano", flat=True))
    assert balance == ledger_sum
    assert balance >= 0
    billed = RequestLog.objects.filter(outcome="ok")
    assert billed.count() == statuses.count(200)
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == billed.count()


def test_usage_replay_is_idempotent(world):
    from gateway.usage import usage_batch_write

    client(world).chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    world.drain()
    row = RequestLog.objects.get()
    event = {
        "request_id": row.request_id,
        "organisation_id": row.organisation_id,
        "api_key_id": row.api_key_id,
        "started_at": row.started_at.timestamp(),
        "client_protocol": "openai",
        "requested_model": "x",
        "status_code": 200,
        "outcome": "ok",
        "cost_nano": row.cost_nano,
    }
    before = balance_get(organisation=world.organisation)
    assert usage_batch_write([event, event]) == {row.organisation_id: [row.request_id] * 2}
    assert balance_get(organisation=world.organisation) == before
    assert RequestLog.objects.count() == 1


def test_the_key_cache_survives_in_redis_across_workers(world, settings):
    """A second worker process starts with a cold memory cache; with Redis the key
    is found there without a database query."""
    if not settings.REDIS_URL:
        pytest.skip("embedded mode has one process and no shared cache")
    client(world).chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    import redis

    r = redis.Redis.from_url(settings.REDIS_URL)
    assert r.get(f"tg:key:{world.key.secret_hash}") is not None
    runtime_reset(runtime)  # what a fresh worker knows
    client(world).chat.completions.create(model="test-gpt-5.5", messages=CHAT)


def test_a_client_that_leaves_before_the_first_byte_cancels_the_upstream(world, settings):
    """While the upstream is still silent the client gives up: the upstream request is
    cancelled and the request is logged as cancelled, at no cost."""
    world.fake.script("gpt-5.5", [{"hang": True}])
    queued = recorded_events.count
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{world.url}/v1/chat/completions",
            timeout=0.5,
            headers={"authorization": f"Bearer {world.secret}"},
            json={"model": "test-gpt-5.5", "stream": True, "messages": CHAT},
        )
    assert recorded_events.wait_for(queued + 1)
    world.drain()
    row = RequestLog.objects.get()
    assert (row.outcome, row.status_code, row.cost_nano) == ("cancelled", 499, 0)


def test_settlement_survives_redis_losing_its_scripts(world, settings):
    """After a Redis restart the script cache is empty: the batched reserve and settle,
    sent by hash, fail with NOSCRIPT and are sent again with the script; billing is
    unaffected."""
    if not settings.REDIS_URL:
        pytest.skip("embedded mode keeps credit in process")
    import redis

    c = client(world)
    c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    redis.Redis.from_url(settings.REDIS_URL).script_flush()
    c.chat.completions.create(model="test-gpt-5.5", messages=CHAT)
    world.drain()
    assert RequestLog.objects.count() == 2
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 2
    held = redis.Redis.from_url(settings.REDIS_URL).get(
        f"tg:credit:{{{world.organisation.pk}}}:held"
    )
    assert int(held) == 0  # both holds settled


def test_pending_credit_is_released_once_per_request(world, settings):
    """Settled costs count as pending until the ledger has them; releasing a batch
    twice (a replay after a crash before the acknowledgement) releases nothing twice."""
    if not settings.REDIS_URL:
        pytest.skip("checks the Redis keys")
    import redis

    from billing.credit import credit_keys, credit_pending_release

    r = redis.Redis.from_url(settings.REDIS_URL)
    _, _, pending, pendreq = credit_keys(world.organisation.pk)
    raw = client(world).chat.completions.with_raw_response.create(
        model="test-gpt-5.5", messages=CHAT
    )
    request_id = raw.headers["x-tollgate-request-id"]
    world.drain()
    assert int(r.get(pending) or 0) == 0 and not r.hexists(pendreq, request_id)
    r.hset(pendreq, "req_other", 5)  # another request, still pending
    r.incrby(pending, 5)
    credit_pending_release(r, {world.organisation.pk: [request_id, request_id]})
    assert int(r.get(pending)) == 5


def test_usage_is_written_directly_when_the_queue_is_unreachable(world, monkeypatch):
    """A served request is never left unbilled: if the usage queue fails, its event is
    written straight to the database."""

    async def queue_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(runtime.credit, "settle", queue_down)
    monkeypatch.setattr(runtime.usage, "append", queue_down)
    raw = client(world).chat.completions.with_raw_response.create(
        model="test-gpt-5.5", messages=CHAT
    )
    assert raw.parse().choices
    row = RequestLog.objects.get(request_id=raw.headers["x-tollgate-request-id"])
    assert row.cost_nano > 0
    assert LedgerEntry.objects.get(reference=row.request_id).amount_nano == -row.cost_nano


def test_a_key_or_deployment_deleted_before_the_write_does_not_block_the_batch(world):
    """Events name a key and a deployment that were deleted after the request: the
    batch still writes, with those references empty, instead of failing for ever."""
    import time as _time

    from gateway.usage import usage_batch_write

    event = {
        "request_id": "req_orphan",
        "organisation_id": world.organisation.pk,
        "api_key_id": 987654,
        "deployment_id": 987654,
        "started_at": _time.time(),
        "client_protocol": "openai",
        "requested_model": "m",
        "status_code": 200,
        "outcome": "ok",
        "cost_nano": 500,
        "provider": "gone",
    }
    usage_batch_write([event])
    row = RequestLog.objects.get(request_id="req_orphan")
    assert row.api_key_id is None and row.deployment_id is None
    assert LedgerEntry.objects.get(reference="req_orphan").amount_nano == -500
