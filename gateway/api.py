"""Tollgate's own API for the request log: /api/v1/requests/{id}.

Authenticated by any API key of the organisation (Bearer or x-api-key) or by a
console session (any organisation the user belongs to). Another organisation's
request is a 404, never a 403: its existence is not revealed."""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema
from ninja.errors import HttpError
from ninja.security import APIKeyHeader, HttpBearer, django_auth

from accounts.models import ApiKey
from billing.money import nano_to_usd_str
from gateway.selectors import request_log_get, request_logs_for


def _org_ids_for_key(secret: str) -> list[int] | None:
    key = (
        ApiKey.objects.filter(secret_hash=hashlib.sha256(secret.encode()).hexdigest())
        .only("organisation_id", "revoked_at", "expires_at")
        .first()
    )
    if key is None or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return None
    return [key.organisation_id]


class BearerKey(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> list[int] | None:
        return _org_ids_for_key(token)


class HeaderKey(APIKeyHeader):
    param_name = "x-api-key"

    def authenticate(self, request: HttpRequest, key: str | None) -> list[int] | None:
        return _org_ids_for_key(key) if key else None


def _organisation_ids(request: HttpRequest) -> list[int]:
    principal = request.auth
    if isinstance(principal, list):
        return principal
    return list(request.user.memberships.values_list("organisation_id", flat=True))


class Attempt(Schema):
    provider: str = ""
    upstream_model: str = ""
    status: int = 0
    error: str = ""
    error_type: str = ""
    byok: bool = False
    latency_ms: int = 0
    started_at: float | None = None


class RequestOut(Schema):
    request_id: str
    started_at: datetime
    session_id: str
    api_key: str | None
    client_protocol: str
    requested_model: str
    resolved_model: str
    provider: str
    upstream_model: str
    stream: bool
    status_code: int
    outcome: str
    error_type: str
    error_message: str
    latency_ms: int
    ttfb_ms: int | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    reasoning_tokens: int
    usage_estimated: bool
    cost_usd: str
    byok: bool
    attempts: list[Attempt]

    @staticmethod
    def resolve_api_key(obj) -> str | None:
        return obj.api_key.masked if obj.api_key else None

    @staticmethod
    def resolve_cost_usd(obj) -> str:
        return nano_to_usd_str(obj.cost_nano)


router = Router(tags=["requests"], auth=[BearerKey(), HeaderKey(), django_auth])


@router.get("/requests/{request_id}", response=RequestOut, summary="One request's record")
def request_detail(request: HttpRequest, request_id: str):
    row = request_log_get(request_id=request_id, organisation_ids=_organisation_ids(request))
    if row is None:
        raise HttpError(404, "No such request")
    return row


@router.get("/requests", response=list[RequestOut], summary="Recent requests, newest first")
def request_list(request: HttpRequest, limit: int = 50, session_id: str | None = None):
    rows = request_logs_for(organisation_ids=_organisation_ids(request))
    if session_id:
        rows = rows.filter(session_id=session_id)
    return rows.order_by("-started_at")[: max(1, min(limit, 500))]
