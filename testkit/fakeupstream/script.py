"""Scripted behaviours: what the fake does instead of (or on top of) a normal answer.

A test queues behaviours per upstream model name; each request for that model takes
the next one (FIFO). The model "*" is a fallback queue that serves any model whose own
queue is empty. A behaviour is a dict with any of:

- `status` (int), `headers` (dict), `body` (dict, str, or null for the vendor's default
  body for that status and protocol): answer with that error instead.
- `hang: true`: accept the request and never answer until the client disconnects.
- `delay_ms`: wait that long before the first byte.
- `drop_after_chunks`: send that many stream events (or, unstreamed, only the response
  head) and then abort the connection.
- `stream_error_after_chunks`: send that many events, then the vendor's mid-stream
  error (Anthropic `event: error`, OpenAI `data: {"error": ...}`) and end; `body`, if
  given, replaces the error payload. Unstreamed, the vendor's error status is sent.
- `chunk_delay_ms`: wait that long between stream events.
- `headers` alone: extra response headers on a normal answer.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

_INT_FIELDS = (
    "status",
    "delay_ms",
    "drop_after_chunks",
    "stream_error_after_chunks",
    "chunk_delay_ms",
)
_KNOWN = {*_INT_FIELDS, "headers", "body", "hang"}


@dataclass(frozen=True, slots=True)
class Behaviour:
    status: int | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: dict[str, Any] | str | None = None
    hang: bool = False
    delay_ms: int = 0
    drop_after_chunks: int | None = None
    stream_error_after_chunks: int | None = None
    chunk_delay_ms: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Behaviour:
        """Check a behaviour as a test wrote it; a typo fails loudly, not silently."""
        if not isinstance(raw, dict):
            raise ValueError(f"a behaviour must be an object, got {raw!r}")
        unknown = set(raw) - _KNOWN
        if unknown:
            raise ValueError(f"unknown behaviour keys {sorted(unknown)}; known: {sorted(_KNOWN)}")
        fields: dict[str, Any] = {}
        for name in _INT_FIELDS:
            value = raw.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
            fields[name] = value
        status = fields.get("status")
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        headers = raw.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError("headers must be an object of header name -> value")
        fields["headers"] = tuple(
            (str(k).lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()
        )
        body = raw.get("body")
        if body is not None and not isinstance(body, dict | str):
            raise ValueError("body must be an object, a string or null")
        fields["body"] = body
        fields["hang"] = bool(raw.get("hang", False))
        return cls(**fields)


class ScriptBook:
    """FIFO queues of behaviours per model. Tests script from their own thread while the
    server pops from its event loop, hence the lock."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Behaviour]] = {}
        self._lock = threading.Lock()

    def add(self, model: str, behaviours: list[dict[str, Any]]) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError("model must be a non-empty string (or '*' for any model)")
        if not isinstance(behaviours, list):
            raise ValueError("behaviours must be a list")
        parsed = [Behaviour.parse(raw) for raw in behaviours]
        with self._lock:
            self._queues.setdefault(model, deque()).extend(parsed)

    def pop(self, model: str) -> Behaviour | None:
        if not self._queues:  # the hot path: nothing scripted
            return None
        with self._lock:
            for key in (model, "*"):
                queue = self._queues.get(key)
                if queue:
                    behaviour = queue.popleft()
                    if not queue:
                        del self._queues[key]
                    return behaviour
        return None

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
