"""Step 4 of the hot path: which deployments to try, in what order, with which key and
over which wire, and the request body each of them is sent.

Order: lower priority numbers first; equal priorities share load by weight (a
weighted random order per request). A customer's own key (BYOK) comes before the
managed key on the same deployment ("prefer mine"), or replaces it ("mine only").
Deployments resting after a rate limit or an open circuit breaker are left out while
others remain; when every one of them rests, the client is told when to come back
instead of hammering the upstream.

The body for each (wire, model) is translated once (gateway.protocols.registry), here,
before any upstream is called: a request that cannot be translated is a 400 that
costs nothing.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

from gateway.catalog import DeploymentEntry, ModelEntry
from gateway.health import scoped
from gateway.models import ProviderKeyMode
from gateway.protocols import registry
from gateway.protocols.errors import GatewayError
from gateway.runtime import runtime

_rng = random.Random()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A deployment with the key to call it with, and the wire to speak to it."""

    deployment: DeploymentEntry
    api_key: str
    byok: bool
    organisation_id: int
    model: ModelEntry
    wire: str

    @property
    def health_key(self) -> str:
        # Rate limits and bad credentials belong to a key: a customer's own key rests
        # apart from the managed one.
        if self.byok:
            return f"{self.deployment.id}:o{self.organisation_id}"
        return str(self.deployment.id)

    @property
    def label(self) -> str:
        return f"{self.deployment.provider.slug}{' (BYOK)' if self.byok else ''}"


@dataclass(frozen=True, slots=True)
class Plan:
    """The candidates in order, and the prepared body per (wire, model public id)."""

    candidates: tuple[Candidate, ...]
    bodies: dict[tuple[str, str], registry.Prepared]
    input_estimate: int  # tokens, from the body's size

    def prepared(self, candidate: Candidate) -> registry.Prepared:
        return self.bodies[(candidate.wire, candidate.model.public_id)]


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
    client: str,
    rng: random.Random | None = None,
) -> list[Candidate]:
    """One model's candidates in order (503 if none has credentials)."""
    candidates: list[Candidate] = []
    unconfigured: list[str] = []
    for deployment in deployments_order(entry, rng or _rng):
        wire = registry.wire_for(client, deployment.provider.wires)
        if wire is None:
            continue
        own = byok_keys.get(deployment.provider.id)
        if own is not None:
            candidates.append(Candidate(deployment, own[0], True, organisation_id, entry, wire))
            if own[1] == ProviderKeyMode.ONLY:
                continue
        managed = deployment.provider.managed_key()
        if managed:
            candidates.append(Candidate(deployment, managed, False, organisation_id, entry, wire))
        elif own is None:
            unconfigured.append(deployment.provider.slug)
    if not candidates:
        # Configuration, not load: a retry cannot help, so no 5xx (clients such as
        # Claude Code retry those silently for minutes).
        if unconfigured:
            raise GatewayError(
                403,
                f"No credentials are configured for {', '.join(unconfigured)}, which "
                f"serve '{entry.public_id}'. Add your own key under Provider Keys, or ask "
                "the operator. GET /v1/models lists the models this key can use now.",
                code="provider_not_configured",
                param="model",
            )
        raise GatewayError(
            404,
            f"No enabled provider serves '{entry.public_id}' over this API. GET "
            "/v1/models lists the models this key can use now.",
            code="no_deployment",
            param="model",
        )
    return candidates


async def candidates_for(
    models: tuple[ModelEntry, ...],
    *,
    organisation_id: int,
    byok_keys: dict[int, tuple[str, str]],
    client: str,
) -> list[Candidate]:
    """Every model's candidates in order, without those resting (while any other is
    left). Raises the first model's error if none can be called at all."""
    candidates: list[Candidate] = []
    first_error: GatewayError | None = None
    for entry in models:
        try:
            candidates += candidates_plan(
                entry=entry, organisation_id=organisation_id, byok_keys=byok_keys, client=client
            )
        except GatewayError as error:
            first_error = first_error or error
    if not candidates:
        assert first_error is not None
        raise first_error
    return await candidates_usable(candidates)


async def candidates_usable(candidates: list[Candidate]) -> list[Candidate]:
    """Drop resting candidates while others remain (a deployment rests for everyone,
    or for this organisation only: gateway.health). When every one rests, one request
    at a time probes the one back soonest; the others are answered 429 with a
    Retry-After rather than hammering the upstream."""
    health = runtime.health
    now = time.time()
    usable: list[Candidate] = []
    resting: list[tuple[float, Candidate, str]] = []
    for cand in candidates:
        keys = (cand.health_key, scoped(cand.health_key, cand.organisation_id))
        left, key = max((health.resting(k, now), k) for k in keys)
        if left > 0:
            resting.append((left, cand, key))
            continue
        probing = next((k for k in keys if health.needs_probe(k)), None)
        if probing is not None and len(candidates) > 1:
            if await health.probe_acquire(probing):
                usable.append(cand)  # this request probes the half-open deployment
            else:
                resting.append((1.0, cand, probing))
        else:
            usable.append(cand)
    if usable:
        return usable
    wait, soonest, key = min(resting, key=lambda r: r[0])
    if await health.probe_acquire(key):
        return [soonest]  # everything rests: this request checks whether it still must
    names = ", ".join(sorted({c.label for _, c, _ in resting}))
    raise GatewayError(
        429,
        f"Every provider of this model is resting after rate limits or failures "
        f"({names}). Retry in {math.ceil(wait)} s.",
        code="all_deployments_resting",
        type="rate_limit_error",
        headers={"retry-after": str(math.ceil(wait))},
    )


def prepare(
    client: str,
    candidates: list[Candidate],
    body: dict[str, Any],
    *,
    input_estimate: int,
) -> Plan:
    """Translate the body once per (wire, model) the candidates need."""
    bodies: dict[tuple[str, str], registry.Prepared] = {}
    for cand in candidates:
        slot = (cand.wire, cand.model.public_id)
        if slot not in bodies:
            # The model name is set per deployment by the attempt.
            deployment = next(d for d in cand.model.deployments if cand.wire in d.provider.wires)
            bodies[slot] = registry.route(client, cand.wire).request(
                body,
                upstream_model=deployment.upstream_model,
                max_output_tokens=cand.model.max_output_tokens,
            )
    return Plan(tuple(candidates), bodies, input_estimate)
