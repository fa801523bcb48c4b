"""Tollgate's own API for the request log: /api/v1/requests/{id}.

Authenticated by any API key of the organisation (Bearer or x-api-key) or by a
console session (any organisation the user belongs to). Another organisation's
request is a 404, never a 403: its existence is not revealed."""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.errors import HttpError
from ninja.security import APIKeyHeader, HttpBearer, django_auth
from pydantic import create_model

from billing.money import nano_to_usd_str
from gateway.admission import key_check, key_info_load
from gateway.protocols.errors import GatewayError
from gateway.selectors import request_log_get, request_logs_for
from gateway.usage_event import FOREIGN_KEYS, UsageEvent


def _org_ids_for_key(secret: str) -> list[int] | None:
    """The key's organisation, refused exactly as the proxy refuses it (revoked,
    expired, suspended organisation: the same check, gateway.admission.key_check).
    None for a secret that is no key (the next way of authenticating is tried)."""
    info = key_info_load(hashlib.sha256(secret.encode()).hexdigest())
    if info is None:
        return None
    try:
        key_check(info)
    except GatewayError as error:
        raise HttpError(error.status, error.message) from None
    return [info.organisation_id]


class BearerKey(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> list[int] | None:
        return _org_ids_for_key(token)


class HeaderKey(APIKeyHeader):
    param_name = "x-api-key"

    def authenticate(self, request: HttpRequest, key: str | None) -> list[int] | None:
        return _org_ids_for_key(key) if key else None


def _organisation_ids(request: HttpRequest) -> list[int]:
    """Organisations the caller may read: its key's, or (a console session) those the
    user belongs to that are not suspended."""
    principal = request.auth  # type: ignore[attr-defined]
    if isinstance(principal, list):
        return principal
    return list(
        request.user.memberships.filter(organisation__is_active=True).values_list(  # type: ignore[union-attr]
            "organisation_id", flat=True
        )
    )


class Attempt(Schema):
    provider: str = ""
    upstream_model: str = ""
    status: int = 0
    error: str = ""
    error_type: str = ""
    byok: bool = False
    latency_ms: int = 0
    started_at: float | None = None


# The request's record as the API shows it: every field of the usage event, but for
# internal ids (which become the key's masked form) and the cost in nano-dollars (a
# decimal string of dollars instead).
_HIDDEN = (*FOREIGN_KEYS, "cost_nano", "attempts", "started_at")
_EVENT_TYPES = typing.get_type_hints(UsageEvent)
_fields: dict[str, Any] = {
    f.name: (_EVENT_TYPES[f.name], ...)
    for f in dataclasses.fields(UsageEvent)
    if f.name not in _HIDDEN
}
RequestOutBase = create_model(
    "RequestOutBase",
    __base__=Schema,
    started_at=(datetime, ...),
    api_key=(str | None, ...),
    cost_usd=(str, ...),
    attempts=(list[Attempt], ...),
    **_fields,
)


class RequestOut(RequestOutBase):  # type: ignore[valid-type,misc]
    @staticmethod
    def resolve_api_key(obj: Any) -> str | None:
        return obj.api_key.masked if obj.api_key else None

    @staticmethod
    def resolve_cost_usd(obj: Any) -> str:
        return nano_to_usd_str(obj.cost_nano)


router = Router(tags=["requests"], auth=[BearerKey(), HeaderKey(), django_auth])


@router.get("/requests/{request_id}", response=RequestOut, summary="One request's record")
def request_detail(request: HttpRequest, request_id: str) -> Any:
    row = request_log_get(request_id=request_id, organisation_ids=_organisation_ids(request))
    if row is None:
        raise HttpError(404, "No such request")
    return row


@router.get("/requests", response=list[RequestOut], summary="Recent requests, newest first")
def request_list(request: HttpRequest, limit: int = 50, session_id: str | None = None) -> Any:
    rows = request_logs_for(organisation_ids=_organisation_ids(request))
    if session_id:
        rows = rows.filter(session_id=session_id)
    return rows.order_by("-started_at")[: max(1, min(limit, 500))]
