"""The upstream HTTP client: one shared httpx2.AsyncClient per process, with limits and
timeouts from settings, and the request shape per protocol.

httpx2 is httpx's maintained successor (same API; the official openai and anthropic
SDKs depend on it). Its bytes move through `gateway.transport.LeanTransport`, which
costs a small fraction of httpx2's default transport per call (docs/benchmarks.md),
unless the environment names a proxy: then httpx2's own transport, which honours it.
"""

from __future__ import annotations

import urllib.request

import httpx2
from django.conf import settings

from gateway.catalog import DeploymentEntry
from gateway.transport import LeanTransport

ANTHROPIC_VERSION = "2023-06-01"


def upstream_client_create() -> httpx2.AsyncClient:
    limits = httpx2.Limits(
        max_connections=settings.TOLLGATE_UPSTREAM_MAX_CONNECTIONS,
        max_keepalive_connections=min(256, settings.TOLLGATE_UPSTREAM_MAX_CONNECTIONS),
        keepalive_expiry=30,
    )
    timeout = httpx2.Timeout(
        connect=settings.TOLLGATE_UPSTREAM_CONNECT_TIMEOUT,
        read=settings.TOLLGATE_UPSTREAM_READ_TIMEOUT,
        write=30,
        pool=settings.TOLLGATE_UPSTREAM_CONNECT_TIMEOUT,
    )
    if urllib.request.getproxies():
        return httpx2.AsyncClient(limits=limits, timeout=timeout, follow_redirects=False)
    transport = LeanTransport(
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
    )
    return httpx2.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)


def upstream_request_build(
    client: httpx2.AsyncClient,
    deployment: DeploymentEntry,
    *,
    api_key: str,
    body: bytes,
    client_headers: dict[str, str],
    path: str | None = None,
) -> httpx2.Request:
    """The HTTP request for one attempt. `path` defaults to the protocol's chat
    endpoint. Only headers the upstream needs are sent: never the client's own
    Tollgate key."""
    provider = deployment.provider
    headers = {"content-type": "application/json", "accept": "application/json"}
    if provider.protocol == "anthropic":
        headers["x-api-key"] = api_key
        headers["anthropic-version"] = client_headers.get("anthropic-version", ANTHROPIC_VERSION)
        beta = client_headers.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        url = provider.base_url + (path or "/messages")
    else:
        headers["authorization"] = f"Bearer {api_key}"
        url = provider.base_url + (path or "/chat/completions")
    for name, value in provider.extra_headers:
        headers[name] = value
    return client.build_request("POST", url, content=body, headers=headers)
