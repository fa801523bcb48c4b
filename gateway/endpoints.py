"""The proxy's endpoints, served as a lean ASGI app (config/asgi.py routes /v1/* here).

    POST /v1/chat/completions        OpenAI Chat Completions
    POST /v1/responses               OpenAI Responses (stateless: the full `input` each time)
    POST /v1/messages                Anthropic Messages
    POST /v1/messages/count_tokens   Anthropic token counting
    GET  /v1/models, /v1//models     model list (Anthropic's shape with anthropic-version)
    GET  /v1/models/{id}

A completion lives through these steps, each a module of its own, in this order:

    admission   authenticate the key; resolve and authorise the model
    charging    hold the worst case against credit and key limits
    ratelimit   (alongside the hold) the key's and organisation's RPM, TPM, concurrency
    planning    which deployments to try, over which wire, with which body
    attempts    call them until one answers (fallback, hedging, latency budget)
    relay       answer the client, streamed or whole
    charging    settle the hold and record the usage event, exactly once

This module only runs the steps in order, passing each one's result to the next, and
answers any failure in the client's protocol with the status its SDK expects. Once
caches are warm no database query runs (key, catalog and group come from memory,
the credit hold is one Redis script, the upstream client is shared).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from gateway import admission, charging, model_list, planning, ratelimit, relay
from gateway.asgi_io import (
    BodyTooLarge,
    ClientGone,
    Incoming,
    Receive,
    Scope,
    Send,
    body_read,
    disconnect_watch,
    json_dumps,
    send_json,
)
from gateway.attempts import Chain
from gateway.context import RequestContext
from gateway.protocols import registry, shapes, tokens
from gateway.protocols.errors import GatewayError
from gateway.protocols.passthrough import json_loads_object
from gateway.runtime import DEPENDENCY_ERRORS, dependency_unavailable, runtime

log = logging.getLogger("tollgate.proxy")

# Which client protocol each completion path speaks, and the field its body must have.
COMPLETIONS = {
    "/v1/chat/completions": ("openai", "messages"),
    "/v1/responses": ("responses", "input"),
    "/v1/messages": ("anthropic", "messages"),
}


# First path segments of the API, for clients whose base URL lacks `/v1`: AI-SDK
# clients given the bare address POST /messages, OpenAI clients /chat/completions.
_API_ROOTS = frozenset({"messages", "chat", "responses", "models"})


MAX_HEADERS = 100  # browsers send ~20, SDKs ~15, Claude Code ~25


def api_path(path: str) -> str | None:
    """The API path a request means, or None if it is not for the API (the console).
    Forgotten or doubled `/v1` prefixes and doubled slashes (a base URL with a
    trailing slash) are forgiven: /messages, /v1/v1/messages and /v1//messages all
    mean /v1/messages."""
    clean = re.sub(r"/{2,}", "/", path)
    while clean.startswith("/v1/v1/") or clean == "/v1/v1":
        clean = clean[3:]
    if clean == "/v1" or clean.startswith("/v1/"):
        return clean
    if clean.split("/", 2)[1] in _API_ROOTS:
        return "/v1" + clean
    return None


_PROBES = frozenset({"/", "/v1", "/v1/", "/api/hello"})


def is_probe(method: str, path: str) -> bool:
    """Connectivity checks: Claude Code's preconnect (`HEAD {base}/api/hello`), and
    HEAD on the root or the API root."""
    return method == "HEAD" and path in _PROBES


class ProxyApp:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = Incoming.from_scope(scope)
        method = incoming.method
        if is_probe(method, incoming.path):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        path = api_path(incoming.path) or incoming.path
        if len(scope["headers"]) > MAX_HEADERS:
            protocol = COMPLETIONS.get(path, (_protocol_guess(path), ""))[0]
            too_many = GatewayError(
                431,
                f"The request has {len(scope['headers'])} headers; at most {MAX_HEADERS} are "
                "accepted.",
                code="too_many_headers",
                type="invalid_request_error",
            )
            body = registry.route(protocol, protocol).error_body(too_many, "")
            await send_json(send, 431, body)
            return
        completion = COMPLETIONS.get(path)
        protocol = completion[0] if completion else _protocol_guess(path)
        ticket = charging.Ticket(RequestContext(protocol, incoming))
        chain: Chain | None = None
        try:
            if completion and method == "POST":
                chain = await self._completion_plan(ticket, completion[1], receive)
                served = send
                if ticket.rate is not None:  # the budget left, on the answer's head
                    served = ratelimit.send_with_headers(send, ticket.rate, protocol)
                await self._completion_serve(ticket, chain, receive, served)
            elif path == "/v1/messages/count_tokens" and method == "POST":
                ticket.loggable = False  # free, and not a model call
                await self._count_tokens(ticket, receive, send)
            elif path in ("/v1/models", "/v1/models/") and method == "GET":
                ticket.loggable = False
                await self._models(ticket, send)
            elif path.startswith("/v1/models/") and method == "GET":
                ticket.loggable = False
                await self._model(ticket, send, path.removeprefix("/v1/models/"))
            else:
                ticket.loggable = False
                known = path in (*COMPLETIONS, "/v1/models")
                # Never reached a model, so not in any request log: say so here.
                log.warning(
                    "%s %s answered %s (%s, %s)",
                    method,
                    incoming.path,
                    405 if known else 404,
                    ticket.ctx.request_id,
                    incoming.headers.get("user-agent", "no user agent")[:120],
                )
                raise GatewayError(
                    405 if known else 404,
                    f"{method} {incoming.path} is not supported. Tollgate serves POST "
                    "/v1/chat/completions, POST /v1/responses, POST /v1/messages and "
                    "GET /v1/models.",
                    code="method_not_allowed" if known else "not_found",
                )
        except ClientGone:
            await charging.settle(ticket, _failed(ticket, chain, 499, "cancelled"))
        except asyncio.CancelledError:
            # The server is shutting down mid-request: release the hold and log it.
            await charging.settle(ticket, _failed(ticket, chain, 499, "cancelled"))
            raise
        except GatewayError as error:
            await charging.settle(ticket, _failed(ticket, chain, error.status, "error", error))
            headers = {**relay.client_headers(ticket, chain), **(error.headers or {})}
            answer = registry.route(protocol, protocol)
            body = answer.error_body(error, ticket.ctx.request_id)
            await send_json(send, answer.client_status(error), body, headers)
        except DEPENDENCY_ERRORS as exc:
            # Redis or the database is down or stalled: retryable, and said so.
            log.warning("%s: a dependency failed: %r", ticket.ctx.request_id, exc)
            unavailable = dependency_unavailable(exc)
            await charging.settle(ticket, _failed(ticket, chain, 503, "error", unavailable))
            answer = registry.route(protocol, protocol)
            body = answer.error_body(unavailable, ticket.ctx.request_id)
            headers = {**relay.client_headers(ticket, chain), **(unavailable.headers or {})}
            await send_json(send, 503, body, headers)
        except Exception:
            log.exception("unhandled error in %s", ticket.ctx.request_id)
            internal = GatewayError(
                500,
                f"Internal gateway error. Quote request id {ticket.ctx.request_id} "
                "to the operator.",
                code="internal_error",
            )
            await charging.settle(ticket, _failed(ticket, chain, 500, "error", internal))
            body = registry.route(protocol, protocol).error_body(internal, ticket.ctx.request_id)
            await send_json(send, 500, body, relay.client_headers(ticket, chain))

    # --- endpoints -----------------------------------------------------------------
    async def _completion_plan(
        self, ticket: charging.Ticket, required: str, receive: Receive
    ) -> Chain:
        """Everything before the first upstream call: who, what, where, and the hold."""
        ctx = ticket.ctx
        key = await admission.authenticate(ctx.headers, runtime.key_info)
        ticket.key = key
        raw, body = await _read_json(receive)
        if isinstance(body.get("model"), str):
            ticket.requested_model = body["model"]
        snapshot = await runtime.catalog()
        try:
            admitted = admission.admit(snapshot, key, body, ctx.headers, input_tokens=len(raw) // 4)
        except admission.ModelNotAllowed as refused:
            ticket.model = snapshot.resolve(refused.public_id)
            raise
        ticket.model = admitted.model
        ticket.route_reason = admitted.route_reason
        _body_check(ctx.protocol, body, required)
        shapes.request_shape_check(ctx.protocol, body)
        ticket.stream = bool(body.get("stream"))
        latency_budget_ms = admission.header_int(
            ctx.headers, "x-tollgate-max-latency-ms", minimum=1
        )
        byok_keys = await runtime.byok_keys(key.organisation_id)
        candidates = await planning.candidates_for(
            admitted.models,
            organisation_id=key.organisation_id,
            byok_keys=byok_keys,
            client=ctx.protocol,
        )
        ticket.deployment = candidates[0].deployment
        # Every candidate uses the customer's own key: the hold is the BYOK fee.
        ticket.byok = all(c.byok for c in candidates)
        plan = planning.prepare(
            ctx.protocol, candidates, body, input_estimate=tokens.hold_input_tokens(raw, body)
        )
        models = [c.model for c in plan.candidates]
        hold = charging.hold(
            key, models, body, input_estimate=plan.input_estimate, byok=ticket.byok
        )
        if not key.rate_limited:
            ticket.hold = await hold
        else:
            # The rate limits and the credit hold, side by side (a round trip each);
            # whichever was granted is given back by settle if the other refused.
            limited, held = await asyncio.gather(
                ratelimit.admit(
                    runtime.ratelimit,
                    key,
                    request_id=ctx.request_id,
                    protocol=ctx.protocol,
                    tokens=ratelimit.tokens_estimate(models, body, plan.input_estimate),
                ),
                hold,
                return_exceptions=True,
            )
            if not isinstance(limited, BaseException):
                ticket.rate = limited
            if not isinstance(held, BaseException):
                ticket.hold = held
            for failed in (limited, held):  # a 429 before a 402
                if isinstance(failed, BaseException):
                    raise failed
        return Chain(
            ctx,
            plan,
            body,
            hedge_delay=admitted.hedge_delay,
            latency_budget_ms=latency_budget_ms,
        )

    async def _completion_serve(
        self, ticket: charging.Ticket, chain: Chain, receive: Receive, send: Send
    ) -> None:
        if not ticket.stream:
            # A non-streaming answer is priced and billed whole, so there is nothing to
            # cut short if the client leaves: no disconnect watcher (it costs a task).
            await relay.serve_once(ticket, chain, send)
            return
        disconnected = disconnect_watch(receive)
        try:
            await relay.serve_stream(ticket, chain, send, disconnected)
        finally:
            disconnected.cancel()

    async def _count_tokens(self, ticket: charging.Ticket, receive: Receive, send: Send) -> None:
        ctx = ticket.ctx
        key = await admission.authenticate(ctx.headers, runtime.key_info)
        ticket.key = key
        _, body = await _read_json(receive)
        _body_check("anthropic", body, "messages")
        shapes.request_shape_check("anthropic", body)
        snapshot = await runtime.catalog()
        entry = admission.model_resolve(snapshot, key, admission.requested_model(body))
        byok_keys = await runtime.byok_keys(key.organisation_id)
        try:
            candidates = planning.candidates_plan(
                entry=entry,
                organisation_id=key.organisation_id,
                byok_keys=byok_keys,
                client="anthropic",
            )
        except GatewayError:
            candidates = []
        for candidate in candidates:
            if candidate.wire == "anthropic":
                ticket.deployment = candidate.deployment
                forwarded = {**body, "model": candidate.deployment.upstream_model}
                await relay.relay_passthrough(
                    ticket,
                    candidate,
                    send,
                    body=json_dumps(forwarded),
                    path="/messages/count_tokens",
                )
                return
        await send_json(
            send,
            200,
            {"input_tokens": tokens.estimate_tokens_anthropic(body)},
            {"x-tollgate-request-id": ctx.request_id, "x-tollgate-token-count": "estimated"},
        )

    async def _models(self, ticket: charging.Ticket, send: Send) -> None:
        ctx = ticket.ctx
        key = await admission.authenticate(ctx.headers, runtime.key_info)
        options = model_list.ListOptions.parse(ctx.incoming.query, ctx.headers)
        body = model_list.models_body(
            await runtime.catalog(),
            key.group_id,
            await runtime.byok_keys(key.organisation_id),
            options,
            anthropic="anthropic-version" in ctx.headers,
        )
        await send_json(send, 200, body, {"x-tollgate-request-id": ctx.request_id})

    async def _model(self, ticket: charging.Ticket, send: Send, name: str) -> None:
        key = await admission.authenticate(ticket.ctx.headers, runtime.key_info)
        body = model_list.model_body(
            await runtime.catalog(),
            key.group_id,
            name,
            anthropic="anthropic-version" in ticket.ctx.headers,
        )
        await send_json(send, 200, body, {"x-tollgate-request-id": ticket.ctx.request_id})


def _body_check(protocol: str, body: dict[str, Any], required: str) -> None:
    value = body.get(required)
    if protocol == "responses":
        if not isinstance(value, str | list):
            raise GatewayError(
                400,
                "The field 'input' is required: a string or a list of input items.",
                code="invalid_request",
                param="input",
            )
        return
    if not isinstance(value, list):
        raise GatewayError(
            400,
            f"The field '{required}' is required and must be a list.",
            code="invalid_request",
            param=required,
        )


def _protocol_guess(path: str) -> str:
    """The protocol to answer a path that is not a completion in."""
    return "anthropic" if path.startswith("/v1/messages") else "openai"


def _failed(
    ticket: charging.Ticket,
    chain: Chain | None,
    status: int,
    outcome: str,
    error: GatewayError | None = None,
) -> charging.Outcome:
    if chain is not None:
        return relay.outcome_of(chain, status=status, outcome=outcome, error=error)
    return charging.Outcome(status=status, outcome=outcome, error=error)


async def _read_json(receive: Receive) -> tuple[bytes, dict[str, Any]]:
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
    return raw, body
