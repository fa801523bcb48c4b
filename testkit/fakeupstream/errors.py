"""Vendor-accurate error bodies for the fake upstream.

OpenAI answers `{"error": {"message", "type", "param", "code"}}`; Anthropic answers
`{"type": "error", "error": {"type", "message"}, "request_id"}`. The defaults below are
the messages the real APIs send for each status, so that the gateway's error mapping
is tested against what it will meet in production.
"""

from __future__ import annotations

import json
from typing import Any

OPENAI = "openai"
ANTHROPIC = "anthropic"


def dumps(payload: Any) -> bytes:
    """Compact JSON, the way both vendors send it (and cheaper to produce)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class WireError(Exception):
    """A request the real vendor would refuse: carries the status and the error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def openai_error(
    message: str,
    *,
    status: int = 400,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> WireError:
    return WireError(
        status, {"error": {"message": message, "type": type, "param": param, "code": code}}
    )


ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error(message: str, *, status: int = 400, type: str | None = None) -> WireError:
    """The request id is filled in when the response is sent (it is per request)."""
    kind = (
        type
        or ANTHROPIC_TYPES.get(status)
        or ("api_error" if status >= 500 else "invalid_request_error")
    )
    return WireError(status, {"type": "error", "error": {"type": kind, "message": message}})


_OPENAI_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: (
        "Project `proj_fake` does not have access to model `{model}`",
        "invalid_request_error",
        "model_not_found",
    ),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout", None),
    409: ("The request conflicted with another request. Please retry.", "conflict", None),
    413: ("Request too large.", "invalid_request_error", "request_too_large"),
    429: (
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
        "Limit 10000, Used 10000, Requested 1. Please try again in 6ms. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}

_ANTHROPIC_DEFAULTS: dict[int, str] = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    402: (
        "Your credit balance is too low to access the Anthropic API. Please go to "
        "Plans & Billing to upgrade or purchase credits."
    ),
    403: "Your API key does not have permission to use the specified resource.",
    404: "model: {model}",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: (
        "This request would exceed the rate limit for your organization of 50 requests "
        "per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. "
        "You can see the response headers for current usage."
    ),
    500: "Internal server error",
    504: "Request timed out",
    529: "Overloaded",
}


def default_error_body(protocol: str, status: int, model: str) -> dict[str, Any]:
    """The body the vendor sends with `status` (the request id is added later)."""
    if protocol == OPENAI:
        message, kind, code = _OPENAI_DEFAULTS.get(
            status,
            (
                "Server error." if status >= 500 else "Request failed.",
                "server_error" if status >= 500 else "invalid_request_error",
                None,
            ),
        )
        return openai_error(message.format(model=model), type=kind, code=code).body
    message = _ANTHROPIC_DEFAULTS.get(
        status, "Internal server error" if status >= 500 else "Request failed."
    )
    return anthropic_error(message.format(model=model), status=status).body


def stream_error_body(protocol: str) -> dict[str, Any]:
    """What a stream carries when it fails midway: Anthropic's usual overload, or
    OpenAI's generic server error."""
    if protocol == OPENAI:
        return default_error_body(OPENAI, 500, "")
    return anthropic_error("Overloaded", status=529).body
