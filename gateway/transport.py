"""A lean HTTP/1.1 transport for the shared upstream httpx2 client.

httpx2's own transport (httpcore2, anyio, h11) costs about 0.9 ms of CPU per upstream
call, more than all the rest of the gateway's work together (docs/benchmarks.md). This
transport plugs into httpx2's documented extension point (`AsyncClient(transport=...)`),
so the client API, its timeouts, decoding and exceptions stay httpx2's, and moves the
bytes with an asyncio protocol and the httptools parser (C, already uvicorn's):

- one pool per origin, holding idle keep-alive connections on a LIFO stack, so a
  checkout looks only at the connection it takes (expired ones are closed as found);
- `max_connections` across all origins; beyond it, requests wait for a free slot
  (the pool timeout);
- connect, read (headers and between body chunks), write and pool timeouts from the
  request's `timeout` extension, raised as httpx2's own exception classes;
- TLS through `loop.create_connection(ssl=...)` with httpx2's default context;
- response bodies handed over as they arrive (all that has arrived at each read), with
  flow control: the socket is paused while more than HIGH_WATER bytes wait for the
  reader;
- a connection is reused only after its response was read to the end and both sides
  allow keep-alive; a response closed early (a client that went away) closes it, and
  so do bytes that answer no request (a connection is never handed to the next
  request, of any tenant, with part of an answer in it); interim 1xx answers are
  skipped; header lines with line breaks are refused.

It does not retry: like httpcore, a request that fails is the caller's to retry (the
router then tries the next deployment). Proxies are httpx2's: `gateway.upstream.Upstream`
keeps httpx2's default transport when the environment names a proxy. HTTP/2 is not
spoken (httpx2 does not speak it by default either).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final, cast

import httptools
import httpx2

HIGH_WATER = 1 << 20  # bytes buffered for the reader before the socket is paused
WRITE_CHUNK = 1 << 16  # request bodies above this are written with flow control


class _End(enum.Enum):
    EOF = enum.auto()


_EOF: Final = _End.EOF  # the end of a response body, in a connection's chunks


def _timeout_of(request: httpx2.Request, name: str) -> float | None:
    return request.extensions.get("timeout", {}).get(name)


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an origin; one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        # Set by connection_made, which asyncio calls before any other callback.
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        # The response being read.
        self.request: httpx2.Request | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] | None = None  # set when the headers are complete
        # Body bytes, exceptions to raise to the reader, and _EOF.
        self.chunks: deque[Any] = deque()
        self.buffered = 0
        self.reader: asyncio.Future[None] | None = None  # a reader waiting for a chunk
        self.complete = False
        self.until_close = False  # no length and not chunked: the body ends at EOF
        self.paused = False
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.interim = False  # reading a 1xx response, which the final one follows
        self.unexpected = False  # bytes nobody asked for: the connection is never reused

    # --- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection makes stream transports (asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(
                httpx2.RemoteProtocolError(f"malformed response: {exc}", request=self.request)
            )
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.drained is not None and not self.drained.done():
            self.drained.set_exception(
                httpx2.WriteError("connection closed while writing", request=self.request)
            )
        if self.request is None or self.complete:
            return
        if self.head is not None and self.head.done() and self.until_close and exc is None:
            self.complete = True
            self._push(_EOF)
            return
        detail = f": {exc}" if exc else ""
        if self.head is not None and not self.head.done():
            error: httpx2.HTTPError = httpx2.RemoteProtocolError(
                f"server disconnected without sending a response{detail}", request=self.request
            )
        else:
            error = httpx2.ReadError(
                f"connection closed mid-response{detail}", request=self.request
            )
        self._fail(error)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # --- httptools callbacks -------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.request is None or self.complete:
            # A response to no request (while idle, or past the end of the answer):
            # reusing this connection could give it to the next request, of anyone.
            self.unexpected = self.closed = True
            if self.request is None:
                self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.unexpected:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.unexpected:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:  # never asked for: no protocol switch on this connection
                self.unexpected = self.closed = True
                self._fail(
                    httpx2.RemoteProtocolError(
                        "unexpected 101 Switching Protocols", request=self.request
                    )
                )
                return
            self.interim = True  # 100 Continue, 102, 103 Early Hints: the answer follows
            self.headers = []
            return
        self.status = status
        names = {name.lower() for name, _ in self.headers}
        self.until_close = b"content-length" not in names and b"transfer-encoding" not in names
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.unexpected:
            return
        self._push(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.unexpected:
            return
        if self.interim:
            self.interim = False
            return
        self.complete = True
        if not self.parser.should_keep_alive():
            self.closed = True  # reuse is refused; closed when handed back
        self._push(_EOF)

    # --- the exchange ---------------------------------------------------------------
    def _push(self, item: bytes | Exception | _End) -> None:
        self.chunks.append(item)
        reader = self.reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        else:
            self._push(error)

    async def send(self, request: httpx2.Request, body: bytes) -> None:
        """Write the request and wait for the response's status and headers."""
        if self.closed:
            raise httpx2.RemoteProtocolError(
                "the connection closed before the request", request=request
            )
        loop = asyncio.get_running_loop()
        self.request = request
        self.status = 0
        self.headers = []
        self.chunks.clear()
        self.buffered = 0
        self.complete = False
        self.interim = False
        self.head = loop.create_future()
        url = request.url
        lines = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                # A line break would start a header (or a request) of its own.
                raise httpx2.LocalProtocolError(f"line break in header {name!r}", request=request)
            lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        if len(body) <= WRITE_CHUNK:
            self.transport.write(b"".join(lines) + body)
        else:
            self.transport.write(b"".join(lines))
            await self._write_large(body, _timeout_of(request, "write"))
        await self._wait(self.head, _timeout_of(request, "read"), httpx2.ReadTimeout)

    async def _write_large(self, body: bytes, limit: float | None) -> None:
        view = memoryview(body)
        for start in range(0, len(body), WRITE_CHUNK):
            if self.closed:
                raise httpx2.WriteError("connection closed while writing", request=self.request)
            self.transport.write(view[start : start + WRITE_CHUNK])
            if self.write_paused:
                self.drained = asyncio.get_running_loop().create_future()
                await self._wait(self.drained, limit, httpx2.WriteTimeout)

    async def _wait(
        self,
        future: asyncio.Future[None],
        limit: float | None,
        error: type[httpx2.TimeoutException],
    ) -> None:
        """Await `future`, failing it with `error` after `limit` seconds (a timer
        handle, cheaper than asyncio.timeout's task machinery on this path)."""
        if future.done():
            return future.result()
        timer = None
        if limit is not None:
            timer = asyncio.get_running_loop().call_later(
                limit, _expire, future, error, self.request
            )
        try:
            return await future
        finally:
            if timer is not None:
                timer.cancel()

    async def chunk(self) -> bytes | _End:
        """All the body that has arrived (at least one chunk), or _EOF. Handing over
        everything at once lets a busy relay write what several upstream reads brought
        in one write to its client."""
        chunks = self.chunks
        while not chunks:
            request = self.request
            assert request is not None  # a body is read only during its exchange
            self.reader = asyncio.get_running_loop().create_future()
            await self._wait(self.reader, _timeout_of(request, "read"), httpx2.ReadTimeout)
        item = chunks[0]
        if item is _EOF:
            return item
        if isinstance(item, Exception):
            chunks.popleft()
            raise item
        parts = []
        while chunks and isinstance(chunks[0], bytes):
            parts.append(chunks.popleft())
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.buffered -= len(data)
        if self.paused:  # the reader took everything: let the socket fill again
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(
    future: asyncio.Future[None],
    error: type[httpx2.TimeoutException],
    request: httpx2.Request | None,
) -> None:
    if not future.done():
        future.set_exception(error("timed out", request=request))


class _Body(httpx2.AsyncByteStream):
    """A response body read from its connection as it arrives; hands the connection
    back to the pool once read to the end, or closes it if abandoned."""

    def __init__(self, transport: LeanTransport, conn: _Connection) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._loop = asyncio.get_running_loop()

    def __del__(self) -> None:
        # A response dropped unclosed (a task cancelled between receiving it and
        # closing it) must not hold its pool slot for ever. The collector may run in
        # any thread: hand the release to the loop.
        conn, self._conn = self._conn, None
        if conn is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(
                functools.partial(self._transport.release, conn, reusable=False)
            )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx2.StreamClosed()
        while True:
            try:
                item = await conn.chunk()
            except BaseException:
                await self.aclose()
                raise
            if item is _EOF:
                break
            yield item
        await self.aclose()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport.release(conn, reusable=conn.complete and not conn.closed)


class _Pool:
    """The idle connections to one origin (scheme, host, port)."""

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.idle: list[_Connection] = []  # LIFO: the newest on top


class LeanTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
        self._pools: dict[tuple[bytes, bytes, int], _Pool] = {}
        self._busy = 0  # connections checked out or being opened
        self._idle_count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    # --- httpx2.AsyncBaseTransport ----------------------------------------------------
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._closed:
            raise RuntimeError("the upstream transport is closed")
        body = (
            request.content
            if isinstance(request.stream, httpx2.ByteStream)
            else await request.aread()
        )
        conn = await self._checkout(request)
        try:
            await conn.send(request, body)
        except BaseException as exc:
            self.release(conn, reusable=False)
            if isinstance(exc, OSError):
                raise httpx2.WriteError(str(exc), request=request) from exc
            raise
        return httpx2.Response(
            conn.status,
            headers=conn.headers,
            stream=_Body(self, conn),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            for conn in pool.idle:
                conn.close()
            pool.idle.clear()
        self._idle_count = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the upstream transport is closed"))

    # --- the pool -------------------------------------------------------------------
    async def _checkout(self, request: httpx2.Request) -> _Connection:
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or 0)
        pool = self._pools.get(origin)
        if pool is None:
            tls = url.raw_scheme == b"https"
            pool = self._pools[origin] = _Pool(url.host, url.port or (443 if tls else 80), tls)
        while True:
            conn = self._idle_take(pool)
            if conn is not None:
                self._busy += 1
                return conn
            if self._busy + self._idle_count < self._max_connections:
                break
            if self._idle_count:  # make room: close the oldest idle connection anywhere
                self._evict_oldest()
                break
            await self._wait_for_release(request)
        self._busy += 1
        try:
            return await self._connect(pool, request)
        except BaseException:
            self._busy -= 1
            self._wake()
            raise

    def _idle_take(self, pool: _Pool) -> _Connection | None:
        now = time.monotonic()
        while pool.idle:
            conn = pool.idle.pop()
            self._idle_count -= 1
            if conn.closed or now - conn.idle_since > self._expiry:
                conn.close()
                continue
            return conn
        return None

    async def _wait_for_release(self, request: httpx2.Request) -> None:
        """Wait until a connection is handed back or closed (the pool timeout)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timeout = _timeout_of(request, "pool")
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _expire, waiter, httpx2.PoolTimeout, request)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake()  # woken but leaving: pass the turn on
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _evict_oldest(self) -> None:
        oldest: _Pool | None = None
        for pool in self._pools.values():
            if pool.idle and (
                oldest is None or pool.idle[0].idle_since < oldest.idle[0].idle_since
            ):
                oldest = pool
        if oldest is not None:
            oldest.idle.pop(0).close()
            self._idle_count -= 1

    async def _connect(self, pool: _Pool, request: httpx2.Request) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if pool.tls:
            if self._ssl is None:
                self._ssl = httpx2.create_ssl_context()
            context = self._ssl
        opening = loop.create_connection(
            lambda: _Connection(pool),
            pool.host,
            pool.port,
            ssl=context,
            server_hostname=pool.host if context else None,
        )
        try:
            async with asyncio.timeout(_timeout_of(request, "connect")):
                _, conn = await opening
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(
                f"connecting to {pool.host}:{pool.port} timed out", request=request
            ) from exc
        except OSError as exc:
            raise httpx2.ConnectError(
                f"{pool.host}:{pool.port}: {exc.strerror or exc}", request=request
            ) from exc
        return conn

    def release(self, conn: _Connection, *, reusable: bool) -> None:
        """Take back a connection whose exchange is over."""
        self._busy -= 1
        conn.request = None
        if conn.paused and not conn.closed:  # the last read filled the buffer: read again
            conn.paused = False
            conn.transport.resume_reading()
        if (
            reusable
            and not conn.closed
            and not self._closed
            and self._idle_count < self._max_keepalive
        ):
            conn.idle_since = time.monotonic()
            conn.pool.idle.append(conn)
            self._idle_count += 1
        else:
            conn.close()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
