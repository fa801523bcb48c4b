"""The usage event: the one definition of what is recorded about a proxied request.

The hot path builds a `UsageEvent` when a request is settled (gateway.charging); the
event travels through the usage queue as compact JSON (`UsageEvent.wire()`); the usage
worker (gateway.usage) writes one request log row per event, reading the columns from
`LOG_FIELDS`; the request API (gateway.api) derives its output schema from the same
fields. The `RequestLog` model has a column of the same name for every field (a test
holds the two together, and the strings' bounds to the columns' lengths).

Pure Python: no Django, so the hot path can import it cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _bounded(length: int, default: str = "") -> Any:
    """A string field cut to its column's length when the event is encoded: one value
    too long would otherwise fail the whole batch it is written in."""
    return field(default=default, metadata={"max_length": length})


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    organisation_id: int
    started_at: float  # unix time
    status_code: int
    outcome: str  # ok | error | cancelled
    client_protocol: str
    requested_model: str = _bounded(200)
    api_key_id: int | None = None
    session_id: str = _bounded(200)
    resolved_model: str = _bounded(120)
    provider: str = _bounded(50)
    deployment_id: int | None = None
    upstream_model: str = _bounded(200)
    stream: bool = False
    error_type: str = _bounded(60)
    error_message: str = _bounded(2000)
    latency_ms: int = 0
    ttfb_ms: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0
    web_fetch_calls: int = 0
    service_tier: str = _bounded(20)
    usage_estimated: bool = False
    cost_nano: int = 0  # charged, nano-USD: the figure shown, logged and debited
    byok: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)  # the fallback chain
    route_reason: str = _bounded(200)
    dropped_tools: str = _bounded(500)  # comma-separated, as X-Tollgate-Dropped-Tools

    def wire(self) -> dict[str, Any]:
        """The event as the queue carries it. Fields at their default are left out (the
        worker fills them in): a smaller event is cheaper to encode here, to keep in
        Redis and to decode there."""
        out: dict[str, Any] = {}
        for f in _FIELDS:
            value = getattr(self, f.name)
            if f.name in _ALWAYS or value:
                limit = f.metadata.get("max_length")
                out[f.name] = value[:limit] if limit and isinstance(value, str) else value
        return out


_FIELDS = dataclasses.fields(UsageEvent)
_ALWAYS = frozenset(
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

# Foreign keys are stored as `<name>_id` columns; everything else by its own name.
FOREIGN_KEYS = ("organisation_id", "api_key_id", "deployment_id")
# The request log columns the usage worker takes from an event, other than the
# foreign keys and started_at (which it converts).
LOG_FIELDS: tuple[str, ...] = tuple(
    f.name for f in _FIELDS if f.name not in (*FOREIGN_KEYS, "started_at")
)
EVENT_COLUMNS = frozenset(f.name for f in _FIELDS)
MAX_LENGTHS = {f.name: f.metadata["max_length"] for f in _FIELDS if "max_length" in f.metadata}
