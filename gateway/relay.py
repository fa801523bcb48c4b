"""Calling the upstream and relaying its answer: one attempt, non-streaming or
streaming, translated when the client and upstream protocols differ."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
from django.conf import settings

from gateway.asgi_io import (
    ClientGone,
    json_dumps,
    send_json,
    stream_end,
    stream_send,
    stream_start,
)
from gateway.calls import Call
from gateway.protocols import responses as translate_response
from gateway.protocols import streams as translate_stream
from gateway.protocols.errors import GatewayError, UpstreamError, upstream_error_parse
from gateway.protocols.passthrough import AnthropicPassthroughStream, OpenAIPassthroughStream
from gateway.protocols.sse import SSE_KEEPALIVE, SSEParser, sse_encode
from gateway.protocols.usage import Usage
from gateway.runtime import runtime
from gateway.upstream import upstream_request_build

log = logging.getLogger("tollgate.proxy")


def upstream_failure(call: Call, error: UpstreamError) -> GatewayError:
    """What the client is told when the upstream answered with an error status."""
    slug = call.deployment.provider.slug if call.deployment else "upstream"
    status = error.status
    headers: dict[str, str] = {}
    if status in (401, 403):
        if call.byok:
            return GatewayError(
                502, f"{slug} refused your own provider key (BYOK): {error.message}. "
                "Replace it under Provider Keys in the console.",
                code="byok_key_refused",
            )
        log.error("provider %s refused managed credentials: %s", slug, error.message)
        return GatewayError(
            502, f"The provider {slug} refused the gateway's credentials. The operator "
            "must update them; try again later.", code="upstream_auth_failed",
        )
    if status == 404:
        return GatewayError(
            502, f"The provider {slug} does not know the model "
            f"'{call.deployment.upstream_model if call.deployment else ''}': {error.message}",
            code="upstream_model_not_found",
        )
    if status == 429:
        return GatewayError(
            429, f"Rate limited by {slug}: {error.message}", code="upstream_rate_limited",
            type="rate_limit_error", headers=headers,
        )
    if status in (408, 504):
        return GatewayError(504, f"{slug} timed out: {error.message}", code="upstream_timeout")
    if status in (503, 529):
        return GatewayError(
            503, f"{slug} is overloaded: {error.message}", code="upstream_overloaded"
        )
    if status >= 500:
        return GatewayError(502, f"{slug} failed: {error.message}", code="upstream_error")
    # Other 4xx: the request itself was refused; the client can fix it.
    return GatewayError(
        400 if status == 422 else status,
        f"{slug} rejected the request: {error.message}", code="upstream_bad_request",
        type="invalid_request_error",
    )


def _transport_failure(call: Call, exc: Exception) -> GatewayError:
    slug = call.deployment.provider.slug if call.deployment else "upstream"
    if isinstance(exc, httpx.TimeoutException):
        return GatewayError(504, f"{slug} did not answer in time.", code="upstream_timeout")
    return GatewayError(
        502, f"Could not reach {slug}: {type(exc).__name__} {exc}".strip(),
        code="upstream_unreachable",
    )


def _attempt(call: Call, status: int, started: float, error: str = "") -> None:
    deployment = call.deployment
    call.attempts.append({
        "provider": deployment.provider.slug if deployment else "",
        "upstream_model": deployment.upstream_model if deployment else "",
        "status": status,
        "error": error[:500],
        "latency_ms": int((time.monotonic() - started) * 1000),
        "started_at": round(time.time() - (time.monotonic() - started), 3),
    })


def _usage_from(protocol: str, data: dict[str, Any]) -> Usage:
    if protocol == "anthropic":
        return Usage.from_anthropic(data.get("usage"))
    return Usage.from_openai(data.get("usage"))


async def relay_once(call: Call, send, *, api_key: str, body: bytes) -> None:
    """Non-streaming: one request, the whole answer, priced, then sent."""
    deployment = call.deployment
    assert deployment is not None and runtime.client is not None
    upstream_protocol = deployment.provider.protocol
    request = upstream_request_build(
        runtime.client, deployment, api_key=api_key, body=body,
        client_headers=call.incoming.headers,
    )
    started = time.monotonic()
    try:
        response = await runtime.client.send(request)
    except httpx.HTTPError as exc:
        _attempt(call, 0, started, str(exc) or type(exc).__name__)
        raise _transport_failure(call, exc) from exc
    call.mark_first_byte()
    if response.status_code >= 400:
        error = upstream_error_parse(response.status_code, response.content)
        _attempt(call, response.status_code, started, error.message)
        raise upstream_failure(call, error)
    _attempt(call, response.status_code, started)
    try:
        data = response.json()
    except ValueError as exc:
        raise GatewayError(502, f"{deployment.provider.slug} sent a malformed response.",
                           code="upstream_malformed") from exc
    usage = _usage_from(upstream_protocol, data)
    public_id = call.model.public_id if call.model else ""
    if call.protocol == upstream_protocol:
        data["model"] = public_id
    elif call.protocol == "openai":
        data = translate_response.openai_response_from_anthropic(data, model=public_id)
    else:
        data = translate_response.anthropic_response_from_openai(data, model=public_id)
    extra = call.price(usage)
    data["usage"] = {
        **(usage.to_anthropic() if call.protocol == "anthropic" else usage.to_openai()),
        **extra,
    }
    await call.finish(status=200, outcome="ok")
    await send_json(send, 200, json_dumps(data), call.cost_headers())


def _stream_adapter(call: Call, input_estimate: int):
    upstream_protocol = call.deployment.provider.protocol if call.deployment else "openai"
    public_id = call.model.public_id if call.model else ""
    body = call.body or {}
    if call.protocol == "openai":
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if upstream_protocol == "openai":
            return OpenAIPassthroughStream(
                include_usage=include_usage, input_tokens_estimate=input_estimate,
                usage_hook=call.price,
            )
        return translate_stream.AnthropicToOpenAIStream(
            model=public_id, include_usage=include_usage, usage_hook=call.price
        )
    if upstream_protocol == "anthropic":
        return AnthropicPassthroughStream(usage_hook=call.price)
    return translate_stream.OpenAIToAnthropicStream(
        model=public_id, input_tokens_estimate=input_estimate, usage_hook=call.price
    )


class _StreamState:
    def __init__(self) -> None:
        self.started = False
        self.last_sent = time.monotonic()


async def relay_stream(
    call: Call, send, disconnected: asyncio.Task, *, api_key: str, body: bytes,
    input_estimate: int,
) -> None:
    """Streaming: headers go out once the upstream answers (or after a short grace,
    followed by keep-alive comments while it is silent); events are relayed as they
    arrive; a client that goes away cancels the upstream request at once."""
    deployment = call.deployment
    assert deployment is not None and runtime.client is not None
    state = _StreamState()
    adapter = _stream_adapter(call, input_estimate)
    keepalive = max(settings.TOLLGATE_KEEPALIVE_SECONDS, 0.01)

    async def open_stream() -> None:
        if not state.started:
            state.started = True
            await stream_start(send, call.base_headers())

    async def write(data: bytes) -> None:
        await stream_send(send, data)
        state.last_sent = time.monotonic()

    async def keepalive_loop() -> None:
        await asyncio.sleep(settings.TOLLGATE_STREAM_HEADER_GRACE_MS / 1000)
        await open_stream()
        await write(SSE_KEEPALIVE)
        while True:
            wait = keepalive - (time.monotonic() - state.last_sent)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await write(SSE_KEEPALIVE)

    async def pump() -> None:
        request = upstream_request_build(
            runtime.client, deployment, api_key=api_key, body=body,
            client_headers=call.incoming.headers,
        )
        started = time.monotonic()
        ka = asyncio.create_task(keepalive_loop())
        try:
            try:
                response = await runtime.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                _attempt(call, 0, started, str(exc) or type(exc).__name__)
                raise _transport_failure(call, exc) from exc
            try:
                if response.status_code >= 400:
                    content = await response.aread()
                    error = upstream_error_parse(response.status_code, content)
                    _attempt(call, response.status_code, started, error.message)
                    raise upstream_failure(call, error)
                _attempt(call, response.status_code, started)
                parser = SSEParser()
                async for chunk in response.aiter_raw():
                    call.mark_first_byte()
                    if ka is not None:
                        ka.cancel()
                        ka = None
                        await open_stream()
                    for event in parser.feed(chunk):
                        out = adapter.feed(event)
                        if adapter.done:
                            await _finish_stream(call, adapter)
                        for data in out:
                            await write(data)
                for event in parser.flush():
                    for data in adapter.feed(event):
                        await write(data)
                tail = adapter.finish()
                await _finish_stream(call, adapter)
                for data in tail:
                    await write(data)
            finally:
                await response.aclose()
        finally:
            if ka is not None:
                ka.cancel()

    pump_task = asyncio.create_task(pump())
    try:
        await asyncio.wait({pump_task, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if not pump_task.done():
            pump_task.cancel()
            await asyncio.gather(pump_task, return_exceptions=True)
            raise ClientGone()
        pump_task.result()
    except ClientGone:
        await _cancelled(call, adapter, input_estimate)
        return
    except GatewayError as error:
        if not state.started:
            raise  # nothing sent yet: the caller answers with a proper status
        await call.finish(status=error.status, outcome="error", error=error)
        await _send_stream_error(call, send, error)
    await stream_end(send)


async def _finish_stream(call: Call, adapter) -> None:
    if call.finished:
        return
    if call.usage is None:  # the hook never ran: price what we can tell
        usage = adapter.usage or Usage()
        call.price(usage)
    call.usage_estimated = bool(getattr(adapter, "usage_estimated", False))
    if adapter.error is not None:
        error = GatewayError(
            adapter.error.status, adapter.error.message, code="upstream_stream_error"
        )
        await call.finish(status=adapter.error.status, outcome="error", error=error)
    else:
        await call.finish(status=200, outcome="ok")


async def _cancelled(call: Call, adapter, input_estimate: int) -> None:
    """The client went away: bill what was used so far (estimated if the upstream
    had not reported it yet) and log the request as cancelled."""
    if call.finished:
        return
    usage = adapter.usage or Usage(input_tokens=input_estimate)
    if usage.output_tokens == 0:
        usage.output_tokens = adapter.output_estimate if hasattr(adapter, "output_estimate") else 0
        call.usage_estimated = True
    call.price(usage)
    await call.finish(status=499, outcome="cancelled")


async def _send_stream_error(call: Call, send, error: GatewayError) -> None:
    try:
        if call.protocol == "anthropic":
            await stream_send(send, sse_encode(call.error_body(error), "error"))
        else:
            await stream_send(send, sse_encode(call.error_body(error)))
    except ClientGone:
        pass


async def relay_passthrough(call: Call, send, *, api_key: str, body: bytes, path: str) -> None:
    """A free upstream call answered as is (token counting)."""
    deployment = call.deployment
    assert deployment is not None and runtime.client is not None
    request = upstream_request_build(
        runtime.client, deployment, api_key=api_key, body=body,
        client_headers=call.incoming.headers, path=path,
    )
    try:
        response = await runtime.client.send(request)
    except httpx.HTTPError as exc:
        raise _transport_failure(call, exc) from exc
    if response.status_code >= 400:
        raise upstream_failure(call, upstream_error_parse(response.status_code, response.content))
    await send_json(send, 200, response.content, {"x-tollgate-request-id": call.request_id})


def body_dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
