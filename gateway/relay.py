"""Step 6 of the hot path: answering the client, and handing the result to settlement.

    serve_once     non-streaming: the winning attempt's answer, its cost in the body and
                   in X-Tollgate-Cost-USD, settled before it is sent
    serve_stream   streaming: response headers at once (or after a short grace), the
                   winning attempt's events as they arrive with keep-alive comments
                   while the upstream is silent, settled before the last bytes go out;
                   a client that leaves or an upstream that breaks mid-stream is billed
                   for what was used so far

Every path out of here settles exactly once (gateway.charging.settle).
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx2
from django.conf import settings

from billing.money import nano_to_usd_str
from gateway import charging
from gateway.asgi_io import (
    ClientGone,
    Send,
    json_dumps,
    send_json,
    stream_end,
    stream_send,
    stream_start,
)
from gateway.attempts import Attempt, Chain, OpenStream, answer_once, stream_open
from gateway.failures import transport_failure
from gateway.planning import Candidate, Plan
from gateway.protocols import registry
from gateway.protocols.errors import GatewayError
from gateway.protocols.secrets_mask import mask_secrets
from gateway.protocols.sse import SSE_KEEPALIVE
from gateway.protocols.usage import Usage
from gateway.runtime import runtime

log = logging.getLogger("tollgate.proxy")


def client_headers(ticket: charging.Ticket, chain: Chain | None = None) -> dict[str, str]:
    """What every answer carries: the request id, and where it was (or would be) served."""
    headers = {"x-tollgate-request-id": ticket.ctx.request_id}
    winner = chain.winner if chain is not None else None
    deployment = winner.candidate.deployment if winner else ticket.deployment
    model = winner.candidate.model if winner else ticket.model
    if deployment is not None:
        headers["x-tollgate-provider"] = deployment.provider.slug
    if model is not None:
        headers["x-tollgate-model"] = model.public_id
    if chain is not None and chain.records:
        headers["x-tollgate-attempted-count"] = str(len(chain.records))
    dropped = chain.dropped_tools() if chain is not None else ()
    if dropped:
        headers["x-tollgate-dropped-tools"] = ",".join(dropped)
    return headers


def outcome_of(
    chain: Chain,
    *,
    status: int,
    outcome: str,
    error: GatewayError | None = None,
    ttfb_ms: int | None = None,
    usage_estimated: bool = False,
) -> charging.Outcome:
    return charging.Outcome(
        status=status,
        outcome=outcome,
        error=error,
        served=chain.served(),
        attempts=chain.records,
        extra_cost_nano=chain.extra_cost_nano,
        ttfb_ms=ttfb_ms,
        usage_estimated=usage_estimated,
        dropped_tools=chain.dropped_tools(),
    )


async def serve_once(ticket: charging.Ticket, chain: Chain, send: Send) -> None:
    attempt, data = await chain.run(answer_once)
    if chain.extra_cost_nano:
        data["usage"]["cost"] = (attempt.cost_nano + chain.extra_cost_nano) / 1_000_000_000
    result = outcome_of(chain, status=200, outcome="ok")
    await charging.settle(ticket, result)
    headers = client_headers(ticket, chain)
    headers["x-tollgate-cost-usd"] = nano_to_usd_str(result.cost_nano)
    await send_json(send, 200, json_dumps(data), headers)


class _Out:
    """The client side of a stream: headers once, then bytes, with keep-alive comments
    whenever nothing else has been sent for a while."""

    def __init__(self, headers: dict[str, str], send: Send) -> None:
        self.headers, self.send = headers, send
        self.started = False
        self.last_sent = time.monotonic()

    async def open(self) -> None:
        if not self.started:
            self.started = True
            await stream_start(self.send, self.headers)

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


class _Relay:
    """One stream being relayed: the winning attempt's events, and its settlement."""

    def __init__(self, ticket: charging.Ticket, chain: Chain, out: _Out) -> None:
        self.ticket, self.chain, self.out = ticket, chain, out
        self.opened: OpenStream | None = None
        self.ttfb_ms: int | None = None

    async def pump(self) -> None:
        keepalive = asyncio.create_task(self.out.keepalive())
        try:
            await self._relay()
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)

    async def _relay(self) -> None:
        attempt, opened = await self.chain.run(stream_open)
        self.opened = opened
        self.ttfb_ms = self.chain.ctx.elapsed_ms()
        self.out.headers = client_headers(self.ticket, self.chain)
        adapter = opened.adapter
        try:
            if adapter.done:
                await self.finish()
            if opened.preamble:
                await self.out.write(b"".join(opened.preamble))
            # One write per upstream read, however many events it held: each write is
            # a system call, and events often arrive several to a packet.
            async for chunk in opened.chunks:
                batch: list[bytes] = []
                for event in opened.parser.feed(chunk):
                    batch.extend(adapter.feed(event))
                    if adapter.done:
                        await self.finish()
                if batch:
                    await self.out.write(b"".join(batch))
            for event in opened.parser.flush():
                batch = adapter.feed(event)
                if batch:
                    await self.out.write(b"".join(batch))
            tail = adapter.finish()
            await self.finish()
            if tail:
                await self.out.write(b"".join(tail))
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
            log.exception("stream relay failed for %s", self.chain.ctx.request_id)
            raise GatewayError(
                502,
                f"{attempt.candidate.label} sent a malformed stream.",
                code="upstream_malformed",
            ) from exc
        finally:
            await opened.response.aclose()

    def _partial_usage(self) -> bool:
        """A stream that did not end cleanly: price what the upstream reported so far,
        and estimate what it did not (input from the request, output from the events
        seen). Whether anything was estimated."""
        winner = self.chain.winner
        adapter = self.opened.adapter if self.opened is not None else None
        estimated = bool(adapter.usage_estimated) if adapter is not None else False
        if winner is None or winner.usage is not None:
            return estimated
        usage = (adapter.usage if adapter is not None else None) or Usage()
        if usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens == 0:
            usage.input_tokens = self.chain.plan.input_estimate
            estimated = True
        if usage.output_tokens == 0 and adapter is not None:
            usage.output_tokens = adapter.output_estimate
            estimated = True
        winner.price(usage)
        return estimated

    async def finish(self) -> None:
        """The upstream's answer is complete (or ended): settle before the client gets
        the last bytes."""
        if self.ticket.settled:
            return
        assert self.opened is not None
        adapter = self.opened.adapter
        error: GatewayError | None = None
        if adapter.error is not None:
            known = (self.opened.attempt.candidate.api_key,)
            error = GatewayError(
                adapter.error.status,
                mask_secrets(adapter.error.message, known),
                code="upstream_stream_error",
            )
            status, outcome = adapter.error.status, "error"
        elif not adapter.done:
            error = GatewayError(
                502,
                "The upstream ended the stream without finishing it.",
                code="upstream_stream_incomplete",
            )
            status, outcome = 502, "error"
        else:
            status, outcome = 200, "ok"
        await self.bill_partial(status=status, outcome=outcome, error=error)

    async def bill_partial(
        self, *, status: int, outcome: str, error: GatewayError | None = None
    ) -> None:
        """Settle with what the upstream reported, estimating what it did not (a stream
        that ended early: client gone, upstream failure after output started)."""
        if self.ticket.settled:
            return
        estimated = self._partial_usage()
        await charging.settle(
            self.ticket,
            outcome_of(
                self.chain,
                status=status,
                outcome=outcome,
                error=error,
                ttfb_ms=self.ttfb_ms,
                usage_estimated=estimated,
            ),
        )


async def serve_stream(
    ticket: charging.Ticket, chain: Chain, send: Send, disconnected: asyncio.Task[None]
) -> None:
    out = _Out(client_headers(ticket, chain), send)
    relay = _Relay(ticket, chain, out)
    task = asyncio.create_task(relay.pump())
    try:
        await asyncio.wait({task, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise ClientGone()
        task.result()
    except ClientGone:
        await relay.bill_partial(status=499, outcome="cancelled")
        return
    except GatewayError as error:
        if not out.started:
            raise  # nothing sent yet: the endpoint answers with a proper status
        await relay.bill_partial(status=error.status, outcome="error", error=error)
        route = registry.route(chain.ctx.protocol, _wire(chain))
        adapter = relay.opened.adapter if relay.opened is not None else None
        try:
            await stream_send(send, route.stream_error(error, chain.ctx.request_id, adapter))
        except ClientGone:
            pass
    finally:
        if not task.done():  # the server is shutting down: stop relaying
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await stream_end(send)


def _wire(chain: Chain) -> str:
    winner = chain.winner
    return winner.candidate.wire if winner is not None else chain.plan.candidates[0].wire


async def relay_passthrough(
    ticket: charging.Ticket, cand: Candidate, send: Send, *, body: bytes, path: str
) -> None:
    """A free upstream call to one candidate, answered as is (token counting)."""
    chain = Chain(ticket.ctx, Plan((cand,), {}, 0), {})
    attempt = Attempt(chain=chain, candidate=cand, body=body)
    assert runtime.upstream is not None
    try:
        response = await runtime.upstream.send(attempt.request(path))
    except httpx2.HTTPError as exc:
        raise transport_failure(cand, exc).error from exc
    if response.status_code >= 400:
        raise attempt.failed(response.status_code, response.content, response.headers).error
    headers = {"x-tollgate-request-id": ticket.ctx.request_id}
    await send_json(send, 200, response.content, headers)
