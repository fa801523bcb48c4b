"""python manage.py usage_worker: write queued usage events (request log rows and
ledger debits) to the database, in batches, until stopped. Any number may run: they
share the Redis stream through a consumer group."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.credit import credit_pending_release
from gateway.invalidation import sync_redis
from gateway.usage import RedisUsageQueue, UsageFlusher


class Command(BaseCommand):
    help = "Consume the usage queue and write request logs and ledger debits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="write what is queued now, then exit"
        )

    def handle(self, *args: object, once: bool = False, **options: object) -> None:
        client = sync_redis()
        if client is None:
            raise CommandError(
                "usage_worker needs REDIS_URL: without Redis each gateway "
                "process writes its own usage."
            )
        queue = RedisUsageQueue(None, client)
        flusher = UsageFlusher(queue, lambda committed: credit_pending_release(client, committed))
        if once:
            flusher.drain()
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        flusher.start()
        self.stderr.write(f"usage worker consuming {settings.REDIS_URL.rsplit('@', 1)[-1]}")
        stop.wait()
        flusher.stop()  # finishes the batch in hand and drains what is queued
