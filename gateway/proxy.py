"""The proxy endpoints, served as a lean ASGI app (config/asgi.py routes /v1/* here):

    POST /v1/chat/completions        OpenAI Chat Completions
    POST /v1/messages                Anthropic Messages
    POST /v1/messages/count_tokens   Anthropic token counting
    GET  /v1/models, /v1//models     model list (Anthropic's shape with anthropic-version)
    GET  /v1/models/{id}

Hot path, once caches are warm: key, catalog and group come from memory, the credit
hold is one Redis script, the upstream client is shared; no database query runs.
Every failure is answered in the client's protocol with the status its SDK expects.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from billing.credit import KeyLimits, Refusal
from billing.money import format_usd
from gateway import relay
from gateway.asgi_io import (
    BodyTooLarge,
    ClientGone,
    Incoming,
    body_read,
    disconnect_watch,
    json_dumps,
    send_json,
)
from gateway.attempts import Candidate
from gateway.auth import INVALID_KEY, KeyInfo
from gateway.autoroute import auto_choose
from gateway.calls import Call
from gateway.catalog import CatalogSnapshot, ModelEntry, RouterEntry
from gateway.protocols import requests as translate_request
from gateway.protocols import tokens
from gateway.protocols.errors import GatewayError
from gateway.protocols.passthrough import json_loads_object
from gateway.routing import candidates_plan, candidates_usable
from gateway.runtime import runtime
from gateway.usage import byok_fee_nano

log = logging.getLogger("tollgate.proxy")


class ProxyApp:
    async def __call__(self, scope, receive, send) -> None:
        incoming = Incoming.from_scope(scope)
        path = incoming.path.replace("//", "/")
        method = incoming.method
        protocol = "anthropic" if path.startswith("/v1/messages") else "openai"
        call = Call(protocol=protocol, incoming=incoming)
        try:
            if path == "/v1/chat/completions" and method == "POST":
                await self._completion(call, receive, send)
            elif path == "/v1/messages" and method == "POST":
                await self._completion(call, receive, send)
            elif path == "/v1/messages/count_tokens" and method == "POST":
                await self._count_tokens(call, receive, send)
            elif path in ("/v1/models", "/v1/models/") and method == "GET":
                await self._models(call, send)
            elif path.startswith("/v1/models/") and method == "GET":
                await self._model(call, send, path.removeprefix("/v1/models/"))
            else:
                call.loggable = False
                known = path in ("/v1/chat/completions", "/v1/messages", "/v1/models")
                raise GatewayError(
                    405 if known else 404,
                    f"{method} {incoming.path} is not supported. Tollgate serves POST "
                    "/v1/chat/completions, POST /v1/messages and GET /v1/models.",
                    code="method_not_allowed" if known else "not_found",
                )
        except ClientGone:
            await call.finish(status=499, outcome="cancelled")
        except asyncio.CancelledError:
            # The server is shutting down mid-request: release the hold and log it.
            await asyncio.shield(call.finish(status=499, outcome="cancelled"))
            raise
        except GatewayError as error:
            await call.finish(status=error.status, outcome="error", error=error)
            headers = {**call.base_headers(), **(error.headers or {})}
            await send_json(send, call.client_status(error), call.error_body(error), headers)
        except Exception:
            log.exception("unhandled error in %s", call.request_id)
            error = GatewayError(
                500,
                f"Internal gateway error. Quote request id {call.request_id} to the operator.",
                code="internal_error",
            )
            await call.finish(status=500, outcome="error", error=error)
            await send_json(send, 500, call.error_body(error), call.base_headers())

    # --- steps shared by the endpoints ---------------------------------------------
    async def _authenticate(self, call: Call) -> KeyInfo:
        headers = call.incoming.headers
        secret = headers.get("x-api-key", "")
        if not secret:
            auth = headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                secret = auth[7:].strip()
        if not secret:
            raise GatewayError(
                401,
                "Missing API key. Send 'Authorization: Bearer sk-tg-...' or "
                "'x-api-key: sk-tg-...'.",
                code="missing_api_key",
                type="authentication_error",
            )
        info = await runtime.key_info(hashlib.sha256(secret.encode()).hexdigest())
        if info is None:
            raise INVALID_KEY
        info.check_usable()
        call.key = info
        return info

    async def _read_json(self, call: Call, receive) -> dict[str, Any]:
        try:
            raw = await body_read(receive)
        except BodyTooLarge:
            raise GatewayError(
                413, "The request body is larger than 32 MB.", code="request_too_large"
            ) from None
        try:
            body = json_loads_object(raw)
        except ValueError as exc:
            raise GatewayError(
                400, f"The request body is not valid JSON: {exc}", code="invalid_json"
            ) from None
        call.incoming.body = raw
        call.body = body
        return body

    def _resolve(self, call: Call, snapshot: CatalogSnapshot, key: KeyInfo) -> ModelEntry:
        body = call.body or {}
        name = body.get("model")
        if not isinstance(name, str) or not name.strip():
            raise GatewayError(
                400,
                "The field 'model' is required: a model id from GET /v1/models.",
                code="missing_model",
                param="model",
            )
        call.requested_model = name
        entry = snapshot.resolve(name)
        if entry is None:
            raise self._unknown_model(snapshot, name, key)
        call.model = entry
        self._check_group(entry.public_id, entry.group_ids, key)
        return entry

    def _unknown_model(self, snapshot: CatalogSnapshot, name: str, key: KeyInfo) -> GatewayError:
        hints = snapshot.suggestions(name, group_id=key.group_id)
        hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
        return GatewayError(
            404,
            f"The model '{name}' does not exist.{hint} GET /v1/models lists the "
            "models your key may use.",
            code="model_not_found",
            param="model",
            type="invalid_request_error",
        )

    def _check_group(self, public_id: str, group_ids: frozenset[int], key: KeyInfo) -> None:
        if key.group_id not in group_ids:
            raise GatewayError(
                403,
                f"The model '{public_id}' is not available to keys in the group "
                f"'{key.group_slug}'. Use a key of a group that includes it, or ask the "
                "operator.",
                code="model_not_allowed",
                param="model",
                type="permission_error",
            )

    def _targets(
        self, call: Call, snapshot: CatalogSnapshot, key: KeyInfo
    ) -> tuple[list[ModelEntry], float | None]:
        """The models to try, in order, and the hedge delay (seconds) if hedging."""
        body = call.body or {}
        headers = call.incoming.headers
        hedge_ms = _header_int(headers, "x-tollgate-hedge-ms", minimum=0)
        hedge = hedge_ms / 1000 if hedge_ms is not None else None
        name = body.get("model")
        router = snapshot.resolve_router(name) if isinstance(name, str) else None
        if router is None:
            return [self._resolve(call, snapshot, key)], hedge
        call.requested_model = name  # type: ignore[assignment]
        self._check_group(router.public_id, router.group_ids, key)
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
            call.route_reason = f"fast: hedged after {hedge * 1000:g} ms"
            call.model = members[0]
            return members, hedge
        sub = RouterEntry(
            **{
                **{f: getattr(router, f) for f in router.__slots__},
                "models": tuple(members),
                "names": tuple(router.names[router.models.index(m)] for m in members),
            }
        )
        quality = _header_float(headers, "x-tollgate-cost-quality", default=0.5)
        index, reason = auto_choose(
            sub, body, input_tokens=len(call.incoming.body) // 4, cost_quality=quality
        )
        call.route_reason = reason
        call.model = members[index]
        # The chosen tier first; stronger tiers are the fallback if it cannot serve.
        return members[index:] + members[:index][::-1], hedge

    async def _reserve(self, call: Call, models: list[ModelEntry], input_estimate: int) -> None:
        """Hold the worst case over every model that may serve the request."""
        key = call.key
        assert key is not None
        body = call.body or {}
        requested = body.get("max_completion_tokens") or body.get("max_tokens")
        worst = 0
        output = 0
        for entry in {m.public_id: m for m in models}.values():
            out = entry.max_output_tokens
            if isinstance(requested, int) and 0 < requested < out:
                out = requested
            output = max(output, out)
            worst = max(
                worst,
                entry.prices.worst_case_nano(
                    input_tokens=min(input_estimate, entry.context_window), output_tokens=out
                ),
            )
        if call.byok:
            worst = byok_fee_nano(worst)
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
        result = await runtime.credit.reserve(
            organisation_id=key.organisation_id, amount_nano=worst, limits=limits
        )
        if isinstance(result, Refusal):
            raise self._refusal(call, result, worst, output)
        call.hold = result

    def _refusal(self, call: Call, refusal: Refusal, worst: int, output: int) -> GatewayError:
        assert call.key is not None
        billing_url = f"{settings.SITE_URL}/o/{call.key.organisation_slug}/billing/"
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

    # --- endpoints -----------------------------------------------------------------
    async def _completion(self, call: Call, receive, send) -> None:
        key = await self._authenticate(call)
        body = await self._read_json(call, receive)
        snapshot = await runtime.catalog()
        models, hedge_delay = self._targets(call, snapshot, key)
        if "messages" not in body or not isinstance(body["messages"], list):
            raise GatewayError(
                400,
                "The field 'messages' is required and must be a list.",
                code="invalid_request",
                param="messages",
            )
        call.stream = bool(body.get("stream"))
        call.latency_budget_ms = _header_int(
            call.incoming.headers, "x-tollgate-max-latency-ms", minimum=1
        )
        byok_keys = await runtime.byok_keys(key.organisation_id)
        candidates: list[Candidate] = []
        first_error: GatewayError | None = None
        for entry in models:
            try:
                candidates += candidates_plan(
                    entry=entry,
                    organisation_id=key.organisation_id,
                    byok_keys=byok_keys,
                    rng=relay.rng(),
                )
            except GatewayError as error:
                first_error = first_error or error
        if not candidates:
            assert first_error is not None
            raise first_error
        candidates = await candidates_usable(candidates)
        call.deployment = candidates[0].deployment
        call.byok = all(c.byok for c in candidates)
        bodies = {
            (c.deployment.provider.protocol, c.model.public_id): self._prepare(
                call, c.deployment.provider.protocol, c.model
            )
            for c in candidates
        }
        input_estimate = len(call.incoming.body) // 3 + 1
        await self._reserve(call, [c.model for c in candidates], input_estimate)
        if not call.stream:
            # A non-streaming answer is priced and billed whole, so there is nothing to
            # cut short if the client leaves: no disconnect watcher (it costs a task).
            await relay.serve_once(
                call,
                send,
                candidates,
                bodies,
                hedge_delay=hedge_delay,
                input_estimate=input_estimate,
            )
            return
        disconnected = disconnect_watch(receive)
        try:
            await relay.serve_stream(
                call,
                send,
                disconnected,
                candidates,
                bodies,
                hedge_delay=hedge_delay,
                input_estimate=input_estimate,
            )
        finally:
            disconnected.cancel()

    def _prepare(self, call: Call, upstream: str, entry: ModelEntry) -> dict[str, Any]:
        """The request body for one model's upstreams of one protocol. The model name
        is set per deployment by the attempt."""
        body = call.body or {}
        deployment = next(d for d in entry.deployments if d.provider.protocol == upstream)
        args = {
            "upstream_model": deployment.upstream_model,
            "max_output_tokens": entry.max_output_tokens,
        }
        if call.protocol == "openai":
            if upstream == "openai":
                prepared = translate_request.openai_request_prepare(body, **args)
            else:
                prepared = translate_request.anthropic_request_from_openai(body, **args)
        elif upstream == "anthropic":
            prepared = translate_request.anthropic_request_prepare(body, **args)
        else:
            prepared = translate_request.openai_request_from_anthropic(body, **args)
        return prepared

    async def _count_tokens(self, call: Call, receive, send) -> None:
        call.loggable = False  # free, and not a model call
        key = await self._authenticate(call)
        body = await self._read_json(call, receive)
        snapshot = await runtime.catalog()
        entry = self._resolve(call, snapshot, key)
        byok_keys = await runtime.byok_keys(key.organisation_id)
        try:
            candidates = candidates_plan(
                entry=entry,
                organisation_id=key.organisation_id,
                byok_keys=byok_keys,
                rng=relay.rng(),
            )
        except GatewayError:
            candidates = []
        for candidate in candidates:
            if candidate.deployment.provider.protocol == "anthropic":
                call.deployment = candidate.deployment
                forwarded = {**body, "model": candidate.deployment.upstream_model}
                await relay.relay_passthrough(
                    call, send, candidate, body=json_dumps(forwarded), path="/messages/count_tokens"
                )
                return
        await send_json(
            send,
            200,
            {"input_tokens": tokens.estimate_tokens_anthropic(body)},
            {"x-tollgate-request-id": call.request_id, "x-tollgate-token-count": "estimated"},
        )

    async def _models(self, call: Call, send) -> None:
        call.loggable = False
        key = await self._authenticate(call)
        snapshot = await runtime.catalog()
        models: list[ModelEntry | RouterEntry] = [
            *snapshot.routers_for_group(key.group_id),
            *snapshot.models_for_group(key.group_id),
        ]
        if "anthropic-version" in call.incoming.headers:
            data = [_anthropic_model(m) for m in models]
            body: dict[str, Any] = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            body = {"object": "list", "data": [_openai_model(m) for m in models]}
        await send_json(send, 200, body, {"x-tollgate-request-id": call.request_id})

    async def _model(self, call: Call, send, name: str) -> None:
        call.loggable = False
        key = await self._authenticate(call)
        snapshot = await runtime.catalog()
        entry = snapshot.resolve(name) or snapshot.resolve_router(name)
        if entry is None or key.group_id not in entry.group_ids:
            raise GatewayError(
                404,
                f"The model '{name}' does not exist or is not available to this key.",
                code="model_not_found",
                param="model",
            )
        anthropic = "anthropic-version" in call.incoming.headers
        await send_json(send, 200, _anthropic_model(entry) if anthropic else _openai_model(entry))


def _openai_model(m: ModelEntry | RouterEntry) -> dict[str, Any]:
    if isinstance(m, RouterEntry):
        return {
            "id": m.public_id,
            "object": "model",
            "created": m.created,
            "owned_by": "tollgate",
            "name": m.display_name,
            "router": m.kind,
            "models": [x.public_id for x in m.models],
        }
    return {
        "id": m.public_id,
        "object": "model",
        "created": m.created,
        "owned_by": m.deployments[0].provider.slug if m.deployments else "tollgate",
        "name": m.display_name,
        "context_length": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "pricing": {"unit": "USD per million tokens", **m.price_usd},
    }


def _anthropic_model(m: ModelEntry | RouterEntry) -> dict[str, Any]:
    created = datetime.fromtimestamp(m.created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "model",
        "id": m.public_id,
        "display_name": m.display_name,
        "created_at": created,
    }


def _header_int(headers: dict[str, str], name: str, *, minimum: int) -> int | None:
    raw = headers.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise GatewayError(
            400, f"The header {name} must be a whole number, got {raw!r}.", code="invalid_header"
        ) from None
    if value < minimum:
        raise GatewayError(
            400, f"The header {name} must be at least {minimum}.", code="invalid_header"
        )
    return value


def _header_float(headers: dict[str, str], name: str, *, default: float) -> float:
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
