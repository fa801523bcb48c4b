"""The usage worker writes queued events from the Redis stream to the database."""

import json
import time

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command

from billing.models import LedgerEntry
from gateway.models import RequestLog
from gateway.usage import STREAM, RedisUsageQueue
from testkit import make_tenant


@pytest.mark.django_db(transaction=True)
def test_it_writes_queued_events_once(settings_redis):
    tenant = make_tenant("acme")
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = RedisUsageQueue(None, client)
    event = {"request_id": "req_worker1", "organisation_id": tenant.organisation.pk,
             "started_at": time.time(), "client_protocol": "openai",
             "requested_model": "m", "status_code": 200, "outcome": "ok", "cost_nano": 1234}
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
