"""ASGI entry point: the API (/v1/*, and its paths without /v1: gateway.endpoints.api_path)
and HEAD / probes go to the gateway's proxy app, everything else to Django.

The proxy is a lean ASGI app rather than a Django view so that a proxied request
skips Django's middleware, signals and sync-to-async thread hops (docs/decisions.md).
Lifespan starts and stops the gateway runtime (upstream client, cache invalidation
listener, usage flusher) in each worker process.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from gateway.endpoints import ProxyApp, api_path, is_probe  # noqa: E402
from gateway.runtime import runtime  # noqa: E402

proxy_application = ProxyApp()


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        if api_path(scope["path"]) is not None or is_probe(scope["method"], scope["path"]):
            await proxy_application(scope, receive, send)
        else:
            await django_application(scope, receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await runtime.start()
                except Exception as exc:  # report, so uvicorn exits with the reason
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
    else:  # websockets are not served
        await django_application(scope, receive, send)
