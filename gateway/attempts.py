"""Step 5 of the hot path: calling the upstreams until one answers.

A `Chain` walks the plan's candidates: one attempt at a time, or, when hedging
(tollgate/fast), the next one started if the first has not answered within the hedge
delay, keeping the first that succeeds. A latency budget bounds the time to first
byte across all attempts. Each attempt is one entry of the request log's fallback
chain (`Chain.records`), owned here.

One attempt sends the request and classifies a failure (gateway.failures): which
failures let the next deployment be tried, which rest a deployment and for how long.
A stream is read up to its first content, so that a failure before any byte reached
the client can still fall back invisibly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2

from gateway import charging
from gateway.asgi_io import json_dumps
from gateway.context import RequestContext
from gateway.failures import (
    AttemptFailed,
    classify,
    failure_summary,
    transport_failure,
    upstream_error_masked,
    upstream_error_relayed,
)
from gateway.planning import Candidate, Plan
from gateway.protocols import registry
from gateway.protocols.errors import GatewayError, upstream_error_parse
from gateway.protocols.output_limits import output_limit_apply
from gateway.protocols.sse import SSEParser
from gateway.protocols.usage import Usage
from gateway.runtime import runtime

log = logging.getLogger("tollgate.proxy")

T = TypeVar("T")


# --- one attempt -------------------------------------------------------------------


@dataclass
class Attempt:
    """One call to one candidate; its record becomes one entry of the fallback chain."""

    chain: Chain
    candidate: Candidate
    body: bytes
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    usage: Usage | None = None
    cost_nano: int = 0
    record: dict[str, Any] | None = None

    @property
    def route(self) -> registry.Route:
        return registry.route(self.chain.ctx.protocol, self.candidate.wire)

    def price(self, usage: Usage) -> dict[str, Any]:
        """Price this attempt's usage (the usage hook of its stream adapter). The
        client is shown the request's whole cost: this attempt and any hedged loser's."""
        self.usage = usage
        self.cost_nano, extra = charging.price(
            usage, model=self.candidate.model, byok=self.candidate.byok
        )
        extra["cost"] = (self.cost_nano + self.chain.extra_cost_nano) / charging.NANO_PER_USD
        return extra

    def served(self) -> charging.Served:
        cand = self.candidate
        return charging.Served(cand.model, cand.deployment, cand.byok, self.usage, self.cost_nano)

    def log(self, status: int, error: str = "", *, note: str = "", error_type: str = "") -> None:
        deployment = self.candidate.deployment
        self.record = {
            "provider": deployment.provider.slug,
            "upstream_model": deployment.upstream_model,
            "byok": self.candidate.byok,
            "status": status,
            "error": error[:500],
            "error_type": error_type,
            "latency_ms": int((time.monotonic() - self.started) * 1000),
            "started_at": round(self.started_wall, 3),
        }
        if note:
            self.record["note"] = note
        self.chain.records.append(self.record)

    def request(self, path: str | None = None) -> httpx2.Request:
        assert runtime.upstream is not None
        return runtime.upstream.request(
            self.candidate.deployment,
            api_key=self.candidate.api_key,
            body=self.body,
            client_headers=self.chain.ctx.headers,
            path=path,
            wire=self.candidate.wire,
        )

    async def send(self, *, stream: bool = False) -> httpx2.Response:
        """The upstream's answer (any status); a transport failure is logged and raised
        as AttemptFailed."""
        assert runtime.upstream is not None
        try:
            return await runtime.upstream.send(self.request(), stream=stream)
        except (httpx2.HTTPError, TimeoutError) as exc:
            failure = transport_failure(self.candidate, exc)
            self.log(0, str(exc) or type(exc).__name__, error_type=failure.error.code or "")
            raise failure from exc

    def failed(self, status: int, content: bytes, headers: httpx2.Headers) -> AttemptFailed:
        error = upstream_error_masked(upstream_error_parse(status, content), self.candidate)
        failure = classify(self.candidate, error, headers)
        failure.error = upstream_error_relayed(
            failure.error, error, headers, client=self.chain.ctx.protocol, wire=self.candidate.wire
        )
        self.log(status, error.message, error_type=failure.error.code or "")
        return failure


async def answer_once(attempt: Attempt) -> dict[str, Any]:
    """Non-streaming: the whole answer in the client's protocol, its usage priced
    into the attempt. Raises AttemptFailed."""
    response = await attempt.send()
    if response.status_code >= 400:
        raise attempt.failed(response.status_code, response.content, response.headers)
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        attempt.log(response.status_code, "malformed JSON", error_type="upstream_malformed")
        raise AttemptFailed(
            GatewayError(
                502,
                f"{attempt.candidate.label} sent a malformed response.",
                code="upstream_malformed",
            ),
            retryable=True,
        ) from exc
    attempt.log(response.status_code)
    route = attempt.route
    usage = route.usage(data)
    extra = attempt.price(usage)
    return route.response(
        data,
        model=attempt.candidate.model.public_id,
        usage=usage,
        usage_extra=extra,
        request_body=attempt.chain.client_body,
    )


@dataclass
class OpenStream:
    """A stream whose first content has arrived (or that finished): nothing has been
    sent to the client yet; `preamble` holds what is owed to it so far."""

    attempt: Attempt
    response: httpx2.Response
    chunks: AsyncIterator[bytes]  # the raw body, positioned after the preamble
    parser: SSEParser
    adapter: registry.StreamAdapter
    preamble: list[bytes]


async def stream_open(attempt: Attempt) -> OpenStream:
    """Send the request and read until the first content (or the end). Any failure
    up to here raises AttemptFailed: the client has seen nothing of this attempt."""
    cand = attempt.candidate
    response = await attempt.send(stream=True)
    try:
        if response.status_code >= 400:
            content = await response.aread()
            raise attempt.failed(response.status_code, content, response.headers)
        adapter = attempt.route.stream(
            model=cand.model.public_id,
            request_body=attempt.chain.client_body,
            input_estimate=attempt.chain.plan.input_estimate,
            usage_hook=attempt.price,
        )
        parser = SSEParser()
        chunks = response.aiter_raw()
        preamble: list[bytes] = []
        while not (adapter.emitted_content or adapter.done):
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                for event in parser.flush():
                    preamble.extend(adapter.feed(event))
                if adapter.emitted_content or adapter.done:
                    break
                attempt.log(
                    response.status_code,
                    "stream ended before any content",
                    error_type="upstream_stream_dropped",
                )
                raise AttemptFailed(
                    GatewayError(
                        502,
                        f"{cand.label} closed the stream before sending anything.",
                        code="upstream_stream_dropped",
                    ),
                    retryable=True,
                    transient=True,
                ) from None
            for event in parser.feed(chunk):
                preamble.extend(adapter.feed(event))
        if adapter.error is not None and not adapter.emitted_content:
            failure = classify(cand, upstream_error_masked(adapter.error, cand))
            attempt.log(
                adapter.error.status, adapter.error.message, error_type=failure.error.code or ""
            )
            raise failure
        attempt.log(response.status_code)
        return OpenStream(attempt, response, chunks, parser, adapter, preamble)
    except httpx2.HTTPError as exc:  # the connection dropped while reading the preamble
        await response.aclose()
        attempt.log(
            response.status_code,
            f"stream dropped: {exc or type(exc).__name__}",
            error_type="upstream_stream_dropped",
        )
        raise AttemptFailed(
            GatewayError(
                502,
                f"{cand.label} dropped the stream before sending anything.",
                code="upstream_stream_dropped",
            ),
            retryable=True,
            transient=True,
        ) from exc
    except BaseException:
        await response.aclose()
        raise


# --- the chain ---------------------------------------------------------------------


async def _close_result(result: Any) -> None:
    """Close what a finished but unused attempt holds (an open upstream stream)."""
    response = getattr(result, "response", None)
    if response is not None:
        await response.aclose()


@dataclass
class Chain:
    """The attempts made for one request, and the one that answered."""

    ctx: RequestContext
    plan: Plan
    client_body: dict[str, Any]  # the client's own body (stream adapters read it)
    hedge_delay: float | None = None
    latency_budget_ms: int | None = None  # X-Tollgate-Max-Latency-Ms
    records: list[dict[str, Any]] = field(default_factory=list)
    extra_cost_nano: int = 0  # what losing hedged attempts consumed (estimated)
    winner: Attempt | None = None

    @property
    def deadline(self) -> float | None:
        """When the first byte must have arrived (event-loop clock), if budgeted."""
        if self.latency_budget_ms is None:
            return None
        return self.ctx.started + self.latency_budget_ms / 1000

    def served(self) -> charging.Served | None:
        return self.winner.served() if self.winner is not None else None

    def dropped_tools(self) -> tuple[str, ...]:
        """The tools left out for the deployment that served (else the first one)."""
        if self.winner is not None:
            candidate = self.winner.candidate
        elif self.plan.candidates:
            candidate = self.plan.candidates[0]
        else:
            return ()
        return self.plan.prepared(candidate).dropped_tools

    def _attempt_new(self, cand: Candidate) -> Attempt:
        # One prepared body per wire and model; the model name and the output limit
        # sent are the deployment's.
        deployment = cand.deployment
        prepared = self.plan.prepared(cand).body
        if prepared.get("model") != deployment.upstream_model:
            prepared = {**prepared, "model": deployment.upstream_model}
        prepared = output_limit_apply(
            prepared,
            cand.wire,
            upstream_model=deployment.upstream_model,
            param=deployment.max_tokens_param,
            maximum=deployment.max_output_tokens or cand.model.max_output_tokens,
        )
        return Attempt(chain=self, candidate=cand, body=json_dumps(prepared))

    async def _guarded(self, run: Callable[[Attempt], Awaitable[T]], attempt: Attempt) -> T:
        """Run an attempt; anything unexpected it raises is a failure of this attempt,
        answered 502. It is not held against the deployment's health: the upstream
        answered, and whether its answer or the gateway's reading of it is at fault
        cannot be told here (requests are shape-checked first, so the client's body is
        not the cause). Nor is it tried elsewhere: the same reading would likely fail
        again, and every try is paid for upstream."""
        try:
            return await run(attempt)
        except (AttemptFailed, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("attempt at %s failed unexpectedly", attempt.candidate.label)
            if attempt.record is None:
                attempt.log(0, f"{type(exc).__name__}: {exc}", error_type="upstream_malformed")
            raise AttemptFailed(
                GatewayError(
                    502,
                    f"{attempt.candidate.label} sent a response the gateway could not read.",
                    code="upstream_malformed",
                ),
                retryable=False,
                count_failure=False,
            ) from exc

    @staticmethod
    async def _note_failure(cand: Candidate, failure: AttemptFailed) -> None:
        if failure.count_failure or failure.rest:
            await runtime.health.record_failure(
                cand.health_key,
                organisation_id=cand.organisation_id,
                rest_seconds=failure.rest if failure.rest else None,
                count=failure.count_failure,
            )

    async def run(self, run: Callable[[Attempt], Awaitable[T]]) -> tuple[Attempt, T]:
        """Try candidates until one succeeds; that attempt and `run`'s result."""
        if self.hedge_delay is None and self.deadline is None:
            attempt, result = await self._in_turn(run)
        else:
            attempt, result = await self._hedged(run)
        self.winner = attempt
        return attempt, result

    async def _in_turn(self, run: Callable[[Attempt], Awaitable[T]]) -> tuple[Attempt, T]:
        """The common case: one attempt at a time, awaited directly (no tasks)."""
        failures: list[tuple[Candidate, AttemptFailed]] = []
        skip_deployments: set[int] = set()  # the upstream said it does not know the model
        for cand in self.plan.candidates:
            if cand.deployment.id in skip_deployments:
                continue
            for again in (False, True):
                attempt = self._attempt_new(cand)
                try:
                    result = await self._guarded(run, attempt)
                except AttemptFailed as failure:
                    if failure.transient and not again:
                        continue  # a dropped connection: once more before it counts
                    if failure.skip_deployment:
                        skip_deployments.add(cand.deployment.id)
                    failures.append((cand, failure))
                    await self._note_failure(cand, failure)
                    break
                await runtime.health.record_success(
                    cand.health_key, organisation_id=cand.organisation_id
                )
                return attempt, result
            if not failures[-1][1].retryable:
                break
        raise failure_summary(failures)

    async def _hedged(self, run: Callable[[Attempt], Awaitable[T]]) -> tuple[Attempt, T]:
        failures: list[tuple[Candidate, AttemptFailed]] = []
        queue = list(self.plan.candidates)
        running: dict[asyncio.Task[T], Attempt] = {}
        winner: tuple[Attempt, T] | None = None

        def launch() -> None:
            attempt = self._attempt_new(queue.pop(0))
            running[asyncio.create_task(self._guarded(run, attempt))] = attempt

        async def cancel_losers() -> None:
            for task, attempt in running.items():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if attempt.record is None:
                    attempt.log(0, note="cancelled: another attempt answered first")
                # The loser's prompt was sent upstream: bill what it consumed (estimated).
                cost, _ = charging.price(
                    Usage(input_tokens=self.plan.input_estimate),
                    model=attempt.candidate.model,
                    byok=attempt.candidate.byok,
                )
                assert attempt.record is not None
                attempt.record["billed_estimate_nano"] = cost
                self.extra_cost_nano += cost
            running.clear()

        launch()
        try:
            async with asyncio.timeout_at(self.deadline):
                while running:
                    hedge = self.hedge_delay if self.hedge_delay is not None and queue else None
                    if hedge is not None and len(running) > 1:
                        hedge = None
                    done, _ = await asyncio.wait(
                        running, timeout=hedge, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not done:
                        launch()  # hedge: the first has not answered in time
                        continue
                    for task in done:
                        attempt = running.pop(task)
                        try:
                            result = task.result()
                        except AttemptFailed as failure:
                            failures.append((attempt.candidate, failure))
                            await self._note_failure(attempt.candidate, failure)
                            if not failure.retryable:
                                await cancel_losers()
                                raise failure_summary(failures) from None
                            continue
                        if winner is None:
                            winner = (attempt, result)
                        else:  # two answered in the same instant: close the second
                            assert attempt.record is not None
                            attempt.record["note"] = "answered second; not used"
                            await _close_result(result)
                    if winner is not None:
                        break
                    if not running and queue:
                        launch()
        except TimeoutError:
            for attempt in running.values():
                if attempt.record is None:
                    attempt.log(0, "latency budget spent", error_type="latency_budget_exceeded")
            for task in list(running):
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            tried = "; ".join(
                f"{a.get('provider')}: {a.get('status') or 'no answer'} "
                f"{a.get('error', '')}".strip()
                for a in self.records
            )
            raise GatewayError(
                504,
                f"The latency budget of {self.latency_budget_ms} ms was spent before a first "
                f"byte. Tried: {tried or 'nothing'}.",
                code="latency_budget_exceeded",
                type="timeout_error",
            ) from None
        except asyncio.CancelledError:
            # The client went away: stop every upstream request still in flight at once.
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        if winner is None:
            raise failure_summary(failures)
        served = winner[0].candidate
        await runtime.health.record_success(
            served.health_key, organisation_id=served.organisation_id
        )
        await cancel_losers()
        return winner
