"""Small ASGI helpers for the proxy: reading the request, answering JSON, and sending
a stream while watching for the client going away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from gateway.protocols.json_text import json_text

# The ASGI callables (asgiref's types, without depending on asgiref).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 32 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


@dataclass
class Incoming:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    query: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_scope(cls, scope: Scope) -> Incoming:
        headers = {}
        for name, value in scope["headers"]:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        return cls(
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            query=scope.get("query_string", b"").decode("latin-1"),
        )


async def body_read(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _header_list(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def json_dumps(data: Any) -> bytes:
    # Decimals, and the gateway's float `usage.cost`, are written as exact decimal
    # numbers (`0.000033`, not `3.3e-05`): see json_text.
    # "replace": a lone surrogate (an upstream's "\ud800" escape) becomes "?" instead
    # of failing the answer or the usage event.
    return json_text(data).encode("utf-8", "replace")


async def send_json(
    send: Send, status: int, data: Any, headers: dict[str, str] | None = None
) -> None:
    body = data if isinstance(data, bytes) else json_dumps(data)
    out = {"content-type": "application/json", "content-length": str(len(body))}
    if headers:
        out.update(headers)
    await send({"type": "http.response.start", "status": status, "headers": _header_list(out)})
    await send({"type": "http.response.body", "body": body})


async def stream_start(send: Send, headers: dict[str, str] | None = None) -> None:
    out = {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }
    if headers:
        out.update(headers)
    await send({"type": "http.response.start", "status": 200, "headers": _header_list(out)})


async def stream_send(send: Send, data: bytes) -> None:
    try:
        await send({"type": "http.response.body", "body": data, "more_body": True})
    except OSError as exc:  # uvicorn raises ClientDisconnected (an OSError)
        raise ClientGone() from exc


async def stream_end(send: Send) -> None:
    try:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        pass


def disconnect_watch(receive: Receive) -> asyncio.Task[None]:
    """A task that completes when the client disconnects (the body is already read)."""

    async def wait() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    return asyncio.create_task(wait())
