"""Error bodies in each protocol's shape, and reading errors that upstreams send.

OpenAI:    {"error": {"message", "type", "param", "code"}}
Anthropic: {"type": "error", "error": {"type", "message"}, "request_id"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ANTHROPIC_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
STATUS_BY_ANTHROPIC_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
OPENAI_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
    529: "service_unavailable",
}


@dataclass
class GatewayError(Exception):
    """An error the gateway answers with, in whichever protocol the client speaks.

    `code` is a stable machine-readable reason (model_not_found, invalid_api_key, ...);
    `message` says what was wrong and what to do about it."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    type: str | None = None
    headers: dict[str, str] | None = None
    # An upstream's own error body (credentials masked), relayed as is to a client of
    # the same protocol (`upstream_wire`): its type, code, param and message intact.
    upstream_body: dict[str, Any] | None = None
    upstream_wire: str | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.message}"

    def openai_body(self) -> dict[str, Any]:
        return openai_error_body(
            self.status, self.message, type=self.type, code=self.code, param=self.param
        )

    def anthropic_body(self, request_id: str | None = None) -> dict[str, Any]:
        return anthropic_error_body(self.status, self.message, request_id=request_id)


def openai_error_body(
    status: int,
    message: str,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": type or OPENAI_TYPE_BY_STATUS.get(status, "api_error"),
            "param": param,
            "code": code,
        }
    }


def anthropic_error_body(
    status: int, message: str, *, type: str | None = None, request_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "error",
        "error": {
            "type": type or ANTHROPIC_TYPE_BY_STATUS.get(status, "api_error"),
            "message": message,
        },
    }
    if request_id:
        body["request_id"] = request_id
    return body


@dataclass(frozen=True)
class UpstreamError:
    """What an upstream said when it failed: its status, its error type and message."""

    status: int
    type: str
    message: str
    body: dict[str, Any] | None = None  # the parsed error body, when it was JSON

    @property
    def is_quota_exhausted(self) -> bool:
        """429s that mean 'out of money', not 'slow down': retrying cannot help."""
        text = f"{self.type} {self.message}".lower()
        markers = ("insufficient_quota", "quota", "spend limit", "billing", "credit balance")
        return any(marker in text for marker in markers)


def upstream_error_parse(status: int, body: bytes) -> UpstreamError:
    """Read an error body from either vendor (or anything else) without failing."""
    error_type, message = "", ""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            error_type = str(err.get("type") or err.get("code") or "")
            message = str(err.get("message") or "")
        elif isinstance(err, str):
            message = err
        elif isinstance(data.get("message"), str):
            message = data["message"]
    if not message:
        text = body[:300].decode("utf-8", errors="replace").strip() if body else ""
        message = text or f"upstream answered HTTP {status}"
    return UpstreamError(
        status=status,
        type=error_type,
        message=message,
        body=data if isinstance(data, dict) and "error" in data else None,
    )


def status_of_openai_error(error: dict[str, Any]) -> int:
    """The HTTP status an OpenAI-shaped mid-stream error payload stands for: its
    numeric code, an Anthropic error type used as code, or words in type and code."""
    code = error.get("code")
    if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
        return int(code)
    if isinstance(code, str) and code in STATUS_BY_ANTHROPIC_TYPE:
        return STATUS_BY_ANTHROPIC_TYPE[code]
    text = f"{error.get('type') or ''} {code or ''}".lower()
    if "rate_limit" in text or "too_many_requests" in text:
        return 429
    if "overloaded" in text or "unavailable" in text:
        return 529
    if "timeout" in text:
        return 504
    if "invalid_request" in text:
        return 400
    return 500
