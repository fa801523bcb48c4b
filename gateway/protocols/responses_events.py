"""What every Responses stream shares: event numbering, the lifecycle event names,
and the events that end a stream in failure (`error`, then `response.failed`)."""

from __future__ import annotations

from typing import Any

from gateway.protocols.errors import OPENAI_TYPE_BY_STATUS, GatewayError
from gateway.protocols.sse import sse_encode

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
# Events that carry no output yet: a failure after them can still be retried.
PREAMBLE = ("response.created", "response.in_progress", "response.queued")


def error_code(status: int) -> str:
    """A ResponseError code (the SDK's list) for an upstream failure."""
    if status == 429:
        return "rate_limit_exceeded"
    return "server_error"


class Sequenced:
    """Responses events numbered from 0."""

    sequence_number: int

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, **fields, "sequence_number": self.sequence_number}
        self.sequence_number += 1
        return sse_encode(data, kind)


def error_fields(code: str, message: str, param: str | None, kind: str) -> dict[str, Any]:
    """The fields of an `error` event. The API reference (and the SDK's
    ResponseErrorEvent) put code, message and param at the top level; the service
    nests them under "error" (the Python SDK raises on that shape). Both are sent."""
    return {
        "code": code,
        "message": message,
        "param": param,
        "error": {"type": kind, "code": code, "message": message, "param": param},
    }


def responses_error_event(error: GatewayError, sequence_number: int = 0) -> bytes:
    """A Responses stream's `error` event for a gateway error."""
    kind = error.type or OPENAI_TYPE_BY_STATUS.get(error.status, "server_error")
    fields = error_fields(error.code or error_code(error.status), error.message, error.param, kind)
    return sse_encode({"type": "error", **fields, "sequence_number": sequence_number}, "error")


def responses_stream_error(error: GatewayError, adapter: Any = None) -> bytes:
    """What ends a Responses stream the gateway has to cut (the upstream dropped it
    after output had started): `error` and `response.failed` (Codex reads only the
    latter), numbered after the adapter's events and naming its response id."""
    fail = getattr(adapter, "stream_error", None)
    if callable(fail):
        return bytes(fail(error))
    return responses_error_event(error, int(getattr(adapter, "sequence_number", 0) or 0))


def failed_response(response: dict[str, Any], status: int, message: str) -> dict[str, Any]:
    failed = dict(response)
    failed["status"] = "failed"
    failed["error"] = {"code": error_code(status), "message": message}
    failed["incomplete_details"] = None
    return failed
