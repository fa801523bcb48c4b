"""Serving a completion: walk the deployment chain (gateway.routing) and relay the
answer that won, non-streaming or streaming, priced and recorded exactly once."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import httpx2
from django.conf import settings

from gateway.asgi_io import (
    ClientGone,
    json_dumps,
    send_json,
    stream_end,
    stream_send,
    stream_start,
)
from gateway.attempts import (
    Attempt,
    Candidate,
    OpenStream,
    attempt_once,
    classify,
    stream_open,
    transport_failure,
)
from gateway.calls import Call
from gateway.protocols.errors import GatewayError, upstream_error_parse
from gateway.protocols.sse import SSE_KEEPALIVE, sse_encode
from gateway.protocols.usage import Usage
from gateway.routing import Bodies, walk
from gateway.runtime import runtime

_rng = random.Random()


async def serve_once(call: Call, send, candidates: list[Candidate],
                     bodies: Bodies, *, hedge_delay: float | None,
                     input_estimate: int) -> None:
    attempt, data = await walk(call, candidates, bodies, attempt_once,
                               hedge_delay=hedge_delay, input_estimate=input_estimate)
    call.adopt(attempt)
    if call.extra_cost_nano:
        data["usage"]["cost"] = call.cost_nano / 1_000_000_000
    await call.finish(status=200, outcome="ok")
    await send_json(send, 200, json_dumps(data), call.cost_headers())


class _Out:
    """The client side of a stream: headers once, then bytes, with keep-alive comments
    whenever nothing else has been sent for a while."""

    def __init__(self, call: Call, send) -> None:
        self.call, self.send = call, send
        self.started = False
        self.sent_data = False
        self.last_sent = time.monotonic()

    async def open(self) -> None:
        if not self.started:
            self.started = True
            await stream_start(self.send, self.call.base_headers())

    async def write(self, data: bytes) -> None:
        await self.open()
        await stream_send(self.send, data)
        self.last_sent = time.monotonic()

    async def keepalive(self) -> None:
        await asyncio.sleep(settings.TOLLGATE_STREAM_HEADER_GRACE_MS / 1000)
        interval = max(settings.TOLLGATE_KEEPALIVE_SECONDS, 0.01)
        await self.write(SSE_KEEPALIVE)
        while True:
            wait = interval - (time.monotonic() - self.last_sent)
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                await self.write(SSE_KEEPALIVE)


async def serve_stream(call: Call, send, disconnected: asyncio.Task,
                       candidates: list[Candidate], bodies: Bodies, *,
                       hedge_delay: float | None, input_estimate: int) -> None:
    out = _Out(call, send)
    state: dict[str, Any] = {}

    async def run(attempt: Attempt) -> OpenStream:
        return await stream_open(attempt, input_estimate)

    async def pump() -> None:
        keepalive = asyncio.create_task(out.keepalive())
        try:
            attempt, opened = await walk(call, candidates, bodies, run,
                                         hedge_delay=hedge_delay, input_estimate=input_estimate)
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
        call.adopt(attempt)
        state["opened"] = opened
        call.mark_first_byte()
        adapter = opened.adapter
        keepalive = asyncio.create_task(out.keepalive())  # the upstream may pause
        try:
            if adapter.done:
                await _finish_stream(call, adapter)
            if opened.preamble:
                await out.write(b"".join(opened.preamble))
            # One write per upstream read, however many events it held: each write is
            # a system call, and events often arrive several to a packet.
            async for chunk in opened.chunks:
                batch: list[bytes] = []
                for event in opened.parser.feed(chunk):
                    batch.extend(adapter.feed(event))
                    if adapter.done:
                        await _finish_stream(call, adapter)
                if batch:
                    await out.write(b"".join(batch))
            for event in opened.parser.flush():
                batch = adapter.feed(event)
                if batch:
                    await out.write(b"".join(batch))
            tail = adapter.finish()
            await _finish_stream(call, adapter)
            if tail:
                await out.write(b"".join(tail))
        except httpx2.HTTPError as exc:
            failure = transport_failure(attempt.candidate, exc)
            raise GatewayError(502, f"{failure.error.message} (the stream was cut after it "
                               "started)", code="upstream_stream_dropped") from exc
        finally:
            keepalive.cancel()
            await opened.response.aclose()

    task = asyncio.create_task(pump())
    try:
        await asyncio.wait({task, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise ClientGone()
        task.result()
    except ClientGone:
        await _cancelled(call, state.get("opened"), input_estimate)
        return
    except GatewayError as error:
        if not out.started:
            raise  # nothing sent yet: the caller answers with a proper status
        await call.finish(status=error.status, outcome="error", error=error)
        await _send_stream_error(call, send, error)
    await stream_end(send)


async def _finish_stream(call: Call, adapter) -> None:
    if call.finished:
        return
    served = call.served
    if served is not None and served.usage is None:  # the hook never ran
        served.price(adapter.usage or Usage())
    call.usage_estimated = bool(getattr(adapter, "usage_estimated", False))
    if adapter.error is not None:
        error = GatewayError(adapter.error.status, adapter.error.message,
                             code="upstream_stream_error")
        await call.finish(status=adapter.error.status, outcome="error", error=error)
    else:
        await call.finish(status=200, outcome="ok")


async def _cancelled(call: Call, opened: OpenStream | None, input_estimate: int) -> None:
    """The client went away: bill what was used so far (estimated if the upstream had
    not reported it yet) and log the request as cancelled."""
    if call.finished:
        return
    if opened is not None and call.served is not None:
        adapter = opened.adapter
        usage = adapter.usage or Usage(input_tokens=input_estimate)
        if usage.output_tokens == 0:
            usage.output_tokens = getattr(adapter, "output_estimate", 0)
            call.usage_estimated = True
        call.served.price(usage)
    await call.finish(status=499, outcome="cancelled")


async def _send_stream_error(call: Call, send, error: GatewayError) -> None:
    try:
        if call.protocol == "anthropic":
            await stream_send(send, sse_encode(call.error_body(error), "error"))
        else:
            await stream_send(send, sse_encode(call.error_body(error)))
    except ClientGone:
        pass


async def relay_passthrough(call: Call, send, candidate: Candidate, *, body: bytes,
                            path: str) -> None:
    """A free upstream call answered as is (token counting)."""
    attempt = Attempt(call=call, candidate=candidate, body=body)
    try:
        response = await runtime.client.send(attempt.request(path))  # type: ignore[union-attr]
    except httpx2.HTTPError as exc:
        raise transport_failure(candidate, exc).error from exc
    if response.status_code >= 400:
        error = upstream_error_parse(response.status_code, response.content)
        raise classify(candidate, error, response.headers).error
    await send_json(send, 200, response.content, {"x-tollgate-request-id": call.request_id})


def body_dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def rng() -> random.Random:
    return _rng
