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
- `replay`: answer with a recorded response, byte for byte, whatever was asked:
  `{"replay": {"status": 200, "headers": {...}, "body": "<the exact bytes, as a str>"}}`,
  or the path of a JSON file holding that object (a recording, e.g. the fixtures under
  `tests/fixtures/vendor_responses/`; other keys of the file are ignored). Only the
  recorded headers are sent (names lowercased; `content-length` added when missing,
  except for streams), so the recording decides content-type, request-id and
  rate-limit headers. A `text/event-stream` body is sent event by event as recorded
  (split after each blank line, `\n\n` or `\r\n\r\n`), so `drop_after_chunks` and
  `chunk_delay_ms` count and pace those events; `delay_ms` also applies. It cannot be
  combined with `status`, `body`, `headers`, `hang` or `stream_error_after_chunks`:
  the recording is the whole answer. Body bytes are the str encoded as UTF-8.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_INT_FIELDS = (
    "status",
    "delay_ms",
    "drop_after_chunks",
    "stream_error_after_chunks",
    "chunk_delay_ms",
)
_KNOWN = {*_INT_FIELDS, "headers", "body", "hang", "replay"}
_REPLAY_KNOWN = {"status", "headers", "body"}
# Fields a replay cannot be combined with: the recording is the whole answer.
_NOT_WITH_REPLAY = ("status", "body", "headers", "hang", "stream_error_after_chunks")
# An SSE event ends with a blank line; each piece keeps its terminator.
_SSE_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass(frozen=True, slots=True)
class Replay:
    """A recorded answer: status, headers and the exact body bytes. For a
    `text/event-stream` answer, `events` is the body cut after each event (joined they
    are the body); otherwise the body in one piece."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    events: tuple[bytes, ...]

    @property
    def streamed(self) -> bool:
        return any(
            k == b"content-type" and v.split(b";")[0].strip().lower() == b"text/event-stream"
            for k, v in self.headers
        )

    @classmethod
    def parse(cls, raw: Any) -> Replay:
        if isinstance(raw, str | Path):
            path = Path(raw)
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"replay: cannot read recording {str(path)!r}: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ValueError(f"replay: {str(path)!r} must hold a JSON object")
            raw = {k: v for k, v in loaded.items() if k in _REPLAY_KNOWN}
        if not isinstance(raw, dict):
            raise ValueError(f"replay must be an object or a file path, got {raw!r}")
        unknown = set(raw) - _REPLAY_KNOWN
        if unknown:
            raise ValueError(
                f"unknown replay keys {sorted(unknown)}; known: {sorted(_REPLAY_KNOWN)}"
            )
        if "status" not in raw or "body" not in raw:
            raise ValueError("replay needs a status and a body")
        status = raw["status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"replay status must be an HTTP status (100-599), got {status!r}")
        body = raw["body"]
        if not isinstance(body, str):
            raise ValueError("replay body must be a str (the exact bytes of the answer)")
        headers = raw.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("replay headers must be an object of header name -> str value")
        encoded = tuple(
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        )
        content = body.encode("utf-8")
        replay = cls(status=status, headers=encoded, body=content, events=(content,))
        if replay.streamed:
            replay = cls(status, encoded, content, _sse_events(content))
        elif not any(k == b"content-length" for k, _ in encoded):
            replay = cls(
                status,
                (*encoded, (b"content-length", str(len(content)).encode())),
                content,
                (content,),
            )
        return replay


def _sse_events(content: bytes) -> tuple[bytes, ...]:
    events, start = [], 0
    for match in _SSE_EVENT_END.finditer(content):
        events.append(content[start : match.end()])
        start = match.end()
    if start < len(content):
        events.append(content[start:])
    return tuple(events)


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
    replay: Replay | None = None

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
        if "replay" in raw:
            clash = [name for name in _NOT_WITH_REPLAY if raw.get(name) not in (None, False, {})]
            if clash:
                raise ValueError(f"replay cannot be combined with {clash}")
            fields["replay"] = Replay.parse(raw["replay"])
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
