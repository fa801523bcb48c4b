"""`python manage.py fakeupstream --port N [--host H] [--delay-ms MS] [--chunk-delay-ms MS]
[--demo]`:
serve the fake OpenAI/Anthropic upstream (testkit.fakeupstream) with uvicorn, for the
`make run` demo and benchmarks. The delays give every unscripted answer a model's pace:
that long before the first byte, and between stream events.

One process on purpose: scripted behaviours and the request log live in its memory.
"""

from __future__ import annotations

import uvicorn
from django.core.management.base import BaseCommand, CommandParser

from testkit.fakeupstream import FakeUpstream
from testkit.fakeupstream.script import Behaviour


class Command(BaseCommand):
    help = "Serve the fake OpenAI/Anthropic upstream."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument(
            "--valid-key",
            action="append",
            dest="valid_keys",
            metavar="KEY",
            help="accept only these API keys (repeatable; default: any key not starting "
            "with 'bad-')",
        )
        parser.add_argument(
            "--delay-ms", type=int, default=0, help="wait this long before answering (default 0)"
        )
        parser.add_argument(
            "--chunk-delay-ms",
            type=int,
            default=0,
            help="wait this long between stream events (default 0)",
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help="the `make run` demo: call a tool only when the user's text says 'tool'",
        )

    def handle(
        self,
        *args: object,
        host: str,
        port: int,
        valid_keys: list[str] | None,
        delay_ms: int,
        chunk_delay_ms: int,
        demo: bool = False,
        **options: object,
    ) -> None:
        paced = Behaviour.parse({"delay_ms": delay_ms, "chunk_delay_ms": chunk_delay_ms})
        app = FakeUpstream(
            valid_keys=valid_keys,
            default=paced if delay_ms or chunk_delay_ms else None,
            tools_when_asked=demo,
        )
        self.stdout.write(
            f"fake upstream on http://{host}:{port} (OpenAI base URL /v1, Anthropic base URL /)"
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            loop="auto",
            http="auto",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
