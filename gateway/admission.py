"""Step 1 of the hot path: who is asking, and what may they use.

    authenticate   the API key from the headers -> KeyInfo (401/403 if it may not be used)
    admit          the body's model (or router) resolved in the catalog snapshot and
                   checked against the key's group -> Admission: the models to try in
                   order, the hedge delay, and why (404/403 otherwise)

`KeyInfo` is a small immutable record of a key, cached in process memory and in Redis
(gateway.runtime); the database is read only on a miss (`key_info_load`, sync). The
same `key_check` refuses revoked, expired and suspended keys for the proxy and for
Tollgate's own API (gateway.api).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from accounts.models import ApiKey
from gateway.autoroute import auto_choose
from gateway.catalog import CatalogSnapshot, ModelEntry, RouterEntry
from gateway.protocols.errors import GatewayError


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: int
    secret_hash: str
    name: str
    organisation_id: int
    organisation_slug: str
    organisation_active: bool
    group_id: int
    group_slug: str
    expires_at: float | None  # unix time
    revoked: bool
    spend_limit_total_nano: int | None
    spend_limit_daily_nano: int | None
    spend_limit_monthly_nano: int | None
    # Effective rate limits (gateway.ratelimit), the group defaults already applied:
    # None = no limit at that level. Defaulted so records cached before they existed
    # still load.
    key_rpm: int | None = None
    key_tpm: int | None = None
    key_concurrency: int | None = None
    org_rpm: int | None = None
    org_tpm: int | None = None
    org_concurrency: int | None = None

    @property
    def rate_limited(self) -> bool:
        """Whether any rate limit applies to this key (else nothing is counted)."""
        return any(
            (
                self.key_rpm,
                self.key_tpm,
                self.key_concurrency,
                self.org_rpm,
                self.org_tpm,
                self.org_concurrency,
            )
        )

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> KeyInfo:
        return cls(**json.loads(raw))


INVALID_KEY = GatewayError(
    401,
    "Invalid API key. Send a Tollgate key (sk-tg-...) as 'Authorization: Bearer <key>' "
    "or 'x-api-key: <key>'.",
    code="invalid_api_key",
    type="authentication_error",
)


def key_check(info: KeyInfo | None) -> KeyInfo:
    """The key if it may be used now; otherwise the 401/403 its holder should see."""
    if info is None:
        raise INVALID_KEY
    if info.revoked:
        raise GatewayError(
            401,
            "This API key has been revoked. Create a new key in the Tollgate console.",
            code="key_revoked",
            type="authentication_error",
        )
    if info.expires_at is not None and info.expires_at <= time.time():
        raise GatewayError(
            401,
            "This API key has expired. Create a new key in the Tollgate console.",
            code="key_expired",
            type="authentication_error",
        )
    if not info.organisation_active:
        raise GatewayError(
            403,
            "This organisation is suspended. Contact the operator.",
            code="organisation_suspended",
            type="permission_error",
        )
    return info


def key_secret(headers: dict[str, str]) -> str:
    """The key a client sent: `x-api-key` (Anthropic's way) or a Bearer token."""
    secret = headers.get("x-api-key", "")
    if not secret:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            secret = auth[7:].strip()
    return secret


def key_info_load(secret_hash: str) -> KeyInfo | None:
    """One indexed lookup by the unique secret hash (sync: run it off the event loop)."""
    row = (
        ApiKey.objects.filter(secret_hash=secret_hash)
        .select_related("organisation", "organisation__default_group", "group")
        .first()
    )
    if row is None:
        return None
    org, group = row.organisation, row.group
    org_group = org.default_group
    return KeyInfo(
        key_id=row.pk,
        secret_hash=row.secret_hash,
        name=row.name,
        organisation_id=row.organisation_id,
        organisation_slug=row.organisation.slug,
        organisation_active=row.organisation.is_active,
        group_id=row.group_id,
        group_slug=row.group.slug,
        expires_at=row.expires_at.timestamp() if row.expires_at else None,
        revoked=row.revoked_at is not None,
        spend_limit_total_nano=row.spend_limit_total_nano,
        spend_limit_daily_nano=row.spend_limit_daily_nano,
        spend_limit_monthly_nano=row.spend_limit_monthly_nano,
        key_rpm=limit_effective(row.rpm_limit, group.rpm_limit),
        key_tpm=limit_effective(row.tpm_limit, group.tpm_limit),
        key_concurrency=limit_effective(row.concurrency_limit, group.concurrency_limit),
        org_rpm=limit_effective(org.rpm_limit, org_group.org_rpm_limit if org_group else None),
        org_tpm=limit_effective(org.tpm_limit, org_group.org_tpm_limit if org_group else None),
        org_concurrency=limit_effective(
            org.concurrency_limit, org_group.org_concurrency_limit if org_group else None
        ),
    )


def limit_effective(own: int | None, default: int | None) -> int | None:
    """A level's limit: its own if set (0 = explicitly none), else the group default
    (blank or 0 = none). None means no limit."""
    value = own if own is not None else default
    return value or None


async def authenticate(
    headers: dict[str, str], lookup: Callable[[str], Awaitable[KeyInfo | None]]
) -> KeyInfo:
    """The caller's key, looked up by the SHA-256 of its secret."""
    secret = key_secret(headers)
    if not secret:
        raise GatewayError(
            401,
            "Missing API key. Send 'Authorization: Bearer sk-tg-...' or 'x-api-key: sk-tg-...'.",
            code="missing_api_key",
            type="authentication_error",
        )
    return key_check(await lookup(hashlib.sha256(secret.encode()).hexdigest()))


# --- the model ---------------------------------------------------------------------


class ModelNotAllowed(GatewayError):
    """The model exists but the key's group may not use it (the log names the model)."""

    def __init__(self, public_id: str, group_slug: str) -> None:
        super().__init__(
            403,
            f"The model '{public_id}' is not available to keys in the group "
            f"'{group_slug}'. Use a key of a group that includes it, or ask the operator.",
            code="model_not_allowed",
            param="model",
            type="permission_error",
        )
        self.public_id = public_id


@dataclass(frozen=True, slots=True)
class Admission:
    """What the key may be served: the models to try, in order (a router's members,
    or the one model asked for), and how (hedged after `hedge_delay` seconds)."""

    key: KeyInfo
    requested_model: str
    models: tuple[ModelEntry, ...]
    hedge_delay: float | None
    route_reason: str

    @property
    def model(self) -> ModelEntry:
        """The model expected to serve (the first to try)."""
        return self.models[0]


def requested_model(body: dict[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name.strip():
        raise GatewayError(
            400,
            "The field 'model' is required: a model id from GET /v1/models.",
            code="missing_model",
            param="model",
        )
    return name


def model_resolve(snapshot: CatalogSnapshot, key: KeyInfo, name: str) -> ModelEntry:
    """One concrete model by id or alias, which the key's group may use."""
    entry = snapshot.resolve(name)
    if entry is None:
        hints = snapshot.suggestions(name, group_id=key.group_id)
        hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
        raise GatewayError(
            404,
            f"The model '{name}' does not exist.{hint} GET /v1/models lists the "
            "models your key may use.",
            code="model_not_found",
            param="model",
            type="invalid_request_error",
        )
    if key.group_id not in entry.group_ids:
        raise ModelNotAllowed(entry.public_id, key.group_slug)
    return entry


def admit(
    snapshot: CatalogSnapshot,
    key: KeyInfo,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    input_tokens: int,
) -> Admission:
    """Resolve the body's model or router for this key. `input_tokens` is a rough
    size of the conversation (for `tollgate/auto`)."""
    hedge_ms = header_int(headers, "x-tollgate-hedge-ms", minimum=0)
    hedge = hedge_ms / 1000 if hedge_ms is not None else None
    name = requested_model(body)
    router = snapshot.resolve_router(name)
    if router is None:
        return Admission(key, name, (model_resolve(snapshot, key, name),), hedge, "")
    if key.group_id not in router.group_ids:
        raise ModelNotAllowed(router.public_id, key.group_slug)
    members = [m for m in router.models if key.group_id in m.group_ids]
    if not members:
        raise GatewayError(
            503,
            f"'{router.public_id}' has no model your key's group may use. Ask the operator.",
            code="router_empty",
        )
    if router.kind == "fast":
        if hedge is None:
            hedge = (router.hedge_ms if router.hedge_ms is not None else 400) / 1000
        reason = f"fast: hedged after {hedge * 1000:g} ms"
        return Admission(key, name, tuple(members), hedge, reason)
    sub = RouterEntry(
        **{
            **{f: getattr(router, f) for f in router.__slots__},
            "models": tuple(members),
            "names": tuple(router.names[router.models.index(m)] for m in members),
        }
    )
    quality = header_float(headers, "x-tollgate-cost-quality", default=0.5)
    index, reason = auto_choose(sub, body, input_tokens=input_tokens, cost_quality=quality)
    # The chosen tier first; stronger tiers are the fallback if it cannot serve.
    ordered = members[index:] + members[:index][::-1]
    return Admission(key, name, tuple(ordered), hedge, reason)


def header_int(headers: dict[str, str], name: str, *, minimum: int) -> int | None:
    raw = headers.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise GatewayError(
            400,
            f"The header {name} must be a whole number, got {raw!r}.",
            code="invalid_header",
        ) from None
    if value < minimum:
        raise GatewayError(
            400, f"The header {name} must be at least {minimum}.", code="invalid_header"
        )
    return value


def header_float(headers: dict[str, str], name: str, *, default: float) -> float:
    raw = headers.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise GatewayError(
            400,
            f"The header {name} must be a number from 0 (best quality) "
            f"to 1 (cheapest), got {raw!r}.",
            code="invalid_header",
        )
    return value
