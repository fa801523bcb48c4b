"""The types every route shares: a prepared request body and the stream adapter
interface (see registry.py for the routes themselves)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.protocols.errors import UpstreamError
from gateway.protocols.sse import SSEEvent
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
