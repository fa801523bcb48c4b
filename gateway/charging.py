"""Steps 3 and 7 of the hot path: money. Everything a request costs is decided here.

    hold      before any upstream call: the worst case the request may cost, over every
              model that may serve it, held against the organisation's credit and the
              key's spend limits (402 with what was needed if it cannot be afforded)
    price     usage -> nano-dollars at the model's prices (the BYOK fee instead when the
              customer's own provider key served it); the figure shown to the client
    settle    once per request, whatever happened: the hold released for the actual
              cost and the usage event recorded (with Redis, one atomic command), so
              that the cost shown, logged and debited is the same integer; and, at the
              same time, the request's rate-limit slots freed and its tokens per
              minute corrected to the actual usage (gateway.ratelimit)

The credit store and usage queue are the runtime's (billing.credit.CreditStore,
gateway.usage.UsageQueue); the event is gateway.usage_event.UsageEvent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from billing.credit import Hold, KeyLimits, Refusal
from billing.money import format_usd
from gateway.admission import KeyInfo
from gateway.asgi_io import json_dumps
from gateway.catalog import DeploymentEntry, ModelEntry
from gateway.context import RequestContext
from gateway.protocols.errors import GatewayError
from gateway.protocols.usage import Usage
from gateway.ratelimit import Admitted
from gateway.runtime import runtime
from gateway.usage_event import UsageEvent

log = logging.getLogger("tollgate.proxy")

NANO_PER_USD = 1_000_000_000


# --- price -------------------------------------------------------------------------


def byok_fee_nano(list_cost_nano: int) -> int:
    """The fee on a request served with the customer's own key: a percentage of what
    it would have cost on managed credit, rounded half up to the nano-dollar."""
    fee = Decimal(list_cost_nano) * settings.TOLLGATE_BYOK_FEE_PERCENT / 100
    return int(fee.to_integral_value(rounding=ROUND_HALF_UP))


def price(usage: Usage, *, model: ModelEntry, byok: bool) -> tuple[int, dict[str, Any]]:
    """The charged cost of `usage` in nano-USD, and the fields added to the usage
    object the client sees."""
    list_cost = model.prices.cost_nano(usage)
    cost = byok_fee_nano(list_cost) if byok else list_cost
    extra: dict[str, Any] = {"cost": cost / NANO_PER_USD}
    if byok:
        extra["is_byok"] = True
    return cost, extra


# --- hold --------------------------------------------------------------------------


async def hold(
    key: KeyInfo,
    models: list[ModelEntry],
    body: dict[str, Any],
    *,
    input_estimate: int,
    byok: bool,
) -> Hold:
    """Hold the worst case over every model that may serve the request: its input
    (media included: tokens.hold_input_tokens) and every output token it may produce.
    A request that sets no output limit may produce the model's maximum; when that much
    cannot be held, UNSET_OUTPUT_HOLD_TOKENS are held instead, so a small balance can
    still be used (what the answer costs beyond the hold is debited at settlement:
    the balance can go below zero by at most that one request's difference)."""
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if requested is None:
        requested = body.get("max_output_tokens")  # the Responses API's name
    limited = isinstance(requested, int) and requested > 0
    limits = None
    if (
        key.spend_limit_total_nano is not None
        or key.spend_limit_daily_nano is not None
        or key.spend_limit_monthly_nano is not None
    ):
        limits = KeyLimits(
            key_id=key.key_id,
            total_nano=key.spend_limit_total_nano,
            daily_nano=key.spend_limit_daily_nano,
            monthly_nano=key.spend_limit_monthly_nano,
        )
    caps = [requested if limited else None]
    if not limited:
        caps.append(UNSET_OUTPUT_HOLD_TOKENS)
    result: Hold | Refusal | None = None
    worst = output = 0
    for cap in caps:
        worst, output = _worst_case(models, input_estimate, cap, _tier_asked(body))
        if byok:
            worst = byok_fee_nano(worst)
        result = await runtime.credit.reserve(
            organisation_id=key.organisation_id, amount_nano=worst, limits=limits
        )
        if not isinstance(result, Refusal):
            return result
    assert isinstance(result, Refusal)
    raise _refusal(key, result, worst, output)


# Output tokens held for a request that sets no limit, when its model's maximum cannot
# be held (docs/decisions.md, "Credit holds").
UNSET_OUTPUT_HOLD_TOKENS = 4096


def _tier_asked(body: dict[str, Any]) -> str:
    """The service tier a request may be served on, for its hold: "priority" when it
    asks for it or lets the provider choose ("auto"), else the standard prices."""
    return "priority" if body.get("service_tier") in ("priority", "auto") else ""


def _worst_case(
    models: list[ModelEntry], input_estimate: int, cap: int | None, service_tier: str = ""
) -> tuple[int, int]:
    """The dearest (cost, output tokens) over the models, with output capped at `cap`."""
    worst = output = 0
    for entry in {m.public_id: m for m in models}.values():
        out = entry.max_output_tokens
        if cap is not None and 0 < cap < out:
            out = cap
        output = max(output, out)
        worst = max(
            worst,
            entry.prices.worst_case_nano(
                input_tokens=min(input_estimate, entry.context_window),
                output_tokens=out,
                service_tier=service_tier,
            ),
        )
    return worst, output


def _refusal(key: KeyInfo, refusal: Refusal, worst: int, output: int) -> GatewayError:
    billing_url = f"{settings.SITE_URL}/o/{key.organisation_slug}/billing/"
    if refusal.reason == "key_limit":
        period = {"t": "total", "d": "daily", "m": "monthly"}[refusal.window[:1]]
        return GatewayError(
            402,
            f"This key's {period} spend limit is reached: this request may cost up "
            f"to {format_usd(worst)} and {format_usd(refusal.available_nano)} is left. "
            "Raise the limit in the console or use another key.",
            code="key_spend_limit",
            type="insufficient_quota",
        )
    return GatewayError(
        402,
        f"Insufficient credit: this request may cost up to {format_usd(worst)} "
        f"(with up to {output} output tokens) and your balance available is "
        f"{format_usd(max(refusal.available_nano, 0))}. Top up at {billing_url} or "
        "lower max_tokens.",
        code="insufficient_credit",
        type="insufficient_quota",
    )


# --- settle ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Served:
    """The attempt that answered: where, with whose key, what it used and cost."""

    model: ModelEntry
    deployment: DeploymentEntry
    byok: bool
    usage: Usage | None
    cost_nano: int


@dataclass(slots=True)
class Ticket:
    """What settling one request needs, filled in by the endpoint as each step returns
    (nothing else writes it): who asked, what was expected to serve, the hold."""

    ctx: RequestContext
    key: KeyInfo | None = None
    requested_model: str = ""
    model: ModelEntry | None = None
    deployment: DeploymentEntry | None = None
    byok: bool = False
    stream: bool = False
    route_reason: str = ""
    hold: Hold | None = None
    rate: Admitted | None = None  # its place in the key's and organisation's rate limits
    loggable: bool = True  # model calls are logged; listing models is not
    settled: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended, from the relay (or the endpoint, if it never got there)."""

    status: int
    outcome: str  # ok | error | cancelled
    error: GatewayError | None = None
    served: Served | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    extra_cost_nano: int = 0  # what losing hedged attempts consumed (estimated)
    ttfb_ms: int | None = None
    usage_estimated: bool = False
    dropped_tools: tuple[str, ...] = ()  # by the deployment that served

    @property
    def cost_nano(self) -> int:
        return (self.served.cost_nano if self.served is not None else 0) + self.extra_cost_nano


async def settle(ticket: Ticket, outcome: Outcome) -> None:
    """Release the hold for the actual cost and record the usage event. Exactly once
    per request (later calls do nothing), and completed even if the client leaves."""
    if ticket.settled:
        return
    ticket.settled = True
    await asyncio.shield(_settle(ticket, outcome))


async def _rate_release(admitted: Admitted, outcome: Outcome) -> None:
    """Free the request's concurrency slots and correct its tokens per minute to what
    the attempt that answered used (nothing if none did)."""
    usage = outcome.served.usage if outcome.served is not None else None
    try:
        await runtime.ratelimit.release(
            admitted, tokens=usage.total_tokens if usage is not None else 0
        )
    except Exception:
        # The slot lapses by itself (ratelimit.SLOT_TTL_SECONDS); the tokens stay counted.
        log.exception("could not release the rate limits of %s", admitted.request_id)


async def _settle(ticket: Ticket, outcome: Outcome) -> None:
    # Alongside the credit settlement (its own round trip), done before the event is
    # reported, so whoever waits for the event finds the slot free.
    release = (
        asyncio.ensure_future(_rate_release(ticket.rate, outcome))
        if ticket.rate is not None
        else None
    )
    try:
        event = await _settle_credit(ticket, outcome)
    finally:
        if release is not None:
            await release
    if event is not None:
        runtime.recorded(event)


async def _settle_credit(ticket: Ticket, outcome: Outcome) -> UsageEvent | None:
    """Settle the hold and queue the usage event; the event if it was recorded."""
    event = _event(ticket, outcome) if ticket.key and ticket.loggable else None
    wire = event.wire() if event is not None else None
    request_id = ticket.ctx.request_id
    cost = outcome.cost_nano
    try:
        recorded = False
        if ticket.hold is not None:
            recorded = await runtime.credit.settle(
                ticket.hold, cost, request_id, json_dumps(wire) if wire else b""
            )
        if wire is not None and not recorded:
            await runtime.usage.append(wire)
    except Exception:
        log.exception("could not settle or queue usage of %s", request_id)
        if wire is None:
            return None
        # The queue is unreachable: write this one event straight to the database
        # rather than leave a served request unbilled.
        from gateway.usage import usage_batch_write

        try:
            committed = await runtime.run_db(usage_batch_write, [wire])
        except Exception:
            log.exception("usage of %s NOT RECORDED: %s", request_id, event)
            return None
        try:  # if the settle did reach Redis, this cost is no longer pending
            await runtime.run_db(runtime.credit.flushed, committed)
        except Exception:
            log.exception("could not release pending credit of %s", request_id)
    return event


def _event(ticket: Ticket, outcome: Outcome) -> UsageEvent:
    assert ticket.key is not None
    served = outcome.served
    model = served.model if served else ticket.model
    deployment = served.deployment if served else ticket.deployment
    usage = (served.usage if served else None) or Usage()
    error = outcome.error
    ctx = ticket.ctx
    return UsageEvent(
        request_id=ctx.request_id,
        organisation_id=ticket.key.organisation_id,
        api_key_id=ticket.key.key_id,
        session_id=ctx.session_id,
        client_protocol=ctx.protocol,
        requested_model=ticket.requested_model,
        resolved_model=model.public_id if model else "",
        provider=deployment.provider.slug if deployment else "",
        deployment_id=deployment.id if deployment else None,
        upstream_model=deployment.upstream_model if deployment else "",
        stream=ticket.stream,
        status_code=outcome.status,
        outcome=outcome.outcome,
        error_type=(error.code or error.type or "") if error else "",
        error_message=error.message if error else "",
        started_at=ctx.started_wall,
        latency_ms=ctx.elapsed_ms(),
        ttfb_ms=outcome.ttfb_ms,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_5m_tokens=usage.cache_write_5m_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        web_search_calls=usage.web_search_calls,
        web_fetch_calls=usage.web_fetch_calls,
        service_tier=usage.service_tier,
        usage_estimated=outcome.usage_estimated,
        cost_nano=outcome.cost_nano,
        byok=served.byok if served else ticket.byok,
        attempts=outcome.attempts,
        route_reason=ticket.route_reason,
        dropped_tools=",".join(outcome.dropped_tools),
    )
