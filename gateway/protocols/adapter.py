"""The types every route shares: a prepared request body and the stream adapter
interface (see registry.py for the routes themselves)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.protocols.errors import GatewayError, UpstreamError
from gateway.protocols.responses_events import responses_stream_error
from gateway.protocols.sse import SSEEvent, SSEParser
from gateway.protocols.usage import Usage

UsageHook = Callable[[Usage], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request body ready for the upstream (model name set), and the tools left
    out because the upstream cannot run them (a function's name, a built-in tool's
    type, `type:name` for named built-ins such as custom or namespace tools)."""

    body: dict[str, Any]
    dropped_tools: tuple[str, ...] = ()


class StreamAdapter(Protocol):
    """What every stream adapter offers: `feed(event)` returns the bytes to send the
    client now, `finish()` what is owed when the upstream closes. `usage` is the
    upstream's usage so far, `done` the end of the answer, `error` a mid-stream
    upstream error (already turned into the client's error event), `emitted_content`
    whether real output was produced (until then a retry is invisible to the client),
    `usage_estimated` whether usage had to be estimated."""

    # Read-only to the caller (plain attributes or properties both satisfy this).
    @property
    def usage(self) -> Usage: ...

    @property
    def done(self) -> bool: ...

    @property
    def error(self) -> UpstreamError | None: ...

    @property
    def emitted_content(self) -> bool: ...

    @property
    def usage_estimated(self) -> bool: ...

    def feed(self, event: SSEEvent) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...

    @property
    def output_estimate(self) -> int: ...


class ChainedStream:
    """`first` reads the upstream; its output is parsed again and fed to `second`,
    whose output goes to the client. `usage` (and the usage hook) belong to `first`,
    which reads the upstream's exact usage; `done`, `emitted_content` and
    `output_estimate` are `second`'s; `error` is `first`'s if it saw one (it knows
    the upstream's status), else `second`'s."""

    def __init__(self, first: StreamAdapter, second: StreamAdapter) -> None:
        self.first = first
        self.second = second
        self._parser = SSEParser()

    @property
    def usage(self) -> Usage:
        return self.first.usage

    @property
    def usage_estimated(self) -> bool:
        return bool(self.first.usage_estimated)

    @property
    def done(self) -> bool:
        return self.second.done

    @property
    def error(self) -> UpstreamError | None:
        return self.first.error or self.second.error

    @property
    def emitted_content(self) -> bool:
        return self.second.emitted_content

    @property
    def output_estimate(self) -> int:
        return self.second.output_estimate

    @property
    def sequence_number(self) -> int:
        return int(getattr(self.second, "sequence_number", 0))

    def stream_error(self, error: GatewayError) -> bytes:
        return responses_stream_error(error, self.second)

    def _relay(self, pieces: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for piece in pieces:
            for event in self._parser.feed(piece):
                out += self.second.feed(event)
        return out

    def feed(self, event: SSEEvent) -> list[bytes]:
        return self._relay(self.first.feed(event))

    def finish(self) -> list[bytes]:
        out = self._relay(self.first.finish())
        for event in self._parser.flush():
            out += self.second.feed(event)
        return out + self.second.finish()
