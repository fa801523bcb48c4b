"""Calling upstreams: one shared `Upstream` per process (a pool of keep-alive
connections, limits and timeouts from settings) and the request shape per protocol.

Requests and responses are httpx2's (httpx's maintained successor, which the official
openai and anthropic SDKs use). They go straight to an httpx2 transport,
`gateway.transport.LeanTransport`, which costs a small fraction of httpx2's default
transport per call (docs/benchmarks.md). The client layer above it is skipped on
purpose: a gateway sets its own headers per request and follows no redirects, and a
client's cookie jar, shared by every tenant's requests, is a thing it must not have.
When the environment names a proxy, an httpx2 client (which honours HTTP(S)_PROXY and
NO_PROXY) with httpx2's own transport is used instead, its cookie jar refusing all.
"""

from __future__ import annotations

import http.cookiejar
import urllib.request

import httpx2
from django.conf import settings

from gateway.catalog import DeploymentEntry
from gateway.transport import LeanTransport

ANTHROPIC_VERSION = "2023-06-01"
USER_AGENT = "tollgate"


class Upstream:
    def __init__(self) -> None:
        max_connections: int = settings.TOLLGATE_UPSTREAM_MAX_CONNECTIONS
        max_keepalive = min(256, max_connections)
        keepalive_expiry = 30
        limits = httpx2.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=keepalive_expiry,
        )
        timeout = httpx2.Timeout(
            connect=settings.TOLLGATE_UPSTREAM_CONNECT_TIMEOUT,
            read=settings.TOLLGATE_UPSTREAM_READ_TIMEOUT,
            write=30,
            pool=settings.TOLLGATE_UPSTREAM_CONNECT_TIMEOUT,
        )
        self._timeouts = timeout.as_dict()
        self._urls: dict[str, httpx2.URL] = {}
        self._client: httpx2.AsyncClient | None = None
        self._transport: httpx2.AsyncBaseTransport | None = None
        if set(urllib.request.getproxies()) - {"no"}:  # NO_PROXY alone names no proxy
            refuse_all = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            self._client = httpx2.AsyncClient(
                limits=limits,
                timeout=timeout,
                follow_redirects=False,
                cookies=http.cookiejar.CookieJar(policy=refuse_all),
            )
        else:
            self._transport = LeanTransport(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive,
                keepalive_expiry=keepalive_expiry,
            )

    async def send(self, request: httpx2.Request, *, stream: bool = False) -> httpx2.Response:
        """The response, its body read unless `stream`; httpx2's exceptions."""
        if self._client is not None:
            return await self._client.send(request, stream=stream)
        response = await self._transport.handle_async_request(request)  # type: ignore[union-attr]
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._transport is not None:
            await self._transport.aclose()

    def request(
        self,
        deployment: DeploymentEntry,
        *,
        api_key: str,
        body: bytes,
        client_headers: dict[str, str],
        path: str | None = None,
        wire: str | None = None,
    ) -> httpx2.Request:
        """The HTTP request for one attempt. `path` defaults to the endpoint of the
        wire spoken (the provider's protocol unless given). Only headers the upstream
        needs are sent: never the client's own Tollgate key."""
        provider = deployment.provider
        # Identity: streams are relayed as the bytes arrive, which a compressed stream
        # would break, and answers are small next to the time they take to generate.
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "accept-encoding": "identity",
            "user-agent": USER_AGENT,
        }
        if provider.protocol == "anthropic":
            headers["x-api-key"] = api_key
            headers["anthropic-version"] = client_headers.get(
                "anthropic-version", ANTHROPIC_VERSION
            )
            beta = client_headers.get("anthropic-beta")
            if beta:
                headers["anthropic-beta"] = beta
            url = provider.base_url + (path or "/messages")
        else:
            headers["authorization"] = f"Bearer {api_key}"
            default = "/responses" if wire == "responses" else "/chat/completions"
            url = provider.base_url + (path or default)
        for name, value in provider.extra_headers:
            headers[name] = value
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 10_000:  # base URLs come from the catalog: few
                self._urls.clear()
            parsed = self._urls[url] = httpx2.URL(url)
        return httpx2.Request(
            "POST", parsed, content=body, headers=headers, extensions={"timeout": self._timeouts}
        )
