"""LeanTransport, the upstream client's HTTP/1.1 transport, against a scripted raw TCP
server: keep-alive reuse, bodies by length, chunks and EOF, every timeout and failure
as httpx2's exception, the connection limit, and abandoned streams."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
from collections.abc import Awaitable, Callable

import httpx2
import pytest

from gateway.transport import _EOF, HIGH_WATER, LeanTransport, _Connection, _Pool

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict], Awaitable[None]]


class Server:
    """Accepts connections; for each request read, awaits `reply(reader, writer, request)`
    where request holds its method, path, headers and body."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[dict] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *lines = head.decode().split("\r\n")
                headers = {k.lower(): v for k, _, v in (x.partition(": ") for x in lines if x)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                method, path, _ = line.split(" ")
                request = {
                    "method": method,
                    "path": path,
                    "headers": headers,
                    "body": body,
                    "index": len(self.requests),
                }
                self.requests.append(request)
                await self.reply(reader, writer, request)
                if writer.is_closing():
                    return
        finally:
            writer.close()


def ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{head}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def client(**kwargs) -> httpx2.AsyncClient:
    timeout = kwargs.pop("timeout", 5.0)
    return httpx2.AsyncClient(transport=LeanTransport(**kwargs), timeout=timeout)


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_reuses_one_connection_and_sends_the_request_whole():
    async def reply(reader, writer, request):
        writer.write(
            ok(
                json.dumps({"n": request["index"], "got": request["body"].decode()}).encode(),
                "x-upstream: yes",
            )
        )

    async def main():
        async with Server(reply) as server, client() as c:
            answers = []
            for n in range(3):
                r = await c.post(
                    f"{server.url}/v1/chat/completions?x=1",
                    content=f"body {n}",
                    headers={"authorization": "Bearer up"},
                )
                answers.append((r.status_code, r.headers["x-upstream"], r.json()))
            return server, answers

    server, answers = run(main())
    assert answers == [(200, "yes", {"n": n, "got": f"body {n}"}) for n in range(3)]
    assert server.connections == 1
    first = server.requests[0]
    assert (first["method"], first["path"]) == ("POST", "/v1/chat/completions?x=1")
    assert first["headers"]["authorization"] == "Bearer up"
    assert first["headers"]["host"].startswith("127.0.0.1:")


def test_a_chunked_stream_is_handed_over_as_it_arrives():
    more = None

    async def reply(reader, writer, request):
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for part in (b"data: one\n\n", b"data: two\n\n"):
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            if request["index"] == 0:  # the next part only after the client saw this one
                await more.wait()
                more.clear()
        writer.write(b"0\r\n\r\n")

    async def main():
        nonlocal more
        more = asyncio.Event()
        async with Server(reply) as server, client() as c:
            seen = []
            async with c.stream("POST", f"{server.url}/s", content=b"{}") as r:
                async for chunk in r.aiter_raw():
                    seen.append(chunk)
                    more.set()
            again = await c.post(f"{server.url}/s", content=b"{}")
            return server, seen, again.content

    server, seen, again = run(main())
    assert seen == [b"data: one\n\n", b"data: two\n\n"]
    assert again == b"data: one\n\ndata: two\n\n"
    assert server.connections == 1  # the stream was read to its end: reused


def test_connection_close_and_bodies_ending_at_eof_are_not_reused():
    async def reply(reader, writer, request):
        if request["index"] == 0:
            writer.write(ok(b'{"a":1}', "connection: close"))
        else:
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"b":2}')
        await writer.drain()
        writer.close()

    async def main():
        async with Server(reply) as server, client() as c:
            first = (await c.post(f"{server.url}/", content=b"x")).json()
            second = (await c.post(f"{server.url}/", content=b"x")).json()
            third = (await c.post(f"{server.url}/", content=b"x")).json()
            return server, [first, second, third]

    server, bodies = run(main())
    assert bodies == [{"a": 1}, {"b": 2}, {"b": 2}]
    assert server.connections == 3


def test_gzip_bodies_are_decoded_by_httpx2():
    async def reply(reader, writer, request):
        packed = gzip.compress(b'{"hello": "world"}')
        writer.write(ok(packed, "content-encoding: gzip"))

    async def main():
        async with Server(reply) as server, client() as c:
            return (await c.post(f"{server.url}/", content=b"x")).json()

    assert run(main()) == {"hello": "world"}


def test_a_large_request_body_arrives_intact():
    payload = bytes(range(256)) * (5 * 4096)  # 5 MiB

    async def reply(reader, writer, request):
        writer.write(
            ok(
                json.dumps(
                    {"size": len(request["body"]), "same": request["body"] == payload}
                ).encode()
            )
        )

    async def main():
        async with Server(reply) as server, client() as c:
            return (await c.post(f"{server.url}/", content=payload)).json()

    assert run(main()) == {"size": len(payload), "same": True}


@pytest.mark.parametrize("where", ["before the headers", "between chunks"])
def test_a_silent_upstream_raises_read_timeout(where):
    async def reply(reader, writer, request):
        if where == "between chunks":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await reader.read()  # silent until the client gives up and closes

    async def main():
        async with Server(reply) as server, client(timeout=httpx2.Timeout(5, read=0.05)) as c:
            with pytest.raises(httpx2.ReadTimeout):
                await c.post(f"{server.url}/", content=b"x")
            return server

    server = run(main())
    assert server.connections == 1


def test_a_drop_mid_body_raises_read_error_and_the_connection_is_not_reused():
    async def reply(reader, writer, request):
        if request["index"] == 0:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
            await writer.drain()
            writer.close()
        else:
            writer.write(ok(b'{"ok":true}'))

    async def main():
        async with Server(reply) as server, client() as c:
            with pytest.raises(httpx2.ReadError):
                await c.post(f"{server.url}/", content=b"x")
            after = (await c.post(f"{server.url}/", content=b"x")).json()
            return server, after

    server, after = run(main())
    assert after == {"ok": True}
    assert server.connections == 2


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        (b"", httpx2.RemoteProtocolError),
        (b"HTTP/1.1 abc nonsense\r\n\r\n", httpx2.RemoteProtocolError),
    ],
)
def test_no_answer_or_garbage_raises_remote_protocol_error(sent, error):
    async def reply(reader, writer, request):
        writer.write(sent)
        await writer.drain()
        writer.close()

    async def main():
        async with Server(reply) as server, client() as c:
            with pytest.raises(error):
                await c.post(f"{server.url}/", content=b"x")

    run(main())


def test_nothing_listening_raises_connect_error():
    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with client() as c:
            with pytest.raises(httpx2.ConnectError):
                await c.post(f"http://127.0.0.1:{port}/", content=b"x")

    run(main())


def test_max_connections_queues_requests_and_times_out_the_pool_wait():
    release = holding = None

    async def reply(reader, writer, request):
        if request["body"] == b"hold":
            holding.set()
            await release.wait()
        writer.write(ok(request["body"]))

    async def main():
        nonlocal release, holding
        release, holding = asyncio.Event(), asyncio.Event()
        async with (
            Server(reply) as server,
            client(max_connections=1, timeout=httpx2.Timeout(5, pool=0.05)) as c,
        ):
            held = asyncio.create_task(c.post(f"{server.url}/", content=b"hold"))
            await holding.wait()  # the only connection is busy
            with pytest.raises(httpx2.PoolTimeout):
                await c.post(f"{server.url}/", content=b"second")
            waiting = asyncio.create_task(c.post(f"{server.url}/", content=b"third"))
            await asyncio.sleep(0)  # one turn of the loop: the task runs up to its wait
            queued = len(c._transport._waiters)
            release.set()
            bodies = [(await held).content, (await waiting).content]
            return server, bodies, queued

    server, bodies, queued = run(main())
    assert queued == 1
    assert bodies == [b"hold", b"third"]
    assert server.connections == 1


def test_an_abandoned_stream_closes_its_connection():
    async def reply(reader, writer, request):
        if request["index"] == 0:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await reader.read()  # no more: the client leaves
        else:
            writer.write(ok(b"fresh"))

    async def main():
        async with Server(reply) as server, client() as c:
            async with c.stream("POST", f"{server.url}/", content=b"x") as r:
                async for chunk in r.aiter_raw():
                    assert chunk == b"first"
                    break
            after = await c.post(f"{server.url}/", content=b"x")
            return server, after.content

    server, after = run(main())
    assert after == b"fresh"
    assert server.connections == 2


def test_expired_idle_connections_are_replaced():
    async def reply(reader, writer, request):
        writer.write(ok(b"{}"))

    async def main():
        async with Server(reply) as server, client(keepalive_expiry=0) as c:
            for _ in range(2):
                await c.post(f"{server.url}/", content=b"x")
            return server

    assert run(main()).connections == 2


class _FakeSocket:
    def __init__(self) -> None:
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def test_reading_pauses_while_the_reader_lags_and_resumes_when_it_catches_up():
    async def main():
        conn = _Connection(pool=None)
        sock = _FakeSocket()
        conn.connection_made(sock)
        piece = b"x" * (HIGH_WATER // 4)
        reading = []
        for _ in range(5):
            conn.on_body(piece)
            reading.append(sock.reading)
        data = await conn.chunk()  # everything that arrived, at once
        reading.append(sock.reading)
        conn.on_body(b"tail")
        conn.on_message_complete()
        return reading, len(data), await conn.chunk(), await conn.chunk()

    reading, taken, tail, end = run(main())
    # Paused once more than HIGH_WATER (1 MiB) waited; resumed when the reader took it.
    assert reading == [True, True, True, True, False, True]
    assert taken == 5 * (HIGH_WATER // 4)
    assert tail == b"tail"
    assert end is _EOF


def _self_signed(tmp_path):
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_verifies_the_certificate_and_reuses_the_tls_connection(tmp_path):
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    connections = []

    async def serve(reader, writer):
        connections.append(writer)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            writer.write(ok(await reader.readexactly(length)))
        writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://localhost:{server.sockets[0].getsockname()[1]}/"
        try:
            async with httpx2.AsyncClient(transport=LeanTransport(ssl_context=trusting)) as c:
                bodies = [(await c.post(url, content=f"tls {n}")).text for n in range(2)]
            async with client() as untrusting:  # the system's CAs: the cert is refused
                with pytest.raises(httpx2.ConnectError):
                    await untrusting.post(url, content=b"x")
            return bodies
        finally:
            server.close()

    assert run(main()) == ["tls 0", "tls 1"]
    # Both requests shared one TLS connection; the refused handshake never got that far.
    assert len(connections) == 1


@pytest.mark.parametrize("together", [False, True])
def test_interim_1xx_responses_are_skipped_and_never_answer_the_next_request(together):
    async def reply(reader, writer, request):
        if request["body"] == b"A":
            writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n")
            if not together:
                await writer.drain()
            writer.write(ok(b'{"for": "A"}'))
        else:
            writer.write(ok(b'{"for": "B"}'))

    async def main():
        async with Server(reply) as server, client() as c:
            a = await c.post(f"{server.url}/", content=b"A")
            b = await c.post(f"{server.url}/", content=b"B")
            return server, (a.status_code, a.json()), (b.status_code, b.json())

    server, a, b = run(main())
    assert a == (200, {"for": "A"})
    assert b == (200, {"for": "B"})
    assert server.connections == 1


def test_bytes_past_the_answer_keep_the_connection_from_being_reused():
    async def reply(reader, writer, request):
        if request["index"] == 0:  # says 2 bytes, sends more: a broken upstream
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
        else:
            writer.write(ok(b"second"))

    async def main():
        async with Server(reply) as server, client() as c:
            first = await c.post(f"{server.url}/", content=b"x")
            second = await c.post(f"{server.url}/", content=b"x")
            return server, first.content, second.content

    server, first, second = run(main())
    assert (first, second) == (b"ok", b"second")
    assert server.connections == 2


def test_a_connection_handed_back_while_paused_reads_again():
    async def main():
        transport = LeanTransport()
        conn = _Connection(pool=_Pool("127.0.0.1", 80, False))
        sock = _FakeSocket()
        conn.connection_made(sock)
        conn.request = httpx2.Request("POST", "http://127.0.0.1/")
        body = b"x" * (HIGH_WATER + 10)
        conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        before = (conn.complete, sock.reading)
        transport._busy = 1  # as if checked out
        transport.release(conn, reusable=True)  # the reader left without reading
        return before, sock.reading, conn.pool.idle == [conn]

    # The answer arrived whole and filled the buffer: reading was paused.
    assert run(main()) == ((True, False), True, True)


def test_a_response_dropped_unclosed_gives_its_slot_back():
    async def reply(reader, writer, request):
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await reader.read()

    async def main():
        async with Server(reply) as server:
            transport = LeanTransport(max_connections=1)
            response = await transport.handle_async_request(
                httpx2.Request("POST", f"{server.url}/", content=b"x")
            )
            busy = transport._busy
            del response  # a task cancelled between getting it and closing it
            gc.collect()
            await asyncio.sleep(0)  # the release is handed to the loop
            after = transport._busy
            await transport.aclose()
            return busy, after

    assert run(main()) == (1, 0)


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async def reply(reader, writer, request):
        writer.write(ok(b"{}"))

    async def main():
        async with Server(reply) as server, client() as c:
            with pytest.raises(httpx2.LocalProtocolError):
                await c.post(
                    f"{server.url}/", content=b"x", headers={"x-beta": "a\r\nx-injected: 1"}
                )
            after = await c.post(f"{server.url}/", content=b"x")
            return server, after.status_code

    server, status = run(main())
    assert status == 200
    assert [r["headers"].get("x-injected") for r in server.requests] == [None]
