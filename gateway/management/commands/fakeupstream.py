"""`python manage.py fakeupstream --port N [--host H]`: serve the fake OpenAI/Anthropic
upstream (gateway.fakeupstream) with uvicorn, for the `make run` demo and benchmarks.

One process on purpose: scripted behaviours and the request log live in its memory.
"""

from __future__ import annotations

import uvicorn
from django.core.management.base import BaseCommand, CommandParser

from gateway.fakeupstream import FakeUpstream


class Command(BaseCommand):
    help = "Serve the fake OpenAI/Anthropic upstream."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument(
            "--valid-key", action="append", dest="valid_keys", metavar="KEY",
            help="accept only these API keys (repeatable; default: any key not starting "
                 "with 'bad-')",
        )

    def handle(self, *args: object, host: str, port: int, valid_keys: list[str] | None,
               **options: object) -> None:
        app = FakeUpstream(valid_keys=valid_keys)
        self.stdout.write(f"fake upstream on http://{host}:{port} "
                          "(OpenAI base URL /v1, Anthropic base URL /)")
        uvicorn.run(app, host=host, port=port, loop="auto", http="auto", lifespan="off",
                    log_level="warning", access_log=False, timeout_graceful_shutdown=5)
