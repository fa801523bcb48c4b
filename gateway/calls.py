"""One proxied call's state, and how it is finished: priced, settled against the
credit hold, and recorded as a usage event (exactly once)."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from billing.credit import Hold
from billing.money import nano_to_usd_str
from gateway.asgi_io import Incoming
from gateway.auth import KeyInfo
from gateway.catalog import DeploymentEntry, ModelEntry
from gateway.protocols.errors import GatewayError
from gateway.protocols.usage import Usage
from gateway.runtime import runtime
from gateway.usage import byok_fee_nano, usage_batch_write

_EVENT_ALWAYS = frozenset(
    (
        "request_id",
        "organisation_id",
        "started_at",
        "status_code",
        "outcome",
        "client_protocol",
        "requested_model",
    )
)

log = logging.getLogger("tollgate.proxy")


def request_id_new() -> str:
    return f"req_{secrets.token_hex(12)}"


@dataclass
class Call:
    protocol: str  # the client's: openai | anthropic
    incoming: Incoming
    request_id: str = field(default_factory=request_id_new)
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    key: KeyInfo | None = None
    body: dict[str, Any] | None = None
    requested_model: str = ""
    model: ModelEntry | None = None
    deployment: DeploymentEntry | None = None
    stream: bool = False
    byok: bool = False
    hold: Hold | None = None
    ttfb_ms: int | None = None
    usage: Usage | None = None
    usage_estimated: bool = False
    extra_cost_nano: int = 0  # what losing hedged attempts consumed (estimated)
    served: Any = None  # the gateway.attempts.Attempt that answered
    attempts: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    latency_budget_ms: int | None = None  # X-Tollgate-Max-Latency-Ms
    route_reason: str = ""
    loggable: bool = True  # model calls are logged; listing models is not

    @property
    def deadline(self) -> float | None:
        """When the first byte must have arrived (event-loop clock), if budgeted."""
        if self.latency_budget_ms is None:
            return None
        return self.started + self.latency_budget_ms / 1000

    def adopt(self, attempt) -> None:
        """The attempt that serves the request: its deployment, key, usage and cost."""
        self.served = attempt
        self.model = attempt.candidate.model
        self.deployment = attempt.candidate.deployment
        self.byok = attempt.candidate.byok

    @property
    def cost_nano(self) -> int:
        served = self.served.cost_nano if self.served is not None else 0
        return served + self.extra_cost_nano

    @property
    def session_id(self) -> str:
        return self.incoming.headers.get("x-tollgate-session-id", "")[:200]

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def mark_first_byte(self) -> None:
        if self.ttfb_ms is None:
            self.ttfb_ms = self.elapsed_ms()

    # --- pricing ---------------------------------------------------------------------
    def cost_of(
        self, usage: Usage, *, byok: bool, model: ModelEntry | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The charged cost of `usage` in nano-USD (the BYOK fee when served with the
        customer's key), and the fields added to the client's usage object. The same
        integer is shown, logged and debited."""
        model = model or self.model
        assert model is not None
        list_cost = model.prices.cost_nano(usage)
        cost = byok_fee_nano(list_cost) if byok else list_cost
        extra: dict[str, Any] = {"cost": cost / 1_000_000_000}
        if byok:
            extra["is_byok"] = True
        return cost, extra

    def cost_headers(self) -> dict[str, str]:
        headers = self.base_headers()
        headers["x-tollgate-cost-usd"] = nano_to_usd_str(self.cost_nano)
        return headers

    def base_headers(self) -> dict[str, str]:
        headers = {"x-tollgate-request-id": self.request_id}
        if self.deployment is not None:
            headers["x-tollgate-provider"] = self.deployment.provider.slug
        if self.model is not None:
            headers["x-tollgate-model"] = self.model.public_id
        if self.attempts:
            headers["x-tollgate-attempted-count"] = str(len(self.attempts))
        return headers

    def client_status(self, error: GatewayError) -> int:
        """529 (overloaded) is Anthropic's own status; OpenAI clients get 503."""
        if error.status == 529 and self.protocol == "openai":
            return 503
        return error.status

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        if self.protocol == "anthropic":
            return error.anthropic_body(self.request_id)
        return error.openai_body()

    # --- finishing -------------------------------------------------------------------
    async def finish(
        self,
        *,
        status: int,
        outcome: str,
        error: GatewayError | None = None,
    ) -> None:
        """Settle the hold and append the usage event. Idempotent per call."""
        if self.finished:
            return
        self.finished = True
        event = self._event(status, outcome, error) if self.key and self.loggable else None
        try:
            await runtime.settle_and_record(self.hold, self.cost_nano, event, self.request_id)
        except Exception:
            log.exception("could not settle or queue usage of %s", self.request_id)
            if event is None:
                return
            # The queue is unreachable: write this one event straight to the database
            # rather than leave a served request unbilled.
            try:
                committed = await runtime.run_db(usage_batch_write, [event])
            except Exception:
                log.exception("usage of %s NOT RECORDED: %s", self.request_id, event)
                return
            try:  # if the settle did reach Redis, this cost is no longer pending
                await runtime.run_db(runtime.credit.flushed, committed)
            except Exception:
                log.exception("could not release pending credit of %s", self.request_id)
        if event is not None:
            runtime.event_queued()

    def _event(self, status: int, outcome: str, error: GatewayError | None) -> dict[str, Any]:
        assert self.key is not None
        if self.served is not None and self.served.usage is not None:
            self.usage = self.served.usage
        usage = self.usage or Usage()
        deployment = self.deployment
        event = {
            "request_id": self.request_id,
            "organisation_id": self.key.organisation_id,
            "api_key_id": self.key.key_id,
            "session_id": self.session_id,
            "client_protocol": self.protocol,
            "requested_model": self.requested_model[:200],
            "resolved_model": self.model.public_id[:120] if self.model else "",
            "provider": deployment.provider.slug[:50] if deployment else "",
            "deployment_id": deployment.id if deployment else None,
            "upstream_model": deployment.upstream_model[:200] if deployment else "",
            "stream": self.stream,
            "status_code": status,
            "outcome": outcome,
            # Bounded like their columns: one value too long would fail its whole batch.
            "error_type": (error.code or error.type or "")[:60] if error else "",
            "error_message": error.message[:2000] if error else "",
            "started_at": self.started_wall,
            "latency_ms": self.elapsed_ms(),
            "ttfb_ms": self.ttfb_ms,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_5m_tokens": usage.cache_write_5m_tokens,
            "cache_write_1h_tokens": usage.cache_write_1h_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_estimated": self.usage_estimated,
            "cost_nano": self.cost_nano,
            "byok": self.byok,
            "attempts": self.attempts,
            "route_reason": self.route_reason[:200],
        }
        # Fields at their column's default (0, "", False, None, []) are left out: the
        # usage worker fills in defaults, and a smaller event is cheaper to encode here,
        # to keep in Redis and to decode there.
        return {k: v for k, v in event.items() if v or k in _EVENT_ALWAYS}
