"""Which deployments to try, in what order, and walking that chain.

Order: lower priority numbers first; equal priorities share load by weight (a
weighted random order per request). A customer's own key (BYOK) comes before the
managed key on the same deployment ("prefer mine"), or replaces it ("mine only").
Deployments resting after a rate limit or an open circuit breaker go last, and are
only tried when nothing else is left to try... unless every one of them rests, in which
case the client is told when to come back instead of hammering the upstream.

The walk tries one candidate at a time, or, when hedging (tollgate/fast), starts the
next one if the first has not answered within the hedge delay and keeps the first
that succeeds. A latency budget bounds the time to first byte across all attempts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.asgi_io import json_dumps
from gateway.attempts import Attempt, AttemptFailed, Candidate
from gateway.calls import Call
from gateway.catalog import DeploymentEntry, ModelEntry
from gateway.models import ProviderKeyMode
from gateway.protocols.errors import GatewayError
from gateway.protocols.usage import Usage
from gateway.runtime import runtime

log = logging.getLogger("tollgate.proxy")

# Prepared request bodies by (upstream protocol, model public id).
Bodies = dict[tuple[str, str], dict[str, Any]]


def deployments_order(entry: ModelEntry, rng: random.Random) -> list[DeploymentEntry]:
    """Priority tiers in order; inside a tier a weighted random permutation
    (Efraimidis-Spirakis: sort by u^(1/w) descending)."""
    tiers: dict[int, list[DeploymentEntry]] = {}
    for d in entry.deployments:
        tiers.setdefault(d.priority, []).append(d)
    ordered: list[DeploymentEntry] = []
    for priority in sorted(tiers):
        tier = tiers[priority]
        if len(tier) > 1:
            tier = sorted(
                tier, key=lambda d: math.log(rng.random() or 1e-12) / d.weight, reverse=True
            )
        ordered.extend(tier)
    return ordered


def candidates_plan(
    *,
    entry: ModelEntry,
    organisation_id: int,
    byok_keys: dict[int, tuple[str, str]],
    rng: random.Random,
) -> list[Candidate]:
    candidates: list[Candidate] = []
    unconfigured: list[str] = []
    for deployment in deployments_order(entry, rng):
        own = byok_keys.get(deployment.provider.id)
        if own is not None:
            candidates.append(Candidate(deployment, own[0], True, organisation_id, entry))
            if own[1] == ProviderKeyMode.ONLY:
                continue
        managed = deployment.provider.managed_key()
        if managed:
            candidates.append(Candidate(deployment, managed, False, organisation_id, entry))
        elif own is None:
            unconfigured.append(deployment.provider.slug)
    if not candidates:
        if unconfigured:
            raise GatewayError(
                503,
                f"No credentials are configured for {', '.join(unconfigured)}, which "
                f"serve '{entry.public_id}'. Add your own key under Provider Keys, or ask "
                "the operator.",
                code="provider_not_configured",
            )
        raise GatewayError(
            503, f"No provider currently serves '{entry.public_id}'.", code="no_deployment"
        )
    return candidates


async def candidates_usable(candidates: list[Candidate]) -> list[Candidate]:
    """Drop resting candidates while others remain; answer 429/503 with a Retry-After
    when every one of them rests."""
    health = runtime.health
    now = time.time()
    usable, resting = [], []
    for cand in candidates:
        left = health.resting(cand.health_key, now)
        if left > 0:
            resting.append((left, cand))
        elif health.needs_probe(cand.health_key) and len(candidates) > 1:
            if await health.probe_acquire(cand.health_key):
                usable.append(cand)  # this request probes the half-open deployment
            else:
                resting.append((1.0, cand))
        else:
            usable.append(cand)
    if usable:
        return usable
    wait = min(left for left, _ in resting)
    names = ", ".join(sorted({c.label for _, c in resting}))
    raise GatewayError(
        429,
        f"Every provider of this model is resting after rate limits or failures "
        f"({names}). Retry in {math.ceil(wait)} s.",
        code="all_deployments_resting",
        type="rate_limit_error",
        headers={"retry-after": str(math.ceil(wait))},
    )


def failure_summary(failures: list[tuple[Candidate, AttemptFailed]]) -> GatewayError:
    """The error a client sees when no attempt succeeded: the last one's status, and
    every attempt named in the message."""
    last = failures[-1][1].error
    if len(failures) == 1:
        return last
    tried = "; ".join(
        f"({i}) {f.error.status} {f.error.message}" for i, (_, f) in enumerate(failures, 1)
    )
    return GatewayError(
        last.status,
        f"All {len(failures)} attempts failed: {tried}",
        code=last.code or "all_attempts_failed",
        type=last.type,
        headers=last.headers,
    )


async def _note_failure(cand: Candidate, failure: AttemptFailed) -> None:
    if failure.count_failure or failure.rest:
        await runtime.health.record_failure(
            cand.health_key,
            rest_seconds=failure.rest if failure.rest else None,
            count=failure.count_failure,
        )


async def _guarded(run: Callable[[Attempt], Awaitable[Any]], attempt: Attempt) -> Any:
    """Run an attempt; anything unexpected it raises (a malformed upstream answer the
    parsers choke on) is a failure of that deployment, not of the gateway."""
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
            retryable=True,
        ) from exc


async def _close_result(result: Any) -> None:
    """Close what a finished but unused attempt holds (an open upstream stream)."""
    response = getattr(result, "response", None)
    if response is not None:
        await response.aclose()


def _attempt_new(call: Call, cand: Candidate, bodies: Bodies) -> Attempt:
    # One prepared body per upstream protocol and model; the model name sent is the
    # deployment's own.
    prepared = bodies[(cand.deployment.provider.protocol, cand.model.public_id)]
    if prepared.get("model") != cand.deployment.upstream_model:
        prepared = {**prepared, "model": cand.deployment.upstream_model}
    return Attempt(call=call, candidate=cand, body=json_dumps(prepared))


async def walk(
    call: Call,
    candidates: list[Candidate],
    bodies: Bodies,
    run: Callable[[Attempt], Awaitable[Any]],
    *,
    hedge_delay: float | None = None,
    input_estimate: int = 0,
) -> tuple[Attempt, Any]:
    """Try candidates until one succeeds; returns that attempt and `run`'s result."""
    failures: list[tuple[Candidate, AttemptFailed]] = []
    skip_deployments: set[int] = set()  # the upstream said it does not know the model
    if hedge_delay is None and call.deadline is None:
        # The common case: one attempt at a time, awaited directly (no tasks).
        for cand in candidates:
            if cand.deployment.id in skip_deployments:
                continue
            attempt = _attempt_new(call, cand, bodies)
            try:
                result = await _guarded(run, attempt)
            except AttemptFailed as failure:
                if failure.skip_deployment:
                    skip_deployments.add(cand.deployment.id)
                failures.append((cand, failure))
                await _note_failure(cand, failure)
                if not failure.retryable:
                    break
                continue
            await runtime.health.record_success(cand.health_key)
            return attempt, result
        raise failure_summary(failures)

    queue = list(candidates)
    running: dict[asyncio.Task, Attempt] = {}
    winner = None

    def launch() -> None:
        attempt = _attempt_new(call, queue.pop(0), bodies)
        running[asyncio.create_task(_guarded(run, attempt))] = attempt

    async def cancel_losers() -> None:
        for task, attempt in running.items():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if attempt.record is None:
                attempt.log(0, note="cancelled: another attempt answered first")
            # The loser's prompt was sent upstream: bill what it consumed (estimated).
            cost, _ = call.cost_of(
                Usage(input_tokens=input_estimate),
                byok=attempt.candidate.byok,
                model=attempt.candidate.model,
            )
            attempt.record["billed_estimate_nano"] = cost  # type: ignore[index]
            call.extra_cost_nano += cost
        running.clear()

    launch()
    try:
        async with asyncio.timeout_at(call.deadline):
            while running:
                hedge = hedge_delay if hedge_delay is not None and queue else None
                if hedge is not None and len(running) > 1:
                    hedge = None
                done, _ = await asyncio.wait(
                    running, timeout=hedge, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    launch()  # hedge: the first has not answered in time
                    continue
                winner: tuple[Attempt, Any] | None = None
                for task in done:
                    attempt = running.pop(task)
                    try:
                        result = task.result()
                    except AttemptFailed as failure:
                        failures.append((attempt.candidate, failure))
                        await _note_failure(attempt.candidate, failure)
                        if not failure.retryable:
                            await cancel_losers()
                            raise failure_summary(failures) from None
                        continue
                    if winner is None:
                        winner = (attempt, result)
                    else:  # two answered in the same instant: close the second
                        attempt.record["note"] = "answered second; not used"  # type: ignore[index]
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
            f"{a.get('provider')}: {a.get('status') or 'no answer'} {a.get('error', '')}".strip()
            for a in call.attempts
        )
        raise GatewayError(
            504,
            f"The latency budget of {call.latency_budget_ms} ms was spent before a first "
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
    await runtime.health.record_success(winner[0].candidate.health_key)
    await cancel_losers()
    return winner
