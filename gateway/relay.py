"""Serving a completion: walk the deployment chain (gateway.routing) and relay the
answer that won, non-streaming or streaming, priced and recorded exactly once."""

from __future__ import annotations

import asyncio
import logging
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
log = logging.getLogger("tollgate.proxy")


async def serve_once(
    call: Call,
    send,
    candidates: list[Candidate],
    bodies: Bodies,
    *,
    hedge_delay: float | None,
    input_estimate: int,
) -> None:
    attempt, data = await walk(
        call,
        candidates,
        bodies,
        attempt_once,
        hedge_delay=hedge_delay,
        input_estimate=input_estimate,
    )
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
        """For the whole stream: after the grace, the headers and a comment if nothing
        was sent yet; from then on a comment whenever nothing was sent for an interval
        (before the first content, and whenever the upstream pauses)."""
        await asyncio.sleep(settings.TOLLGATE_STREAM_HEADER_GRACE_MS / 1000)
        interval = max(settings.TOLLGATE_KEEPALIVE_SECONDS, 0.01)
        if not self.started:
            await self.write(SSE_KEEPALIVE)
        while True:
            wait = interval - (time.monotonic() - self.last_sent)
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                await self.write(SSE_KEEPALIVE)


async def serve_stream(
    call: Call,
    send,
    disconnected: asyncio.Task,
    candidates: list[Candidate],
    bodies: Bodies,
    *,
    hedge_delay: float | None,
    input_estimate: int,
) -> None:
    out = _Out(call, send)
    state: dict[str, Any] = {}

    async def run(attempt: Attempt) -> OpenStream:
        return await stream_open(attempt, input_estimate)

    async def pump() -> None:
        keepalive = asyncio.create_task(out.keepalive())
        try:
            await relay()
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)

    async def relay() -> None:
        attempt, opened = await walk(
            call, candidates, bodies, run, hedge_delay=hedge_delay, input_estimate=input_estimate
        )
        call.adopt(attempt)
        state["opened"] = opened
        call.mark_first_byte()
        adapter = opened.adapter
        try:
            if adapter.done:
                await _finish_stream(call, adapter, input_estimate)
            if opened.preamble:
                await out.write(b"".join(opened.preamble))
            # One write per upstream read, however many events it held: each write is
            # a system call, and events often arrive several to a packet.
            async for chunk in opened.chunks:
                batch: list[bytes] = []
                for event in opened.parser.feed(chunk):
                    batch.extend(adapter.feed(event))
                    if adapter.done:
                        await _finish_stream(call, adapter, input_estimate)
                if batch:
                    await out.write(b"".join(batch))
            for event in opened.parser.flush():
                batch = adapter.feed(event)
                if batch:
                    await out.write(b"".join(batch))
            tail = adapter.finish()
            await _finish_stream(call, adapter, input_estimate)
            if tail:
                await out.write(b"".join(tail))
        except httpx2.HTTPError as exc:
            failure = transport_failure(attempt.candidate, exc)
            raise GatewayError(
                502,
                f"{failure.error.message} (the stream was cut after it started)",
                code="upstream_stream_dropped",
            ) from exc
        except (ClientGone, GatewayError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a malformed event after output started
            log.exception("stream relay failed for %s", call.request_id)
            raise GatewayError(
                502,
                f"{attempt.candidate.label} sent a malformed stream.",
                code="upstream_malformed",
            ) from exc
        finally:
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
        await _bill_partial(
            call, state.get("opened"), input_estimate, status=499, outcome="cancelled"
        )
        return
    except GatewayError as error:
        if not out.started:
            raise  # nothing sent yet: the caller answers with a proper status
        await _bill_partial(
            call,
            state.get("opened"),
            input_estimate,
            status=error.status,
            outcome="error",
            error=error,
        )
        await _send_stream_error(call, send, error)
    finally:
        if not task.done():  # the server is shutting down: stop relaying
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await stream_end(send)


def _partial_usage(call: Call, adapter, input_estimate: int) -> None:
    """A stream that did not end cleanly: price what the upstream reported so far, and
    estimate what it did not (input from the request, output from the events seen)."""
    served = call.served
    if served is None or served.usage is not None:
        return
    usage = (adapter.usage if adapter is not None else None) or Usage()
    if usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens == 0:
        usage.input_tokens = input_estimate
        call.usage_estimated = True
    if usage.output_tokens == 0 and adapter is not None:
        usage.output_tokens = getattr(adapter, "output_estimate", 0)
        call.usage_estimated = True
    served.price(usage)


async def _finish_stream(call: Call, adapter, input_estimate: int) -> None:
    if call.finished:
        return
    call.usage_estimated = bool(getattr(adapter, "usage_estimated", False))
    _partial_usage(call, adapter, input_estimate)  # if no final usage came
    if adapter.error is not None:
        error = GatewayError(
            adapter.error.status, adapter.error.message, code="upstream_stream_error"
        )
        finish = call.finish(status=adapter.error.status, outcome="error", error=error)
    elif not adapter.done:
        error = GatewayError(
            502,
            "The upstream ended the stream without finishing it.",
            code="upstream_stream_incomplete",
        )
        finish = call.finish(status=502, outcome="error", error=error)
    else:
        finish = call.finish(status=200, outcome="ok")
    # Billing must complete even if the client leaves during it.
    await asyncio.shield(finish)


async def _bill_partial(
    call: Call,
    opened: OpenStream | None,
    input_estimate: int,
    *,
    status: int,
    outcome: str,
    error: GatewayError | None = None,
) -> None:
    """The stream ended early (client gone, upstream failure after output started):
    bill what was used so far and log it."""
    if call.finished:
        return
    _partial_usage(call, opened.adapter if opened is not None else None, input_estimate)
    await asyncio.shield(call.finish(status=status, outcome=outcome, error=error))


async def _send_stream_error(call: Call, send, error: GatewayError) -> None:
    try:
        if call.protocol == "anthropic":
            await stream_send(send, sse_encode(call.error_body(error), "error"))
        else:
            await stream_send(send, sse_encode(call.error_body(error)))
    except ClientGone:
        pass


async def relay_passthrough(
    call: Call, send, candidate: Candidate, *, body: bytes, path: str
) -> None:
    """A free upstream call answered as is (token counting)."""
    attempt = Attempt(call=call, candidate=candidate, body=body)
    try:
        response = await runtime.upstream.send(attempt.request(path))  # type: ignore[union-attr]
    except httpx2.HTTPError as exc:
        raise transport_failure(candidate, exc).error from exc
    if response.status_code >= 400:
        error = upstream_error_parse(response.status_code, response.content)
        raise classify(candidate, error, response.headers).error
    await send_json(send, 200, response.content, {"x-tollgate-request-id": call.request_id})


def rng() -> random.Random:
    return _rng
