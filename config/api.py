"""The one NinjaAPI: Tollgate's own management API under /api/ (docs at /api/docs).

The model-provider-compatible endpoints (/v1/chat/completions, /v1/messages,
/v1/models) are not here: they are served by the lean ASGI app in gateway.endpoints
(see docs/decisions.md for why).
"""

from ninja import NinjaAPI

api = NinjaAPI(title="Tollgate API", version="1", urls_namespace="api")
api.add_router("/v1/", "gateway.api.router")
