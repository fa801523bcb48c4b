"""Upstream: requests built per protocol, sent through LeanTransport (or, behind a
proxy named by the environment, httpx2's client), with no cookies kept between them."""

from __future__ import annotations

import asyncio

import httpx2

from gateway.catalog import DeploymentEntry, ProviderEntry
from gateway.transport import LeanTransport
from gateway.upstream import Upstream
from tests.gateway.test_transport import Server, ok


def deployment(url: str, protocol: str) -> DeploymentEntry:
    provider = ProviderEntry(
        id=1,
        slug="p",
        protocol=protocol,
        base_url=url,
        api_key_env="",
        api_key_encrypted="",
        extra_headers=(("x-extra", "1"),),
        wires=(protocol,),
    )
    return DeploymentEntry(id=1, provider=provider, upstream_model="m", priority=0, weight=1)


def test_requests_carry_only_what_the_upstream_needs_and_no_cookies_are_kept():
    async def reply(reader, writer, request):
        writer.write(ok(b'{"ok": true}', "set-cookie: tenant=a; Path=/"))

    async def main():
        async with Server(reply) as server:
            upstream = Upstream()
            try:
                for protocol in ("openai", "anthropic"):
                    request = upstream.request(
                        deployment(server.url + "/v1", protocol),
                        api_key="up-key",
                        body=b"{}",
                        client_headers={
                            "authorization": "Bearer sk-tg-secret",
                            "anthropic-beta": "b1",
                        },
                    )
                    response = await upstream.send(request)
                    assert response.json() == {"ok": True}
            finally:
                await upstream.aclose()
            return server.requests

    openai_call, anthropic_call = asyncio.run(main())
    assert openai_call["path"] == "/v1/chat/completions"
    assert openai_call["headers"]["authorization"] == "Bearer up-key"
    assert anthropic_call["path"] == "/v1/messages"
    assert anthropic_call["headers"]["x-api-key"] == "up-key"
    assert anthropic_call["headers"]["anthropic-version"] == "2023-06-01"
    assert anthropic_call["headers"]["anthropic-beta"] == "b1"
    assert "authorization" not in anthropic_call["headers"]  # never the client's key
    for call in (openai_call, anthropic_call):
        assert call["headers"]["x-extra"] == "1"
        assert call["headers"]["accept-encoding"] == "identity"  # streams relay raw bytes
        assert "cookie" not in call["headers"]  # the first answer's Set-Cookie is dropped


def test_a_proxy_in_the_environment_selects_httpx2s_client(monkeypatch, settings):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "localhost")  # no proxy named: still the lean transport
    plain = Upstream()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    proxied = Upstream()
    assert isinstance(plain._transport, LeanTransport) and plain._client is None
    assert isinstance(proxied._client, httpx2.AsyncClient) and proxied._transport is None
    # Its jar refuses every cookie: tenants' requests share the client.
    jar = proxied._client.cookies.jar
    assert jar._policy.allowed_domains() == ()
