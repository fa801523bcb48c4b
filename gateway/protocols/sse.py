"""Server-sent events: an incremental parser and an encoder.

The parser keeps each event's raw bytes, so a stream that needs no translation can be
relayed byte for byte while only the events billing needs are decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str
    raw: bytes  # the event as received, including its terminating blank line

    @property
    def is_comment(self) -> bool:
        return self.event is None and self.data == "" and self.raw.startswith(b":")

    def json(self) -> Any:
        return json.loads(self.data)

    def json_object(self) -> dict[str, Any] | None:
        """The data as a JSON object; None if it is not one (or not JSON)."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


class SSEParser:
    """Feed bytes as they arrive; get back complete events. Accepts LF and CRLF."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            raw = buffer[start : end + 2]
            start = end + 2
            event = _parse_event(raw)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes received that do not yet form a complete event."""
        return self._buffer

    def flush(self) -> list[SSEEvent]:
        """At end of stream: a final event not followed by a blank line."""
        if not self._buffer.strip():
            self._buffer = b""
            return []
        raw, self._buffer = self._buffer.rstrip(b"\n") + b"\n\n", b""
        event = _parse_event(raw)
        return [event] if event is not None else []


def _parse_event(raw: bytes) -> SSEEvent | None:
    # The shapes vendors send nearly always: one data line, after at most an event
    # line. They are read without splitting the event into lines.
    last = len(raw) - 2
    if raw.startswith(b"data: ") and raw.find(b"\n") == last:
        return SSEEvent(event=None, data=raw[6:last].decode("utf-8", "replace"), raw=raw)
    if raw.startswith(b"event: "):
        first = raw.find(b"\n")
        if raw.startswith(b"data: ", first + 1) and raw.find(b"\n", first + 1) == last:
            return SSEEvent(
                event=raw[7:first].decode("utf-8", "replace"),
                data=raw[first + 7 : last].decode("utf-8", "replace"),
                raw=raw,
            )
    return _parse_event_lines(raw)


def _parse_event_lines(raw: bytes) -> SSEEvent | None:
    name: str | None = None
    data_lines: list[str] = []
    only_comments = True
    for line in raw.decode("utf-8", errors="replace").split("\n"):
        if not line:
            continue
        if line.startswith(":"):
            continue
        only_comments = False
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data_lines.append(value)
        elif field == "event":
            name = value
    if only_comments:
        return SSEEvent(event=None, data="", raw=raw) if raw.strip() else None
    return SSEEvent(event=name, data="\n".join(data_lines), raw=raw)


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def sse_encode(data: Any, event: str | None = None) -> bytes:
    """One event. `data` is JSON-encoded unless it is already a string."""
    body = data if isinstance(data, str) else _dumps(data)
    if event is None:
        return f"data: {body}\n\n".encode()
    return f"event: {event}\ndata: {body}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b": keep-alive\n\n"
