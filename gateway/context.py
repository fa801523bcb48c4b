"""What every step of the hot path knows about the request it serves: its id, its
client protocol, the raw request and when it started. Created by the endpoint,
never changed afterwards; each step's own results travel forward as values."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from gateway.asgi_io import Incoming

# Where clients say which session a request belongs to, in order of precedence:
# Tollgate's own header; Codex CLI (`session-id`; older versions `session_id`); Claude
# Code; opencode and Kilo Code.
SESSION_HEADERS = (
    "x-tollgate-session-id",
    "session-id",
    "session_id",
    "x-claude-code-session-id",
    "x-session-id",
)


def request_id_new() -> str:
    return f"req_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class RequestContext:
    protocol: str  # the client's: openai | anthropic | responses
    incoming: Incoming
    request_id: str = field(default_factory=request_id_new)
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)  # event-loop clock

    @property
    def headers(self) -> dict[str, str]:
        return self.incoming.headers

    @property
    def session_id(self) -> str:
        """The client's task or conversation: Tollgate's own header, else the one the
        client sends by itself."""
        headers = self.incoming.headers
        for name in SESSION_HEADERS:
            value = headers.get(name)
            if value:
                return value[:200]
        return ""

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)
