"""What an upstream failure means (PROTOCOLS.md, Errors; docs/protocols.md, Upstream
errors): which failures let the next deployment be tried and which rest a deployment
and for how long (`classify`, `transport_failure`); what the client is told
(`upstream_error_relayed`: a same-protocol upstream's own status and body, its
rate-limit headers; credentials masked); and the error of a chain where every attempt
failed (`failure_summary`). Used by gateway.attempts.
"""

from __future__ import annotations

import dataclasses
import logging

import httpx2

from gateway.planning import Candidate
from gateway.protocols.errors import GatewayError, UpstreamError
from gateway.protocols.secrets_mask import mask_in, mask_secrets

log = logging.getLogger("tollgate.proxy")

DEFAULT_429_REST = 5.0
DEFAULT_OVERLOAD_REST = 5.0
AUTH_FAILURE_REST = 60.0


class AttemptFailed(Exception):
    def __init__(
        self,
        error: GatewayError,
        *,
        retryable: bool,
        rest: float | None = None,
        count_failure: bool = True,
        skip_deployment: bool = False,
        transient: bool = False,
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.retryable = retryable  # may the next deployment be tried
        self.rest = rest  # seconds this deployment should rest
        self.count_failure = count_failure  # towards the circuit breaker
        self.skip_deployment = skip_deployment  # not even with another key
        self.transient = transient  # a dropped connection: worth one more try there


# --- classifying failures ------------------------------------------------------------


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
        # 529 stays 529 for Anthropic clients (their SDK's OverloadedError); the OpenAI
        # protocols' clients are answered 503 (registry.Route.client_status).
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


# Upstream error statuses relayed as the upstream wrote them to a client of its own
# protocol. Not 401/403/404: those are about the gateway's credentials or catalog, not
# the client's request, and are answered in the gateway's words.
RELAYED_STATUSES = frozenset({400, 409, 413, 422, 429, 500, 502, 503, 504, 529})
_FORWARDED_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


def upstream_error_masked(error: UpstreamError, cand: Candidate) -> UpstreamError:
    """The upstream's error with credentials masked (it may echo the key it got)."""
    known = (cand.api_key,)
    return dataclasses.replace(
        error,
        message=mask_secrets(error.message, known),
        body=mask_in(error.body, known) if error.body is not None else None,
    )


def upstream_error_relayed(
    gw: GatewayError,
    error: UpstreamError,
    headers: httpx2.Headers | None,
    *,
    client: str,
    wire: str,
) -> GatewayError:
    """What the client is told: for its own protocol, the upstream's status and body
    as they were (the provider is named in X-Tollgate-Provider, not in the message);
    and the upstream's rate-limit headers (retry-after, retry-after-ms, x-ratelimit-*,
    anthropic-ratelimit-*), which SDKs and agents time their retries by."""
    forwarded = {}
    if headers is not None and error.status in (429, 503, 529):
        forwarded = {
            name: value
            for name, value in headers.items()
            if name.startswith(_FORWARDED_PREFIXES) or name in ("retry-after", "retry-after-ms")
        }
    if forwarded:
        gw = dataclasses.replace(gw, headers={**(gw.headers or {}), **forwarded})
    if client == wire and error.body is not None and error.status in RELAYED_STATUSES:
        gw = dataclasses.replace(
            gw,
            status=error.status,
            message=error.message,
            upstream_body=error.body,
            upstream_wire=wire,
        )
    return gw


def transport_failure(cand: Candidate, exc: BaseException) -> AttemptFailed:
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        gw = GatewayError(504, f"{cand.label} did not answer in time.", code="upstream_timeout")
    else:
        detail = f"{type(exc).__name__} {exc}".strip()
        gw = GatewayError(
            502, f"Could not reach {cand.label}: {detail}", code="upstream_unreachable"
        )
        return AttemptFailed(gw, retryable=True, transient=True)
    return AttemptFailed(gw, retryable=True)


def failure_summary(failures: list[tuple[Candidate, AttemptFailed]]) -> GatewayError:
    """The error a client sees when no attempt succeeded: the last one's status, and
    every attempt named in the message."""
    last = failures[-1][1].error
    if len(failures) == 1:
        return last
    tried = "; ".join(
        f"({i}) {c.label}: {f.error.status} {f.error.message.removeprefix(c.label + ' ')}"
        for i, (c, f) in enumerate(failures, 1)
    )
    return GatewayError(
        last.status,
        f"All {len(failures)} attempts failed: {tried}",
        code=last.code or "all_attempts_failed",
        type=last.type,
        headers=last.headers,
        upstream_body=last.upstream_body,
        upstream_wire=last.upstream_wire,
    )
