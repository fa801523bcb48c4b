"""The usage worker writes queued events from the Redis stream to the database."""

import asyncio
import json
import threading
import time

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command

from billing.models import LedgerEntry
from gateway.models import RequestLog
from gateway.usage import (
    REFUSED_STREAM,
    STREAM,
    LocalUsageQueue,
    RedisUsageQueue,
    UsageFlusher,
)
from testkit.tenants import make_tenant


@pytest.mark.django_db(transaction=True)
def test_it_writes_queued_events_once(settings_redis):
    tenant = make_tenant("acme")
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = RedisUsageQueue(None, client)
    event = {
        "request_id": "req_worker1",
        "organisation_id": tenant.organisation.pk,
        "started_at": time.time(),
        "client_protocol": "openai",
        "requested_model": "m",
        "status_code": 200,
        "outcome": "ok",
        "cost_nano": 1234,
    }
    client.xadd(STREAM, {"e": json.dumps(event)})
    client.xadd(STREAM, {"e": json.dumps(event)})  # a replay
    call_command("usage_worker", "--once")
    assert RequestLog.objects.get().request_id == "req_worker1"
    assert LedgerEntry.objects.get(reference="req_worker1").amount_nano == -1234
    assert queue.take(block=False).events == []


@pytest.fixture
def settings_redis():
    if not settings.REDIS_URL:
        pytest.skip("the usage worker consumes the Redis stream")


def test_it_refuses_to_run_without_redis(settings):
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("usage_worker", "--once")


def _event(tenant, request_id: str, **extra) -> dict:
    return {
        "request_id": request_id,
        "organisation_id": tenant.organisation.pk,
        "started_at": time.time(),
        "client_protocol": "openai",
        "requested_model": "m",
        "status_code": 200,
        "outcome": "ok",
        "cost_nano": 1000,
        **extra,
    }


@pytest.mark.django_db(transaction=True)
def test_an_event_the_database_refuses_is_set_aside_and_the_rest_written(settings_redis):
    tenant = make_tenant("acme")
    client = redis.Redis.from_url(settings.REDIS_URL)
    poison = _event(tenant, "req_poison", organisation_id=987654)  # no such organisation
    for event in (_event(tenant, "req_a"), poison, _event(tenant, "req_b")):
        client.xadd(STREAM, {"e": json.dumps(event)})

    call_command("usage_worker", "--once")

    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == ["req_a", "req_b"]
    assert LedgerEntry.objects.filter(reference__in=["req_a", "req_b"]).count() == 2
    ((_, fields),) = client.xrange(REFUSED_STREAM)
    assert json.loads(fields[b"e"])["request_id"] == "req_poison"
    assert fields[b"error"]
    assert RedisUsageQueue(None, client).take(block=False).events == []  # all acknowledged


@pytest.mark.django_db(transaction=True)
def test_embedded_mode_writes_the_rest_of_a_refused_batch():
    tenant = make_tenant("acme")
    queue = LocalUsageQueue()
    for event in (
        _event(tenant, "req_a"),
        _event(tenant, "req_poison", organisation_id=987654),
        _event(tenant, "req_b"),
    ):
        asyncio.run(queue.append(event))
    released = []
    UsageFlusher(queue, released.append).drain()
    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == ["req_a", "req_b"]
    assert released == [{tenant.organisation.pk: ["req_a", "req_b"]}]


@pytest.mark.django_db(transaction=True)
def test_after_a_partial_batch_the_flusher_lets_events_gather(settings):
    settings.TOLLGATE_USAGE_FLUSH_MS = 60_000  # a linger only stop() cuts short
    tenant = make_tenant("acme")
    queue = LocalUsageQueue()
    batches, first_written = [], threading.Event()

    def written(committed):
        batches.append(sorted(committed[tenant.organisation.pk]))
        first_written.set()

    flusher = UsageFlusher(queue, written)
    flusher.start()
    asyncio.run(queue.append(_event(tenant, "req_1")))
    assert first_written.wait(10)
    for request_id in ("req_2", "req_3"):  # arrive while the flusher lingers
        asyncio.run(queue.append(_event(tenant, request_id)))
    flusher.stop()  # ends the linger; what gathered is written as one batch
    assert batches == [["req_1"], ["req_2", "req_3"]]


@pytest.mark.django_db(transaction=True)
def test_text_the_database_refuses_is_cleaned_and_the_request_still_billed():
    tenant = make_tenant("acme")
    queue = LocalUsageQueue()
    awkward = _event(
        tenant,
        "req_awkward",
        outcome="error",
        status_code=502,
        error_message="upstream said \x00 and \ud800",
        attempts=[{"error": "bad \x00 byte", "status": 502}],
        output_tokens=2**40,
    )
    for event in (_event(tenant, "req_a"), awkward):
        asyncio.run(queue.append(event))
    UsageFlusher(queue, lambda committed: None).drain()

    row = RequestLog.objects.get(request_id="req_awkward")
    assert "\x00" not in row.error_message and row.error_message.startswith("upstream said")
    assert row.output_tokens == 2**31 - 1
    assert LedgerEntry.objects.get(reference="req_awkward").amount_nano == -1000
    assert RequestLog.objects.filter(request_id="req_a").exists()
