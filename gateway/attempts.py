"""One attempt at one deployment: send the request, classify a failure, and for
streams read up to the first content so that a failure before any byte reached the
client can still fall back to the next deployment."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2

from gateway.calls import Call
from gateway.catalog import DeploymentEntry, ModelEntry
from gateway.protocols import responses as translate_response
from gateway.protocols import streams as translate_stream
from gateway.protocols.errors import GatewayError, UpstreamError, upstream_error_parse
from gateway.protocols.passthrough import AnthropicPassthroughStream, OpenAIPassthroughStream
from gateway.protocols.sse import SSEParser
from gateway.protocols.tokens import estimate_tokens_anthropic
from gateway.protocols.usage import Usage
from gateway.runtime import runtime

log = logging.getLogger("tollgate.proxy")

DEFAULT_429_REST = 5.0
DEFAULT_OVERLOAD_REST = 5.0
AUTH_FAILURE_REST = 60.0


@dataclass
class Candidate:
    """A deployment with the key to call it with."""

    deployment: DeploymentEntry
    api_key: str
    byok: bool
    organisation_id: int
    model: ModelEntry

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


class AttemptFailed(Exception):
    def __init__(
        self,
        error: GatewayError,
        *,
        retryable: bool,
        rest: float | None = None,
        count_failure: bool = True,
        skip_deployment: bool = False,
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.retryable = retryable  # may the next deployment be tried
        self.rest = rest  # seconds this deployment should rest
        self.count_failure = count_failure  # towards the circuit breaker
        self.skip_deployment = skip_deployment  # not even with another key


def _retry_after(headers: httpx2.Headers | None) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return max(float(raw) * scale, 0.0)
            except ValueError:
                continue
    return None


def classify(
    cand: Candidate, error: UpstreamError, headers: httpx2.Headers | None = None
) -> AttemptFailed:
    """Turn an upstream error status into what happens next (PROTOCOLS.md, Errors)."""
    slug = cand.label
    status = error.status
    retry_after = _retry_after(headers)
    if status in (401, 403):
        if cand.byok:
            gw = GatewayError(
                502,
                f"{slug} refused your own provider key: {error.message}. Replace it "
                "under Provider Keys in the console.",
                code="byok_key_refused",
            )
        else:
            log.error("provider %s refused managed credentials: %s", slug, error.message)
            gw = GatewayError(
                502,
                f"The provider {slug} refused the gateway's credentials; the operator "
                "must update them.",
                code="upstream_auth_failed",
            )
        return AttemptFailed(gw, retryable=True, rest=AUTH_FAILURE_REST, count_failure=False)
    if status == 404:
        gw = GatewayError(
            502,
            f"{slug} does not know the model '{cand.deployment.upstream_model}': {error.message}",
            code="upstream_model_not_found",
        )
        return AttemptFailed(
            gw, retryable=True, rest=AUTH_FAILURE_REST, count_failure=False, skip_deployment=True
        )
    if status == 429:
        # The client may retry after the upstream's own delay (the SDKs honour it).
        hint = {"retry-after": str(max(int(retry_after + 0.999), 1))} if retry_after else None
        gw = GatewayError(
            429,
            f"Rate limited by {slug}: {error.message}",
            code="upstream_rate_limited",
            type="rate_limit_error",
            headers=hint,
        )
        if error.is_quota_exhausted:
            return AttemptFailed(gw, retryable=False, count_failure=False)
        return AttemptFailed(
            gw, retryable=True, rest=retry_after or DEFAULT_429_REST, count_failure=False
        )
    if status in (408, 504):
        return AttemptFailed(
            GatewayError(504, f"{slug} timed out: {error.message}", code="upstream_timeout"),
            retryable=True,
        )
    if status == 409:
        return AttemptFailed(
            GatewayError(409, f"{slug}: {error.message}", code="upstream_conflict"),
            retryable=True,
            count_failure=False,
        )
    if status in (503, 529):
        # 529 stays 529 for Anthropic clients (their SDK's OverloadedError); OpenAI
        # clients are answered 503 (see Call.client_status).
        gw = GatewayError(
            status, f"{slug} is overloaded: {error.message}", code="upstream_overloaded"
        )
        return AttemptFailed(gw, retryable=True, rest=retry_after or DEFAULT_OVERLOAD_REST)
    if status in (500, 502):
        return AttemptFailed(
            GatewayError(502, f"{slug} failed: {error.message}", code="upstream_error"),
            retryable=True,
            rest=retry_after,
        )
    if status >= 500:  # 501, 505...: retrying elsewhere will not change the answer
        return AttemptFailed(
            GatewayError(502, f"{slug} failed: {error.message}", code="upstream_error"),
            retryable=False,
            count_failure=False,
        )
    gw = GatewayError(
        400 if status == 422 else status,
        f"{slug} rejected the request: {error.message}",
        code="upstream_bad_request",
        type="invalid_request_error",
    )
    return AttemptFailed(gw, retryable=False, count_failure=False)


def transport_failure(cand: Candidate, exc: BaseException) -> AttemptFailed:
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        gw = GatewayError(504, f"{cand.label} did not answer in time.", code="upstream_timeout")
    else:
        detail = f"{type(exc).__name__} {exc}".strip()
        gw = GatewayError(
            502, f"Could not reach {cand.label}: {detail}", code="upstream_unreachable"
        )
    return AttemptFailed(gw, retryable=True)


@dataclass
class Attempt:
    """The record of one attempt (it becomes one entry of the request log's chain)."""

    call: Call
    candidate: Candidate
    body: bytes
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    usage: Usage | None = None
    cost_nano: int = 0
    record: dict[str, Any] | None = None

    def price(self, usage: Usage) -> dict[str, Any]:
        """The usage hook of this attempt's stream adapter: the client is shown the
        request's whole cost (this attempt plus any hedged loser's)."""
        self.usage = usage
        self.cost_nano, extra = self.call.cost_of(
            usage, byok=self.candidate.byok, model=self.candidate.model
        )
        extra["cost"] = (self.cost_nano + self.call.extra_cost_nano) / 1_000_000_000
        return extra

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
        self.call.attempts.append(self.record)

    def request(self, path: str | None = None) -> httpx2.Request:
        assert runtime.upstream is not None
        return runtime.upstream.request(
            self.candidate.deployment,
            api_key=self.candidate.api_key,
            body=self.body,
            client_headers=self.call.incoming.headers,
            path=path,
        )


async def attempt_once(attempt: Attempt) -> dict[str, Any]:
    """Non-streaming: the whole answer, translated to the client's protocol, with
    usage priced into the attempt. Raises AttemptFailed."""
    call, cand = attempt.call, attempt.candidate
    try:
        response = await runtime.upstream.send(attempt.request())  # type: ignore[union-attr]
    except (httpx2.HTTPError, TimeoutError) as exc:
        failure = transport_failure(cand, exc)
        attempt.log(0, str(exc) or type(exc).__name__, error_type=failure.error.code or "")
        raise failure from exc
    if response.status_code >= 400:
        error = upstream_error_parse(response.status_code, response.content)
        failure = classify(cand, error, response.headers)
        attempt.log(response.status_code, error.message, error_type=failure.error.code or "")
        raise failure
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        attempt.log(response.status_code, "malformed JSON", error_type="upstream_malformed")
        raise AttemptFailed(
            GatewayError(
                502, f"{cand.label} sent a malformed response.", code="upstream_malformed"
            ),
            retryable=True,
        ) from exc
    attempt.log(response.status_code)
    upstream = cand.deployment.provider.protocol
    public_id = cand.model.public_id
    if upstream == "anthropic":
        usage = Usage.from_anthropic(data.get("usage"))
    else:
        usage = Usage.from_openai(data.get("usage"))
    if call.protocol == upstream:
        data["model"] = public_id
    elif call.protocol == "openai":
        data = translate_response.openai_response_from_anthropic(data, model=public_id)
    else:
        data = translate_response.anthropic_response_from_openai(data, model=public_id)
    extra = attempt.price(usage)
    shape = usage.to_anthropic() if call.protocol == "anthropic" else usage.to_openai()
    data["usage"] = {**shape, **extra}
    return data


def stream_adapter(attempt: Attempt, input_estimate: int):
    call = attempt.call
    upstream = attempt.candidate.deployment.provider.protocol
    public_id = attempt.candidate.model.public_id
    if call.protocol == "openai":
        body = call.body or {}
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if upstream == "openai":
            return OpenAIPassthroughStream(
                include_usage=include_usage,
                input_tokens_estimate=input_estimate,
                usage_hook=attempt.price,
            )
        return translate_stream.AnthropicToOpenAIStream(
            model=public_id, include_usage=include_usage, usage_hook=attempt.price
        )
    if upstream == "anthropic":
        return AnthropicPassthroughStream(usage_hook=attempt.price)
    # message_start must carry the best known input count before the upstream says.
    return translate_stream.OpenAIToAnthropicStream(
        model=public_id,
        input_tokens_estimate=estimate_tokens_anthropic(call.body or {}),
        usage_hook=attempt.price,
    )


@dataclass
class OpenStream:
    """A stream whose first content has arrived (or that finished): nothing has been
    sent to the client yet; `preamble` holds what is owed to it so far."""

    attempt: Attempt
    response: httpx2.Response
    chunks: Any  # the response's raw byte iterator, positioned after the preamble
    parser: SSEParser
    adapter: Any
    preamble: list[bytes]


async def stream_open(attempt: Attempt, input_estimate: int) -> OpenStream:
    """Send the request and read until the first content (or the end). Any failure
    up to here raises AttemptFailed: the client has seen nothing of this attempt."""
    cand = attempt.candidate
    try:
        response = await runtime.upstream.send(attempt.request(), stream=True)  # type: ignore[union-attr]
    except (httpx2.HTTPError, TimeoutError) as exc:
        failure = transport_failure(cand, exc)
        attempt.log(0, str(exc) or type(exc).__name__, error_type=failure.error.code or "")
        raise failure from exc
    try:
        if response.status_code >= 400:
            content = await response.aread()
            error = upstream_error_parse(response.status_code, content)
            failure = classify(cand, error, response.headers)
            attempt.log(response.status_code, error.message, error_type=failure.error.code or "")
            raise failure
        adapter = stream_adapter(attempt, input_estimate)
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
                ) from None
            for event in parser.feed(chunk):
                preamble.extend(adapter.feed(event))
        if adapter.error is not None and not adapter.emitted_content:
            failure = classify(cand, adapter.error)
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
        ) from exc
    except BaseException:
        await response.aclose()
        raise
